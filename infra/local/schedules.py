"""Scheduled EventBridge rules, which moto stores but never fires: on their rate, and on demand."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

_RATE = re.compile(r"^rate\((?P<n>[0-9]+) (?P<unit>minute|minutes|hour|hours|day|days)\)$")
_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> float | None:
    """Seconds between firings of a ``rate(...)`` expression; None for cron (fired on demand only)."""
    match = _RATE.match(expression.strip())
    if match is None:
        return None
    return int(match["n"]) * _SECONDS[match["unit"].rstrip("s")]


class Scheduler:
    def __init__(self, client: Callable[[str], Any], schedules: dict[str, tuple[str, list[dict[str, Any]]]]) -> None:
        self.client = client
        self.schedules = schedules
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def run(self, rule: str | None = None) -> list[dict[str, Any]]:
        """Fire one rule (or all) now; returns each target's result."""
        results = []
        with self._lock:  # a schedule fires one at a time, as a rule with reserved concurrency 1 would
            for name, (_, targets) in sorted(self.schedules.items()):
                if rule is not None and name != rule:
                    continue
                event = {
                    "version": "0",
                    "id": str(uuid.uuid4()),
                    "detail-type": "Scheduled Event",
                    "source": "aws.events",
                    "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "resources": [name],
                    "detail": {},
                }
                for target in targets:
                    if ":lambda:" not in target["Arn"]:
                        continue
                    response = self.client("lambda").invoke(FunctionName=target["Arn"], Payload=json.dumps(event))
                    body = json.loads(response["Payload"].read() or b"null")
                    results.append(
                        {"rule": name, "target": target["Arn"], "error": "FunctionError" in response, "result": body}
                    )
        return results

    def start(self, scale: float = 1.0) -> None:
        for name, (expression, _) in self.schedules.items():
            period = rate_seconds(expression)
            if period is None:
                continue
            thread = threading.Thread(
                target=self._every, args=(name, period * scale), daemon=True, name=f"schedule-{name}"
            )
            thread.start()
            self._threads.append(thread)

    def _every(self, name: str, period: float) -> None:
        while not self._stop.wait(period):
            self.run(name)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
