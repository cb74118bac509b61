"""Fault injection per agent: the local plane's way to show retries, catches and fallbacks for real.

Two ways in: ``--fault agent=Error[:rate]`` (``FaultPlan.parse``) and a plan built by a chaos scenario
(``infra.drills.scenario``) with latency, timeouts, malformed outputs, dropped or duplicated events and
endpoint throttling. The plane asks the plan at each place a fault can happen:
``before_invoke``/``after_invoke`` around a Lambda handler, ``event_copies``/``drops_event`` on bus
delivery, ``before_endpoint`` where it invokes a SageMaker endpoint.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

_FAULT = r"(?P<error>[A-Za-z][A-Za-z0-9.]*)(:(?P<rate>[0-9.]+))?"
_SPEC = re.compile(rf"^(?P<agent>[a-z][a-z0-9-]*(~[a-z]+)?(@[1-9][0-9]*)?)={_FAULT}$")
_ERROR_SPEC = re.compile(rf"^{_FAULT}$")
# What Lambda reports when a function runs past its timeout; Step Functions sees it as the task's error.
TIMEOUT_ERROR = "Sandbox.Timedout"
THROTTLE_ERROR = "ThrottlingException"
MALFORMED_OUTPUT: dict[str, Any] = {"malformed": "injected by the chaos scenario"}


class FaultSpecError(ValueError):
    pass


@dataclass(frozen=True)
class Fault:
    """What goes wrong with one agent. Rates are per invocation (per delivery for events)."""

    error: str | None = None
    rate: float = 1.0  # of ``error``
    latency_ms: float = 0.0
    timeout_rate: float = 0.0
    malformed_rate: float = 0.0
    drop_rate: float = 0.0  # bus events to this agent: every delivery attempt fails, the event is dead-lettered
    duplicate_rate: float = 0.0  # bus events and invocations of this agent: delivered twice


@dataclass(frozen=True)
class EndpointFault:
    throttle_rate: float = 0.0
    latency_ms: float = 0.0


def _fault(match: re.Match[str], spec: str) -> Fault:
    rate = float(match["rate"]) if match["rate"] else 1.0
    if not 0 < rate <= 1:
        raise FaultSpecError(f"fault {spec!r}: rate must be in (0, 1]")
    return Fault(error=match["error"], rate=rate)


def _injected(name: str, message: str) -> Exception:
    error: Exception = type(name, (Exception,), {})(message)
    return error


@dataclass
class FaultPlan:
    faults: dict[str, Fault] = field(default_factory=dict)
    seed: int = 7
    injected: dict[str, int] = field(default_factory=dict)  # errors raised, per agent
    endpoints: dict[str, EndpointFault] = field(default_factory=dict)
    observed: Counter[str] = field(default_factory=Counter)  # "<agent>:<kind>" -> how many times it fired

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)  # noqa: S311 - reproducible fault schedule, not security
        self._lock = threading.Lock()

    @classmethod
    def parse(cls, specs: list[str]) -> FaultPlan:
        """``agent[@version]=ErrorName[:rate]``: ``evidence-verifier=ModelError``,
        ``risk-scorer=Lambda.ServiceException:0.5``, ``evidence-verifier@2=ModelError`` (only its version 2 fails)."""
        faults: dict[str, Fault] = {}
        for spec in specs:
            match = _SPEC.match(spec.strip())
            if match is None:
                raise FaultSpecError(
                    f"fault {spec!r}: expected agent=ErrorName[:rate], e.g. evidence-verifier=ModelError"
                )
            faults[match["agent"]] = _fault(match, spec)
        return cls(faults=faults)

    @staticmethod
    def parse_error(spec: str) -> Fault:
        """``ErrorName[:rate]``: a fault for an agent named elsewhere (a rollout's new version)."""
        match = _ERROR_SPEC.match(spec.strip())
        if match is None:
            raise FaultSpecError(f"fault {spec!r}: expected ErrorName[:rate], e.g. ModelError")
        return _fault(match, spec)

    def use(self, other: FaultPlan) -> None:
        """Take another plan's faults in place (the plane's parts hold this object)."""
        with self._lock:
            self.faults = dict(other.faults)
            self.endpoints = dict(other.endpoints)
            self._random = random.Random(other.seed)  # noqa: S311 - reproducible fault schedule
            self.injected.clear()
            self.observed.clear()

    def clear(self) -> None:
        self.use(FaultPlan())

    def add(self, agent: str, fault: Fault) -> None:
        """One more fault while the plane runs (a rollout's new version, ``agent@version``)."""
        with self._lock:
            self.faults[agent] = fault

    def key_for(self, agent: str, version: str) -> str:
        """``agent@version`` when a fault targets that published version, else ``agent``."""
        versioned = f"{agent}@{version}"
        return versioned if versioned in self.faults else agent

    def _fires(self, agent: str, kind: str, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            fire = self._random.random() < rate
            if fire:
                self.observed[f"{agent}:{kind}"] += 1
        return fire

    def before_invoke(self, agent: str) -> None:
        fault = self.faults.get(agent)
        if fault is None:
            return
        if fault.latency_ms > 0:
            time.sleep(fault.latency_ms / 1000)
            with self._lock:
                self.observed[f"{agent}:latency"] += 1
        if self._fires(agent, "timeout", fault.timeout_rate):
            raise _injected(TIMEOUT_ERROR, f"injected fault: {agent} ran past its timeout")
        if fault.error is not None and self._fires(agent, "error", fault.rate):
            with self._lock:
                self.injected[agent] = self.injected.get(agent, 0) + 1
            raise _injected(fault.error, f"injected fault: {agent} raised {fault.error}")

    def after_invoke(self, agent: str, result: Any) -> Any:
        """The handler's answer, or a malformed one in its place."""
        fault = self.faults.get(agent)
        if fault is not None and self._fires(agent, "malformed", fault.malformed_rate):
            return dict(MALFORMED_OUTPUT)
        return result

    def invocations(self, agent: str) -> int:
        """How many times to run the handler for one invocation: 2 redelivers it (at-least-once)."""
        fault = self.faults.get(agent)
        return 2 if fault is not None and self._fires(agent, "duplicate-invoke", fault.duplicate_rate) else 1

    def event_copies(self, agent: str) -> int:
        fault = self.faults.get(agent)
        return 2 if fault is not None and self._fires(agent, "duplicate-event", fault.duplicate_rate) else 1

    def drops_event(self, agent: str) -> bool:
        fault = self.faults.get(agent)
        return fault is not None and self._fires(agent, "drop", fault.drop_rate)

    def before_endpoint(self, endpoint: str) -> None:
        """Where the plane invokes a SageMaker endpoint: latency, then throttling as the runtime reports it."""
        fault = self.endpoints.get(endpoint)
        if fault is None:
            return
        if fault.latency_ms > 0:
            time.sleep(fault.latency_ms / 1000)
        if self._fires(endpoint, "throttle", fault.throttle_rate):
            raise _injected(THROTTLE_ERROR, f"injected fault: endpoint {endpoint} throttled the request")
