"""Admission control: a workflow admits at most ``max_in_flight`` runs processing at once, and refuses the rest.

Each admitted run holds a slot (functions.runtime.admission) until it leaves processing: its decision or failure
is recorded, or it waits for a person at the approval gate; or, failing those, until its deadline. A refusal is a
503 with ``Retry-After``, the time one run takes to process (``window_ms``, the sum of its agents' contract p95),
never an accepted run that the plane then fails.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

# The local plane sets this to what its function pools finish: they serve fewer instances than the reserved
# concurrency the template states. Unset on AWS.
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
    max_in_flight: int  # runs processing at once
    window_ms: int  # how long one run processes: when to try again after a refusal


def retry_after_s(limit: AdmissionLimit) -> int:
    """Whole seconds a refused client waits: one run's processing time (at least 1: Retry-After counts seconds)."""
    return max(1, math.ceil(limit.window_ms / 1000))
