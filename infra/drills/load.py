"""Load helpers shared by the chaos drills and the load test: approve what waits, let every accepted run end."""

from __future__ import annotations

import time
from typing import Any

from infra.client import TERMINAL, ClientError, Endpoint, call, settle


def approve_pending(approver: Endpoint, reason: str) -> None:
    """As the approver, approve every pending approval (what a person at the queue would do); answers are not
    checked: an approval that raced its window or another approver is simply gone."""
    pending = call(approver, "GET", "/v1/approvals?status=PENDING")
    for approval in pending.body.get("approvals", []) if pending.status == 200 else []:
        try:
            settle(approver, approval["approval_id"], "approve", reason, approval["args_sha256"])
        except ClientError:  # decided elsewhere meanwhile, or its window closed: nothing waits any more
            continue


def drain(
    reader: Endpoint,
    approver: Endpoint,
    execution_ids: set[str],
    *,
    timeout: float,
    reason: str,
    interval: float = 0.1,
) -> dict[str, dict[str, Any]]:
    """Each run once it has ended (approving what waits for a person), or as it stood at the deadline."""
    runs: dict[str, dict[str, Any]] = {}
    open_ids = set(execution_ids)
    deadline = time.monotonic() + timeout
    while open_ids and time.monotonic() < deadline:
        approve_pending(approver, reason)
        for execution_id in sorted(open_ids):
            answer = call(reader, "GET", f"/v1/executions/{execution_id}")
            if answer.status == 200:
                runs[execution_id] = answer.body
                if answer.body["status"] in TERMINAL:
                    open_ids.discard(execution_id)
        time.sleep(interval)
    return runs
