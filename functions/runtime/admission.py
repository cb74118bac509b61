"""Admission slots: how many runs of a workflow are processing now, held from admission until the run leaves
processing (its decision or failure is recorded, or it waits for a person) or its deadline passes.

A count of runs in flight, not a rate: when runs take longer than their budgets (a slow model, a loaded plane)
a rate keeps admitting what the plane cannot finish, and a count does not. A slot that is never released (a
run stopped from outside, a workflow with no recorder) is given back when its lease, the run's deadline, ends.
The API takes slots (functions.api.service.admit); the recorders and the approval gate give them back.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

ADMISSION_PREFIX = "admission#"  # the counter's item in the executions table, beside the runs' own items
_ATTEMPTS = 5  # conditional writes one admission tries under contention before it refuses


def admission_key(workflow: str) -> str:
    return f"{ADMISSION_PREFIX}{workflow}"


class AdmissionSlots(Protocol):
    def admit(self, workflow: str, execution_id: str, *, now_ms: int, lease_ms: int, limit: int) -> bool:
        """Hold a slot for ``execution_id`` until released or ``now_ms + lease_ms``, if fewer than ``limit`` are
        held; whether it was admitted."""
        ...

    def release(self, workflow: str, execution_id: str) -> None:
        """Give the run's slot back (nothing when it holds none: released already, lease ended, never admitted)."""
        ...


def held(slots: dict[str, int], now_ms: int) -> dict[str, int]:
    """The slots whose lease has not ended."""
    return {run: until for run, until in slots.items() if until > now_ms}


class InMemoryAdmissionSlots:
    def __init__(self) -> None:
        self.slots: dict[str, dict[str, int]] = {}  # workflow -> execution id -> lease end (epoch ms)

    def admit(self, workflow: str, execution_id: str, *, now_ms: int, lease_ms: int, limit: int) -> bool:
        live = held(self.slots.get(workflow, {}), now_ms)
        if len(live) >= limit:
            return False
        self.slots[workflow] = {**live, execution_id: now_ms + lease_ms}
        return True

    def release(self, workflow: str, execution_id: str) -> None:
        self.slots.get(workflow, {}).pop(execution_id, None)


class DynamoAdmissionSlots:
    """One item per workflow in the executions table (``admission#<workflow>``): ``slots`` maps each run holding
    one to its lease's end; ``version`` orders the writes, so a read-modify-write never undoes another's."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def admit(self, workflow: str, execution_id: str, *, now_ms: int, lease_ms: int, limit: int) -> bool:
        key = admission_key(workflow)
        failed = self._table.meta.client.exceptions.ConditionalCheckFailedException
        for _ in range(_ATTEMPTS):
            item = self._table.get_item(Key={"execution_id": key}, ConsistentRead=True).get("Item") or {}
            version = int(item.get("version", 0))
            live = held({run: int(until) for run, until in item.get("slots", {}).items()}, now_ms)
            if len(live) >= limit:
                return False
            live[execution_id] = now_ms + lease_ms
            try:
                self._table.put_item(
                    Item={"execution_id": key, "slots": live, "version": version + 1},
                    ConditionExpression="attribute_not_exists(version) OR version = :v",
                    ExpressionAttributeValues={":v": version},
                )
            except failed:
                continue  # another admission or release wrote first: read again
            return True
        return False  # still contended: refusing is safe, the client retries after Retry-After

    def release(self, workflow: str, execution_id: str) -> None:
        # A run that holds no slot fails the condition: nothing to give back.
        with contextlib.suppress(self._table.meta.client.exceptions.ConditionalCheckFailedException):
            self._table.update_item(
                Key={"execution_id": admission_key(workflow)},
                UpdateExpression="REMOVE slots.#run ADD version :one",
                ConditionExpression="attribute_exists(slots.#run)",
                ExpressionAttributeNames={"#run": execution_id},
                ExpressionAttributeValues={":one": 1},
            )
