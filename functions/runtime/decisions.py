"""Decision records: one immutable record per step, written with a conditional put.

The key is (correlation_id, step_key) with step_key derived from the causation id, so the put is
also the duplicate guard: a redelivered step finds its record and returns the recorded output
instead of deciding twice.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from functions.runtime.canonical import canonical_json, sha256_hex

# A step key is ``<run>/<step>`` (the step's causation id), with ``#<qualifier>`` parts when one step leaves more
# than one record (a failed attempt, an approval): ``<run>/VerifyClaim/2#failed#<started>``.


def step_key(causation_id: str, *qualifiers: str) -> str:
    return "#".join((causation_id, *qualifiers))


def step_in_run(step_key: str, correlation_id: str) -> str:
    """`<run>/VerifyClaim/2#failed#...` -> `VerifyClaim/2#failed#...`: the key without its run."""
    return step_key.removeprefix(f"{correlation_id}/")


def step_name(step_key: str, correlation_id: str) -> str:
    """`<run>/VerifyClaim/2#...` -> `VerifyClaim/2`; what follows "#" (attempt, event id) is not part of the name."""
    return step_in_run(step_key, correlation_id).split("#", 1)[0]


class DecisionRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    correlation_id: str
    step_key: str
    trace_id: str
    causation_id: str
    agent: str
    agent_version: str
    capability: str
    capability_version: str
    status: Literal["SUCCEEDED", "FAILED", "ESCALATED"]
    actor: str  # who decided: "agent:<name>" for agent steps, "human:<principal>" for approvals
    input_json: str
    input_sha256: str
    output_json: str | None = None
    output_sha256: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    route_json: str | None = None  # how dispatch chose this implementation (contracts.envelope.Route)
    function_version: str | None = None  # the published version of the agent's function that ran (canaries)
    started_at: datetime
    finished_at: datetime
    duration_ms: float = Field(ge=0)

    @classmethod
    def of(
        cls,
        *,
        input: Any,
        output: Any = None,
        started: datetime,
        finished: datetime,
        duration_ms: float | None = None,
        **fields: Any,
    ) -> DecisionRecord:
        """A record of ``input`` and ``output`` as canonical JSON with their digests, taken from ``started`` to
        ``finished`` (``duration_ms``: the time between them unless measured more finely)."""
        input_json = canonical_json(input)
        output_json = None if output is None else canonical_json(output)
        elapsed = (finished - started).total_seconds() * 1000 if duration_ms is None else duration_ms
        return cls(
            input_json=input_json,
            input_sha256=sha256_hex(input_json.encode()),
            output_json=output_json,
            output_sha256=None if output_json is None else sha256_hex(output_json.encode()),
            started_at=started,
            finished_at=finished,
            duration_ms=max(0.0, elapsed),
            **fields,
        )

    def output(self) -> Any:
        return None if self.output_json is None else json.loads(self.output_json)

    def to_item(self) -> dict[str, Any]:
        """DynamoDB item (strings only: no float/Decimal round-trip changes what was recorded)."""
        item = self.model_dump(mode="json", exclude_none=True)
        item["duration_ms"] = f"{self.duration_ms:.3f}"
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> DecisionRecord:
        data = dict(item)
        data["duration_ms"] = float(data["duration_ms"])
        return cls.model_validate(data)


class DecisionStore(Protocol):
    def put(self, record: DecisionRecord) -> bool:
        """Write the record unless one with the same key exists; True when this call wrote it."""
        ...

    def get(self, correlation_id: str, step_key: str) -> DecisionRecord | None: ...

    def list(self, correlation_id: str) -> list[DecisionRecord]: ...


class InMemoryDecisionStore:
    """Twin of the DynamoDB store for tests."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], DecisionRecord] = {}

    def put(self, record: DecisionRecord) -> bool:
        key = (record.correlation_id, record.step_key)
        if key in self.records:
            return False
        self.records[key] = record
        return True

    def get(self, correlation_id: str, step_key: str) -> DecisionRecord | None:
        return self.records.get((correlation_id, step_key))

    def list(self, correlation_id: str) -> list[DecisionRecord]:
        found = [r for (c, _), r in self.records.items() if c == correlation_id]
        return sorted(found, key=lambda r: (r.started_at, r.step_key))


class DynamoDecisionStore:
    """Decisions table: partition key ``correlation_id``, sort key ``step_key``."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def put(self, record: DecisionRecord) -> bool:
        try:
            self._table.put_item(
                Item=record.to_item(),
                ConditionExpression="attribute_not_exists(correlation_id) AND attribute_not_exists(step_key)",
            )
        except self._table.meta.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def get(self, correlation_id: str, step_key: str) -> DecisionRecord | None:
        found = self._table.get_item(
            Key={"correlation_id": correlation_id, "step_key": step_key}, ConsistentRead=True
        ).get("Item")
        return None if found is None else DecisionRecord.from_item(found)

    def list(self, correlation_id: str) -> list[DecisionRecord]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "correlation_id = :c",
            "ExpressionAttributeValues": {":c": correlation_id},
            "ConsistentRead": True,
        }
        while True:
            page = self._table.query(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        records = [DecisionRecord.from_item(i) for i in items]
        return sorted(records, key=lambda r: (r.started_at, r.step_key))
