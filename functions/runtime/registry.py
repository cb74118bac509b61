"""The registry table: one item per implementation (static facts from deploy; health and circuit as it runs).

The item's shape is :mod:`contracts.registry`'s. Deploy writes the static attributes with an upsert that leaves
health and circuit alone. The dispatcher folds each outcome into the circuit, the health updater folds decision
records into the health; each is a read-modify-write guarded by its own version attribute, so the two never
overwrite each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from contracts.registry import KEY, Circuit, Health, Implementation, from_item
from functions.runtime.adapters import scan_all
from functions.runtime.routing import Breaker, fold_health, observe

CACHE_S = 5.0  # how stale a dispatcher's view of the registry may be
_RETRIES = 3


class DynamoRegistry:
    def __init__(self, table: Any, *, cache_s: float = CACHE_S, monotonic: Callable[[], float] = time.monotonic):
        self._table = table
        self._cache_s = cache_s
        self._monotonic = monotonic
        self._cached: tuple[float, list[Implementation]] | None = None

    def implementations(self) -> list[Implementation]:
        now = self._monotonic()
        if self._cached is not None and now - self._cached[0] < self._cache_s:
            return self._cached[1]
        found = sorted((from_item(i) for i in scan_all(self._table)), key=lambda i: i.name)
        self._cached = (now, found)
        return found

    def observe(self, name: str, *, succeeded: bool, now: datetime, breaker: Breaker) -> None:
        def change(item: dict[str, Any]) -> str:
            current = Circuit.model_validate_json(item["circuit_json"]) if "circuit_json" in item else Circuit()
            return observe(current, succeeded=succeeded, now=now, breaker=breaker).model_dump_json()

        written = self._update(name, "circuit", change)
        if written is not None and self._cached is not None:
            # This instance sees its own outcomes at once (a circuit it just opened is not chosen from the cache);
            # other instances' outcomes reach it within CACHE_S.
            circuit = Circuit.model_validate_json(written)
            stamp, cached = self._cached
            self._cached = (stamp, [i.model_copy(update={"circuit": circuit}) if i.name == name else i for i in cached])

    def record_health(self, name: str, calls: list[tuple[float, bool, datetime]]) -> None:
        def change(item: dict[str, Any]) -> str:
            current = Health.model_validate_json(item["health_json"]) if "health_json" in item else Health()
            return fold_health(current, calls).model_dump_json()

        self._update(name, "health", change)

    def set_circuit(self, name: str, circuit: Circuit) -> None:
        """Operator override (e.g. force a circuit closed after a fix)."""
        self._update(name, "circuit", lambda _item: circuit.model_dump_json())
        self._cached = None

    def set_health(self, name: str, health: Health) -> None:
        """Operator override (e.g. forget the failures of an outage that is over)."""
        self._update(name, "health", lambda _item: health.model_dump_json())
        self._cached = None

    def _update(self, name: str, part: str, change: Callable[[dict[str, Any]], str]) -> str | None:
        """Optimistic read-modify-write of ``<part>_json`` guarded by ``<part>_version``; the value written.

        None when the implementation is not registered, or when every attempt lost a race (the sample is
        dropped: health and circuits are advisory, the next outcome corrects them).
        """
        conflict = self._table.meta.client.exceptions.ConditionalCheckFailedException
        for _ in range(_RETRIES):
            item = self._table.get_item(Key={KEY: name}, ConsistentRead=True).get("Item")
            if item is None:
                return None  # not (or no longer) registered: nothing to keep health for
            version = int(item.get(f"{part}_version", 0))
            condition = f"attribute_not_exists({part}_version)" if version == 0 else f"{part}_version = :expected"
            value = change(item)
            values: dict[str, Any] = {":value": value, ":next": version + 1}
            if version:
                values[":expected"] = version
            try:
                self._table.update_item(
                    Key={KEY: name},
                    UpdateExpression=f"SET {part}_json = :value, {part}_version = :next",
                    ConditionExpression=f"attribute_exists({KEY}) AND {condition}",
                    ExpressionAttributeValues=values,
                )
                return value
            except conflict:
                continue
        return None
