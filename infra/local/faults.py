"""Fault injection per agent: the local plane's way to show retries, catches and fallbacks for real."""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field

_SPEC = re.compile(r"^(?P<agent>[a-z][a-z0-9-]*(~[a-z]+)?)=(?P<error>[A-Za-z][A-Za-z0-9.]*)(:(?P<rate>[0-9.]+))?$")


class FaultSpecError(ValueError):
    pass


@dataclass(frozen=True)
class Fault:
    error: str
    rate: float = 1.0


@dataclass
class FaultPlan:
    faults: dict[str, Fault] = field(default_factory=dict)
    seed: int = 7
    injected: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)  # noqa: S311 - reproducible fault schedule, not security
        self._lock = threading.Lock()

    @classmethod
    def parse(cls, specs: list[str]) -> FaultPlan:
        """``agent=ErrorName[:rate]``: ``evidence-verifier=ModelError``, ``risk-scorer=Lambda.ServiceException:0.5``."""
        faults: dict[str, Fault] = {}
        for spec in specs:
            match = _SPEC.match(spec.strip())
            if match is None:
                raise FaultSpecError(
                    f"fault {spec!r}: expected agent=ErrorName[:rate], e.g. evidence-verifier=ModelError"
                )
            rate = float(match["rate"]) if match["rate"] else 1.0
            if not 0 < rate <= 1:
                raise FaultSpecError(f"fault {spec!r}: rate must be in (0, 1]")
            faults[match["agent"]] = Fault(error=match["error"], rate=rate)
        return cls(faults=faults)

    def before_invoke(self, agent: str) -> None:
        fault = self.faults.get(agent)
        if fault is None:
            return
        with self._lock:
            fire = self._random.random() < fault.rate
            if fire:
                self.injected[agent] = self.injected.get(agent, 0) + 1
        if fire:
            raise type(fault.error, (Exception,), {})(f"injected fault: {agent} raised {fault.error}")
