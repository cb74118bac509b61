"""The executions view: one item per run (who started it, its trace, its decision), plus idempotency-key markers."""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from contracts.models import Decision
from functions.runtime.adapters import get_item, put_new


class ExecutionItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    execution_id: str
    workflow: str
    execution_arn: str
    trace_id: str
    submitted_at: str
    request_sha256: str
    idempotency_key: str | None = None
    decision: Decision | None = None
    submitted_by: str | None = None  # the caller's ARN (requestContext.identity.userArn); None before RBAC


class ExecutionStore(Protocol):
    def claim_key(self, workflow: str, key: str, *, execution_id: str, request_sha256: str) -> tuple[str, str] | None:
        """Reserve an idempotency key for a new run; if taken, return (execution_id, request_sha256) of its owner."""
        ...

    def release_key(self, workflow: str, key: str) -> None: ...

    def put(self, item: ExecutionItem) -> None: ...

    def get(self, execution_id: str) -> ExecutionItem | None: ...

    def set_decision(self, execution_id: str, decision: Decision) -> None: ...


def _marker(workflow: str, key: str) -> str:
    return f"idempotency-key#{workflow}#{key}"


class InMemoryExecutionStore:
    def __init__(self) -> None:
        self.items: dict[str, ExecutionItem] = {}
        self.markers: dict[str, tuple[str, str]] = {}

    def claim_key(self, workflow: str, key: str, *, execution_id: str, request_sha256: str) -> tuple[str, str] | None:
        marker = _marker(workflow, key)
        if marker in self.markers:
            return self.markers[marker]
        self.markers[marker] = (execution_id, request_sha256)
        return None

    def release_key(self, workflow: str, key: str) -> None:
        self.markers.pop(_marker(workflow, key), None)

    def put(self, item: ExecutionItem) -> None:
        self.items[item.execution_id] = item

    def get(self, execution_id: str) -> ExecutionItem | None:
        return self.items.get(execution_id)

    def set_decision(self, execution_id: str, decision: Decision) -> None:
        if execution_id in self.items:
            self.items[execution_id] = self.items[execution_id].model_copy(update={"decision": decision})


class DynamoExecutionStore:
    """Executions table, partition key ``execution_id``."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def claim_key(self, workflow: str, key: str, *, execution_id: str, request_sha256: str) -> tuple[str, str] | None:
        marker = _marker(workflow, key)
        try:
            self._table.put_item(
                Item={"execution_id": marker, "owner": execution_id, "request_sha256": request_sha256},
                ConditionExpression="attribute_not_exists(execution_id)",
            )
        except self._table.meta.client.exceptions.ConditionalCheckFailedException:
            found = self._table.get_item(Key={"execution_id": marker}, ConsistentRead=True).get("Item", {})
            return str(found.get("owner", "")), str(found.get("request_sha256", ""))
        return None

    def release_key(self, workflow: str, key: str) -> None:
        self._table.delete_item(Key={"execution_id": _marker(workflow, key)})

    def put(self, item: ExecutionItem) -> None:
        put_new(self._table, "execution_id", item)

    def get(self, execution_id: str) -> ExecutionItem | None:
        found = get_item(self._table, "execution_id", execution_id)
        if found is None or "workflow" not in found:
            return None
        return ExecutionItem.model_validate(found)

    def set_decision(self, execution_id: str, decision: Decision) -> None:
        self._table.update_item(
            Key={"execution_id": execution_id},
            UpdateExpression="SET #d = :d",
            ConditionExpression="attribute_exists(execution_id)",
            ExpressionAttributeNames={"#d": "decision"},
            ExpressionAttributeValues={":d": decision.model_dump(mode="json", exclude_none=True)},
        )
