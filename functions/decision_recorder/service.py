"""Turns a finished (or failed) run into its decision, and that decision into the event the bus carries."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import datetime
from typing import Literal

from contracts.models import Claim, Decision, DecisionInput, DecisionRecordedDetail, FailureInput


def decision_id_for(correlation_id: str) -> str:
    """One decision per run: the id is derived from the run, so a redelivered step reuses it."""
    return "d-" + hashlib.sha256(correlation_id.encode("utf-8")).hexdigest()[:24]


def decide(request: DecisionInput, *, decision_id: str, now: datetime) -> Decision:
    """The policy recommends; where the gate asked a person, their decision (or the timeout) settles it."""
    labels = Counter(v.label for v in request.verdicts)
    tally = ", ".join(f"{labels[label]} {label}" for label in ("supported", "refuted", "not-enough-info"))
    risk = request.risk
    approval = request.approval
    outcome: Literal["accept", "accept-with-notes", "escalate", "reject"] = risk.recommended_outcome
    settled = ""
    if approval.decision == "approve":
        outcome, settled = "accept", f"; approved by {approval.actor}: {approval.reason}"
    elif approval.decision == "reject":
        outcome, settled = "reject", f"; rejected by {approval.actor}: {approval.reason}"
    elif approval.decision == "timeout":
        outcome, settled = "escalate", "; no approver decided in time: escalated"
    return Decision(
        decision_id=decision_id,
        workflow=request.workflow,
        outcome=outcome,
        risk_level=risk.level,
        summary=f"{request.title}: {len(request.claims)} claims ({tally}); risk {risk.level} "
        f"({risk.score:.2f}, policy {risk.policy_version}) -> {risk.recommended_outcome}{settled}"
        + (f"; {len(risk.degraded)} step(s) degraded" if risk.degraded else ""),
        decided_at=now,
        approval=None if approval.decision == "not-required" else approval,
        degraded=list(risk.degraded),  # what the decision rests on that a full implementation did not do
    )


def failure_reason(cause: str) -> str:
    """Step Functions passes a Lambda failure's cause as its JSON error object; keep just the message."""
    try:
        parsed = json.loads(cause)
    except json.JSONDecodeError:
        parsed = None
    message = parsed.get("errorMessage") if isinstance(parsed, dict) else None
    text = str(message) if message else cause
    return text if len(text) <= 300 else text[:297] + "..."


def record_failure(request: FailureInput, *, decision_id: str, now: datetime) -> Decision:
    cause = failure_reason(request.cause)
    return Decision(
        decision_id=decision_id,
        workflow=request.workflow,
        outcome="failed",
        summary=f"{request.workflow} failed with {request.error}" + (f": {cause}" if cause else ""),
        decided_at=now,
    )


def recorded_detail(
    decision: Decision, *, execution_id: str, trace_id: str, claims: list[Claim], traceparent: str | None = None
) -> DecisionRecordedDetail:
    return DecisionRecordedDetail(
        execution_id=execution_id, trace_id=trace_id, decision=decision, claims=claims, traceparent=traceparent
    )
