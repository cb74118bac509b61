"""Admission control: a workflow admits at most ``max_in_flight`` runs per ``window_ms``, and refuses the rest.

The window is the time a run's own steps take (the sum of its agents' contract p95), so the runs admitted in one
window are the most that can be processing at once: capacity comes back as runs leave processing, whether they
finished or wait for a person at the approval gate. A refusal is a 503 with ``Retry-After`` (the window's end),
never an accepted run that the plane then fails. The count is one item per workflow in the executions table,
updated conditionally (functions.api.adapters.DynamoAdmissionCounter): a bounded check, not a listing of running
executions.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

# The local plane sets this to its function pools' size: they serve fewer instances than the reserved concurrency
# the template states. Unset on AWS.
MAX_IN_FLIGHT_ENV = "AGENTPLANE_MAX_IN_FLIGHT"


def max_in_flight_cap(env: Mapping[str, str] | None = None) -> int | None:
    raw = (os.environ if env is None else env).get(MAX_IN_FLIGHT_ENV, "")
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise RuntimeError(f"{MAX_IN_FLIGHT_ENV} must be a positive whole number, got {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class AdmissionLimit:
    max_in_flight: int
    window_ms: int


class AdmissionCounter(Protocol):
    def admit(self, workflow: str, *, window: int, limit: int) -> bool:
        """Count one run in ``window`` (an index) if fewer than ``limit`` were; whether it was counted."""
        ...


def window_of(now: datetime, window_ms: int) -> int:
    return math.floor(now.timestamp() * 1000 / window_ms)


def retry_after_s(now: datetime, limit: AdmissionLimit) -> int:
    """Whole seconds until the current window ends (at least 1: Retry-After counts seconds)."""
    ends_ms = (window_of(now, limit.window_ms) + 1) * limit.window_ms
    return max(1, math.ceil((ends_ms - now.timestamp() * 1000) / 1000))


class InMemoryAdmissionCounter:
    def __init__(self) -> None:
        self.windows: dict[str, tuple[int, int]] = {}  # workflow -> (window, admitted)

    def admit(self, workflow: str, *, window: int, limit: int) -> bool:
        current, admitted = self.windows.get(workflow, (window, 0))
        if current != window:
            current, admitted = window, 0
        if admitted >= limit:
            return False
        self.windows[workflow] = (current, admitted + 1)
        return True
