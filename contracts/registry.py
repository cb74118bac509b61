"""The registry item: one entry per implementation, as deploy writes it and the plane reads it.

Deploy (the CDK construct, the local plane) writes the static attributes of :func:`static_item`; the running
plane keeps each entry's health and circuit beside them as JSON. The shape lives here, below both, so writing
it at synth needs nothing of the Lambda runtime.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.card import AgentProfile

KEY = "implementation"  # the table's partition key: the implementation's name
CircuitState = Literal["closed", "open", "half-open"]
Variant = Literal["primary", "approximate"]
APPROXIMATE_SUFFIX = "~approximate"


class Circuit(BaseModel):
    model_config = ConfigDict(frozen=True)

    state: CircuitState = "closed"
    consecutive_failures: int = 0
    recent: str = ""  # "S"/"F" per outcome, newest last, at most functions.runtime.routing.WINDOW long
    opened_at: datetime | None = None
    reason: str | None = None

    @property
    def error_rate(self) -> float:
        return self.recent.count("F") / len(self.recent) if self.recent else 0.0


class Health(BaseModel):
    """What the registry knows of an implementation's recent calls (from its decision records)."""

    model_config = ConfigDict(frozen=True)

    samples: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    error_rate: float = 0.0
    last_heartbeat: datetime | None = None
    window_ms: list[float] = Field(default_factory=list)  # recent durations, newest last
    window_ok: str = ""  # "S"/"F" per recent call, newest last


class Implementation(BaseModel):
    """One registry entry: a deployable that serves capabilities at a contract version."""

    model_config = ConfigDict(frozen=True)

    name: str  # the agent, or "<agent>~approximate" for its declared degraded handler
    agent: str
    variant: Variant = "primary"
    capabilities: list[str]
    contract_version: str
    runtime: str
    target: str  # what to invoke: a function name or ARN, an endpoint name
    output_model: str | None = None  # the contract's io.output: an answer that does not conform is a failure
    fallback: list[str | dict[str, str]] = Field(default_factory=list)
    deployment_group: str = ""  # the CodeDeploy group rolling this target out; empty when none does
    quality: float | None = Field(
        default=None, ge=0, le=1, description="Offline eval score of this implementation (events/evals/), if any."
    )
    published_version: str = ""  # the version the last deploy published behind the alias (it may still be shifting)
    profile: AgentProfile | None = None  # the contract's public face, for discovery (contracts.card)
    health: Health = Field(default_factory=Health)
    circuit: Circuit = Field(default_factory=Circuit)


def static_item(implementation: Implementation) -> dict[str, Any]:
    """The attributes deploy owns (the rest are the registry's running state)."""
    return {
        "agent": implementation.agent,
        "variant": implementation.variant,
        "capabilities": list(implementation.capabilities),
        "contract_version": implementation.contract_version,
        "runtime": implementation.runtime,
        "target": implementation.target,
        "output_model": implementation.output_model or "",
        "fallback_json": json.dumps(implementation.fallback, sort_keys=True),
        "deployment_group": implementation.deployment_group,
        "published_version": implementation.published_version,
        "quality": "" if implementation.quality is None else f"{implementation.quality:.4f}",
        "profile_json": "" if implementation.profile is None else implementation.profile.model_dump_json(),
    }


def from_item(item: dict[str, Any]) -> Implementation:
    return Implementation(
        name=item[KEY],
        agent=item["agent"],
        variant=item.get("variant", "primary"),
        capabilities=list(item["capabilities"]),
        contract_version=item["contract_version"],
        runtime=item["runtime"],
        target=item["target"],
        output_model=item.get("output_model") or None,
        fallback=json.loads(item.get("fallback_json", "[]")),
        deployment_group=item.get("deployment_group", ""),
        published_version=item.get("published_version", ""),
        quality=float(item["quality"]) if item.get("quality") else None,
        profile=AgentProfile.model_validate_json(item["profile_json"]) if item.get("profile_json") else None,
        health=Health.model_validate_json(item["health_json"]) if "health_json" in item else Health(),
        circuit=Circuit.model_validate_json(item["circuit_json"]) if "circuit_json" in item else Circuit(),
    )
