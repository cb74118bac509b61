"""Which contract serves a workflow step: by capability and version range, through the contracts, never by name."""

from __future__ import annotations

from collections.abc import Mapping

from contracts.capability import CapabilityContract, FallbackCapability
from contracts.workflow import AgentStep, TaskStep, WorkflowSpec
from functions.runtime.routing import in_range
from infra.components.sagemaker_endpoint import fallback_for, within

SERVING_KINDS = ("lambda", "sagemaker")  # what a task step can call
AGENT_KINDS = ("llm",)  # what an agent step runs: a tool-use loop that can pause for approvals


class ResolveError(ValueError):
    """A capability no contract serves (within the range asked for)."""


def resolve(
    capability: str,
    version: str | None,
    contracts: Mapping[str, CapabilityContract],
    kinds: tuple[str, ...] = SERVING_KINDS,
) -> CapabilityContract:
    """The primary implementation of ``capability`` within ``version``.

    Of the contracts serving it, those another one names as its fallback are left out (they are reached from it);
    of the rest, the newest version wins, a tie going to the first by name. A step that must not move to a new
    major when one is added pins its range (``version: 1.x``).
    """
    wanted = f"{capability} {version}" if version else capability
    candidates = [
        c
        for c in contracts.values()
        if capability in c.capabilities
        and c.runtime.kind in kinds
        and (version is None or in_range(c.version, version))
    ]
    if not candidates:
        runs = "" if kinds == SERVING_KINDS else f" (as {' or '.join(f'kind: {k}' for k in kinds)})"
        raise ResolveError(f"no contract serves capability {wanted}{runs}")
    fallbacks = {
        other.name
        for c in candidates
        for entry in c.fallback
        if isinstance(entry, FallbackCapability) and entry.capability == capability
        for other in candidates
        if other.name != c.name and within(other.version, entry.max_version)
    }
    primaries = [c for c in candidates if c.name not in fallbacks]
    if not primaries:
        names = ", ".join(sorted(c.name for c in candidates))
        raise ResolveError(f"capability {wanted}: every implementation ({names}) is another's fallback")
    newest = max(_semver(c.version) for c in primaries)
    return min((c for c in primaries if _semver(c.version) == newest), key=lambda c: c.name)


def _semver(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


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
        elif isinstance(step, AgentStep):
            agents.append(resolve(step.capability, step.version, contracts, AGENT_KINDS).name)
    if spec.failure is not None:
        agents.append(resolve(spec.failure.capability, spec.failure.version, contracts).name)
    return list(dict.fromkeys(agents))
