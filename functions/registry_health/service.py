"""Registry health from decision records: each batch of the decisions stream folds into each implementation.

Off the hot path: the agents write nothing extra; one read-modify-write per implementation per batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from functions.runtime.decisions import DecisionRecord


class HealthSink(Protocol):
    def record_health(self, name: str, calls: list[tuple[float, bool, datetime]]) -> None: ...


def implementation_of(record: DecisionRecord) -> str | None:
    """The registry name of the implementation that made this record (``agent:<name>`` actors only)."""
    if not record.actor.startswith("agent:"):
        return None  # approvals, escalations: a person or the plane decided, not an implementation
    return record.actor.removeprefix("agent:")


def fold_batch(records: Iterable[DecisionRecord], sink: HealthSink) -> dict[str, int]:
    """Group by implementation and record each group once; returns how many calls each got."""
    calls: dict[str, list[tuple[float, bool, datetime]]] = defaultdict(list)
    for record in records:
        name = implementation_of(record)
        if name is not None:
            calls[name].append((record.duration_ms, record.status == "SUCCEEDED", record.finished_at))
    for name, found in sorted(calls.items()):
        sink.record_health(name, found)
    return {name: len(found) for name, found in calls.items()}
