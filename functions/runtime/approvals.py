"""Pending approvals: what waits for a person, for how long, and the token that resumes the run (never shown)."""

from __future__ import annotations

import json
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from functions.runtime.adapters import get_item, put_new, scan_all

Status = Literal["PENDING", "APPROVED", "REJECTED", "EXPIRED"]


class ApprovalItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    approval_id: str
    execution_id: str
    trace_id: str
    workflow: str
    status: Status
    subject_json: str  # canonical JSON: what is being approved, stored as text (no float/Decimal drift)
    args_sha256: str
    policy_version: str
    requested_at: str
    expires_at: str
    submitted_by: str | None = None
    task_token: str
    decided_by: str | None = None
    reason: str | None = None
    decided_at: str | None = None

    @property
    def subject(self) -> Any:
        return json.loads(self.subject_json)

    def public(self) -> dict[str, Any]:
        """What callers see: everything but the task token (a bearer credential for the run)."""
        shown = self.model_dump(mode="json", exclude={"task_token", "subject_json"}, exclude_none=True)
        return {**shown, "subject": self.subject}


class ApprovalStore(Protocol):
    def put(self, item: ApprovalItem) -> None: ...

    def get(self, approval_id: str) -> ApprovalItem | None: ...

    def by_status(self, status: Status) -> list[ApprovalItem]: ...

    def settle(self, approval_id: str, *, status: Status, decided_by: str, reason: str, decided_at: str) -> bool:
        """Move a PENDING approval to its final status; False when it was no longer pending (single use)."""
        ...


class InMemoryApprovalStore:
    def __init__(self) -> None:
        self.items: dict[str, ApprovalItem] = {}

    def put(self, item: ApprovalItem) -> None:
        self.items[item.approval_id] = item

    def get(self, approval_id: str) -> ApprovalItem | None:
        return self.items.get(approval_id)

    def by_status(self, status: Status) -> list[ApprovalItem]:
        return sorted((i for i in self.items.values() if i.status == status), key=lambda i: i.requested_at)

    def settle(self, approval_id: str, *, status: Status, decided_by: str, reason: str, decided_at: str) -> bool:
        item = self.items.get(approval_id)
        if item is None or item.status != "PENDING":
            return False
        self.items[approval_id] = item.model_copy(
            update={"status": status, "decided_by": decided_by, "reason": reason, "decided_at": decided_at}
        )
        return True


class DynamoApprovalStore:
    """Approvals table, partition key ``approval_id``."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def put(self, item: ApprovalItem) -> None:
        put_new(self._table, "approval_id", item)

    def get(self, approval_id: str) -> ApprovalItem | None:
        found = get_item(self._table, "approval_id", approval_id)
        return None if found is None else ApprovalItem.model_validate(found)

    def by_status(self, status: Status) -> list[ApprovalItem]:
        items = scan_all(
            self._table,
            FilterExpression="#s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": status},
            ConsistentRead=True,
        )
        return sorted((ApprovalItem.model_validate(i) for i in items), key=lambda i: i.requested_at)

    def settle(self, approval_id: str, *, status: Status, decided_by: str, reason: str, decided_at: str) -> bool:
        try:
            self._table.update_item(
                Key={"approval_id": approval_id},
                UpdateExpression="SET #s = :s, decided_by = :by, reason = :why, decided_at = :at",
                ConditionExpression="#s = :pending",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":s": status,
                    ":by": decided_by,
                    ":why": reason,
                    ":at": decided_at,
                    ":pending": "PENDING",
                },
            )
        except self._table.meta.client.exceptions.ConditionalCheckFailedException:
            return False
        return True
