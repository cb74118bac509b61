"""Batch size and queue depth, kept in memory and exported as CloudWatch EMF lines.

One EMF document per flush interval carries every batch's values (EMF allows up to 100 values per metric),
so exporting costs nothing per request. ``emit`` is where the lines go: stdout in the container (SageMaker
ships it to CloudWatch Logs, which extracts the metrics), a log file in the local plane.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

NAMESPACE = "agentplane"
EMF_MAX_VALUES = 100


@dataclass(frozen=True)
class MetricsSnapshot:
    batches: int
    items: int
    max_queue_depth: int
    batch_sizes: dict[int, int]

    @property
    def mean_batch_size(self) -> float:
        return self.items / self.batches if self.batches else 0.0


@dataclass
class BatchMetrics:
    service: str
    emit: Callable[[str], None] | None = None
    flush_interval_s: float = 1.0
    clock: Callable[[], float] = time.monotonic
    _sizes: list[int] = field(default_factory=list)
    _depths: list[int] = field(default_factory=list)
    _histogram: Counter[int] = field(default_factory=Counter)
    _max_depth: int = 0
    _last_flush: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, *, batch_size: int, queue_depth: int) -> None:
        """One batch ran with ``batch_size`` items; ``queue_depth`` were waiting when it started."""
        with self._lock:
            self._histogram[batch_size] += 1
            self._max_depth = max(self._max_depth, queue_depth)
            self._sizes.append(batch_size)
            self._depths.append(queue_depth)
            now = self.clock()
            if self._last_flush is None:
                self._last_flush = now
            due = now - self._last_flush >= self.flush_interval_s or len(self._sizes) >= EMF_MAX_VALUES
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            sizes, depths = self._sizes, self._depths
            self._sizes, self._depths = [], []
            self._last_flush = self.clock()
        if sizes and self.emit is not None:
            self.emit(json.dumps(self.emf(sizes, depths), separators=(",", ":")))

    def emf(self, sizes: list[int], depths: list[int]) -> dict[str, Any]:
        return {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": NAMESPACE,
                        "Dimensions": [["service"]],
                        "Metrics": [
                            {"Name": "batch_size", "Unit": "Count"},
                            {"Name": "queue_depth", "Unit": "Count"},
                        ],
                    }
                ],
            },
            "service": self.service,
            "batch_size": sizes,
            "queue_depth": depths,
        }

    def snapshot(self) -> MetricsSnapshot:
        with self._lock:
            return MetricsSnapshot(
                batches=sum(self._histogram.values()),
                items=sum(size * count for size, count in self._histogram.items()),
                max_queue_depth=self._max_depth,
                batch_sizes=dict(sorted(self._histogram.items())),
            )
