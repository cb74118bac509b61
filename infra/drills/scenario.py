"""Chaos scenario files (``chaos/scenarios/*.yaml``): the faults to inject, the workload, what must hold.

A scenario becomes a :class:`infra.local.faults.FaultPlan`, which the local plane asks wherever a fault can happen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.validation import first_error
from infra.local.faults import EndpointFault, Fault, FaultPlan, FaultSpecError

Rate = float
RunStatus = Literal["SUCCEEDED", "FAILED"]
RUN_STATUSES: tuple[RunStatus, ...] = ("SUCCEEDED", "FAILED")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentChaos(_Strict):
    latency_ms: float = Field(default=0, ge=0, le=10_000)
    error: str | None = Field(default=None, pattern=r"^[A-Za-z][A-Za-z0-9.]*$")
    error_rate: Rate = Field(default=1.0, ge=0, le=1)
    timeout_rate: Rate = Field(default=0, ge=0, le=1)
    malformed_rate: Rate = Field(default=0, ge=0, le=1)
    drop_rate: Rate = Field(default=0, ge=0, le=1)
    duplicate_rate: Rate = Field(default=0, ge=0, le=1)


class EndpointChaos(_Strict):
    throttle_rate: Rate = Field(default=0, ge=0, le=1)
    latency_ms: float = Field(default=0, ge=0, le=10_000)


class Workload(_Strict):
    """What the scenario sends: doc-review submissions (each with an Idempotency-Key), some sent twice."""

    submissions: int = Field(default=4, ge=1, le=200)
    resubmitted: int = Field(default=1, ge=0)  # how many of them are sent again with the same key
    request: str = "doc-review-low-risk.json"  # under events/
    high_risk_request: str | None = None  # every other submission uses it (the approver approves)
    quick_checks: int = Field(default=0, ge=0, le=200)


class Expect(_Strict):
    """What the plane must do about the faults, checked from the runs and their histories."""

    retried: list[str] = Field(default_factory=list)  # states whose Retry fired at least once
    caught: bool = False  # some run took the Catch path and recorded its failure
    outcomes: list[RunStatus] = Field(default_factory=lambda: list(RUN_STATUSES))
    dead_lettered: bool = False  # some bus event reached the DLQ (then it is replayed)
    duplicates_absorbed: bool = False  # duplicated deliveries left one record each
    fell_back: list[str] = Field(default_factory=list)  # implementations dispatch fell back to, at least once


class Scenario(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    description: str = ""
    seed: int = 7
    agents: dict[str, AgentChaos] = Field(default_factory=dict)
    # SageMaker endpoints by name; applied where the plane invokes an endpoint.
    endpoints: dict[str, EndpointChaos] = Field(default_factory=dict)
    workload: Workload = Field(default_factory=Workload)
    expect: Expect = Field(default_factory=Expect)

    @classmethod
    def load(cls, path: Path) -> Scenario:
        try:
            raw = yaml.safe_load(path.read_text())
        except OSError as error:
            raise FaultSpecError(f"cannot read scenario {path}: {error.strerror}") from None
        except yaml.YAMLError as error:
            raise FaultSpecError(f"scenario {path} is not YAML: {' '.join(str(error).split())}") from None
        try:
            return cls.model_validate(raw)
        except ValidationError as error:
            raise FaultSpecError(f"scenario {path}: {first_error(error, root='(top level)')}") from None

    def plan(self) -> FaultPlan:
        faults = {
            agent: Fault(
                error=chaos.error,
                rate=chaos.error_rate,
                latency_ms=chaos.latency_ms,
                timeout_rate=chaos.timeout_rate,
                malformed_rate=chaos.malformed_rate,
                drop_rate=chaos.drop_rate,
                duplicate_rate=chaos.duplicate_rate,
            )
            for agent, chaos in self.agents.items()
        }
        endpoints = {
            name: EndpointFault(throttle_rate=e.throttle_rate, latency_ms=e.latency_ms)
            for name, e in self.endpoints.items()
        }
        return FaultPlan(faults=faults, seed=self.seed, endpoints=endpoints)
