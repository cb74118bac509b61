"""Which contract serves a workflow step: by capability and version range, through the contracts, never by name."""

from __future__ import annotations

from collections.abc import Mapping

from contracts.capability import CapabilityContract, FallbackCapability
from contracts.workflow import TaskStep, WorkflowSpec
from functions.runtime.routing import in_range
from infra.components.sagemaker_endpoint import fallback_for, within

SERVING_KINDS = ("lambda", "sagemaker")  # what a workflow step can call


class ResolveError(ValueError):
    """A capability no contract, or more than one contract alike, serves."""


def resolve(capability: str, version: str | None, contracts: Mapping[str, CapabilityContract]) -> CapabilityContract:
    """The primary implementation of ``capability`` within ``version``: of the contracts serving it, the one none of
    the others names as its fallback (the fallbacks are reached from it)."""
    wanted = f"{capability} {version}" if version else capability
    candidates = [
        c
        for c in contracts.values()
        if capability in c.capabilities
        and c.runtime.kind in SERVING_KINDS
        and (version is None or in_range(c.version, version))
    ]
    if not candidates:
        raise ResolveError(f"no contract serves capability {wanted}")
    fallbacks = {
        other.name
        for c in candidates
        for entry in c.fallback
        if isinstance(entry, FallbackCapability) and entry.capability == capability
        for other in candidates
        if other.name != c.name and within(other.version, entry.max_version)
    }
    primaries = [c for c in candidates if c.name not in fallbacks]
    if len(primaries) != 1:
        names = ", ".join(sorted(c.name for c in primaries or candidates))
        raise ResolveError(
            f"capability {wanted} has {len(primaries) or len(candidates)} implementations ({names}) and none is the "
            "others' fallback: narrow the step's version range"
        )
    return primaries[0]


def fallback(step: TaskStep, contracts: Mapping[str, CapabilityContract]) -> CapabilityContract:
    """The implementation a step's ``fallback`` runs: the first the primary's contract falls back to."""
    return fallback_for(resolve(step.capability, step.version, contracts), contracts)


def workflow_agents(spec: WorkflowSpec, contracts: Mapping[str, CapabilityContract]) -> list[str]:
    """Every agent a workflow's steps run, in the order they first appear; the failure recorder last."""
    agents: list[str] = []
    for step in spec.walk():
        if isinstance(step, TaskStep):
            agents.append(resolve(step.capability, step.version, contracts).name)
            if step.fallback is not None:
                agents.append(fallback(step, contracts).name)
    if spec.failure is not None:
        agents.append(resolve(spec.failure.capability, None, contracts).name)
    return list(dict.fromkeys(agents))
