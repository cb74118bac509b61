"""Open an approval: a high-risk run pauses here until a person decides or the window closes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from functions.runtime.approvals import ApprovalItem
from functions.runtime.canonical import canonical_json, sha256_hex


class BadApprovalRequest(ValueError):
    pass


def open_approval(
    event: Mapping[str, Any],
    *,
    approval_id: str,
    now: datetime,
    submitted_by: str | None,
    wait_scale: float = 1.0,
) -> ApprovalItem:
    """The pending approval; it expires when the run's window closes (``wait_scale``: the local plane's clock)."""
    try:
        subject_json = canonical_json(dict(event["subject"]))
        timeout_s = int(event["timeout_s"]) * wait_scale
        return ApprovalItem(
            approval_id=approval_id,
            execution_id=str(event["execution_id"]),
            trace_id=str(event["trace_id"]),
            workflow=str(event["workflow"]),
            status="PENDING",
            subject_json=subject_json,
            args_sha256=sha256_hex(subject_json.encode()),
            policy_version=str(event["policy_version"]),
            requested_at=now.isoformat(),
            expires_at=(now + timedelta(seconds=timeout_s)).isoformat(),
            submitted_by=submitted_by,
            task_token=str(event["task_token"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise BadApprovalRequest(f"approval request is missing or has a bad field: {error}") from None
