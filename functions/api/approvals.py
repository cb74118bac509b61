"""Approvals: list what waits for a person; settle one, once, in time, by someone other than the submitter."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from contracts.models import ApprovalDecisionRequest
from functions.api.service import ProblemError, parse_body, person_of
from functions.runtime.approvals import ApprovalStore, Status
from functions.runtime.decisions import DecisionRecord, DecisionStore, step_key

STATUSES: tuple[Status, ...] = ("PENDING", "APPROVED", "REJECTED", "EXPIRED")


class RunCallbacks(Protocol):
    def resume(self, task_token: str, output: dict[str, Any]) -> bool:
        """Hand the decision to the waiting run; False when it no longer waits (timed out, already resumed)."""
        ...


def list_approvals(status: str | None, *, store: ApprovalStore) -> dict[str, Any]:
    wanted = (status or "PENDING").upper()
    if wanted not in STATUSES:
        raise ProblemError(400, "Invalid status", f"status must be one of {', '.join(STATUSES)}", kind="validation")
    return {"approvals": [item.public() for item in store.by_status(wanted)]}


def decide_approval(
    approval_id: str,
    raw_body: str | None,
    *,
    caller_arn: str | None,
    store: ApprovalStore,
    runs: RunCallbacks,
    decisions: DecisionStore,
    now: datetime,
) -> dict[str, Any]:
    item = store.get(approval_id)
    if item is None:
        raise ProblemError(404, "Unknown approval", f"no approval {approval_id!r}", kind="not-found")
    request = parse_body(raw_body, ApprovalDecisionRequest)
    assert isinstance(request, ApprovalDecisionRequest)
    if caller_arn is None:
        raise ProblemError(401, "Unauthenticated", "approvals need a signed caller", kind="unauthenticated")
    if item.submitted_by is not None and person_of(item.submitted_by) == person_of(caller_arn):
        # The person, not the session: one person holding the submitter and approver personas is refused too.
        raise ProblemError(
            403, "Self-approval refused", "an approver cannot approve a run they submitted", kind="forbidden"
        )
    if item.status != "PENDING":
        raise ProblemError(409, "Approval already settled", f"approval {approval_id} is {item.status}", kind="conflict")
    if now >= datetime.fromisoformat(item.expires_at):
        store.settle(
            approval_id,
            status="EXPIRED",
            decided_by="system:expiry",
            reason="window closed",
            decided_at=now.isoformat(),
        )
        raise ProblemError(409, "Approval expired", f"the window closed at {item.expires_at}", kind="expired")
    if request.args_sha256 != item.args_sha256:
        raise ProblemError(
            409,
            "Approval void",
            "what you reviewed is not what waits for approval (its digest differs); review it again",
            kind="arguments-changed",
        )
    status: Status = "APPROVED" if request.decision == "approve" else "REJECTED"
    actor = f"human:{caller_arn}"
    if not store.settle(
        approval_id, status=status, decided_by=actor, reason=request.reason, decided_at=now.isoformat()
    ):
        raise ProblemError(
            409, "Approval already settled", f"approval {approval_id} was settled just now", kind="conflict"
        )
    outcome = {
        "decision": request.decision,
        "approval_id": approval_id,
        "actor": actor,
        "reason": request.reason,
        "args_sha256": item.args_sha256,
    }
    if not runs.resume(item.task_token, outcome):
        raise ProblemError(409, "Run no longer waits", "the run stopped waiting for this approval", kind="expired")
    decisions.put(
        DecisionRecord.of(
            input={"approval_id": approval_id, "args_sha256": item.args_sha256, "policy_version": item.policy_version},
            output={"decision": request.decision, "reason": request.reason},
            started=datetime.fromisoformat(item.requested_at),
            finished=now,
            correlation_id=item.execution_id,
            step_key=step_key(f"{item.execution_id}/Approval", approval_id),
            trace_id=item.trace_id,
            causation_id=f"{item.execution_id}/RequestApproval",
            agent="approval-gate",
            agent_version=item.policy_version,
            capability="human-approval",
            capability_version=item.policy_version,
            status="SUCCEEDED",
            actor=actor,
        )
    )
    return {"approval_id": approval_id, "status": status, "execution_id": item.execution_id}
