"""Approval logic with in-memory stores: single use, in time, by someone else, for what was reviewed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts.models import ApprovalOutcome, DecisionInput, RiskAssessment, S3Ref
from functions.api.approvals import decide_approval, list_approvals
from functions.api.service import ProblemError
from functions.approval_gate.service import BadApprovalRequest, open_approval
from functions.decision_recorder.service import decide
from functions.runtime.approvals import InMemoryApprovalStore
from functions.runtime.decisions import InMemoryDecisionStore

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SUBMITTER = "arn:aws:sts::123456789012:assumed-role/submitter-role/alice"
APPROVER = "arn:aws:sts::123456789012:assumed-role/approver-role/bob"
REQUEST = {
    "task_token": "token-1",
    "execution_id": "run-1",
    "trace_id": "1-6b000000-0123456789abcdef01234567",
    "workflow": "doc-review",
    "policy_version": "2026-11-01",
    "timeout_s": 3600,
    "subject": {"title": "memo", "risk": {"level": "high", "score": 0.72}},
}


class Runs:
    def __init__(self, waiting: bool = True) -> None:
        self.waiting = waiting
        self.resumed: list[tuple[str, dict[str, Any]]] = []

    def resume(self, task_token: str, output: dict[str, Any]) -> bool:
        if self.waiting:
            self.resumed.append((task_token, output))
        return self.waiting


@pytest.fixture
def store() -> InMemoryApprovalStore:
    approvals = InMemoryApprovalStore()
    approvals.put(open_approval(REQUEST, approval_id="a-1", now=NOW, submitted_by=SUBMITTER))
    return approvals


def reviewed(store: InMemoryApprovalStore) -> str:
    item = store.get("a-1")
    assert item is not None
    return item.args_sha256


def settle(
    store: InMemoryApprovalStore,
    body: dict[str, Any],
    *,
    caller: str = APPROVER,
    runs: Runs | None = None,
    now: datetime = NOW,
) -> Any:
    """Settle a-1; the body names what waits (its args_sha256) unless it says otherwise."""
    return decide_approval(
        "a-1",
        json.dumps({"args_sha256": reviewed(store), **body}),
        caller_arn=caller,
        store=store,
        runs=runs or Runs(),
        decisions=InMemoryDecisionStore(),
        now=now,
    )


def test_an_approval_resumes_the_run_once_with_who_and_why(store: InMemoryApprovalStore) -> None:
    runs = Runs()
    decisions = InMemoryDecisionStore()

    answer = decide_approval(
        "a-1",
        json.dumps({"decision": "approve", "reason": "ok", "args_sha256": reviewed(store)}),
        caller_arn=APPROVER,
        store=store,
        runs=runs,
        decisions=decisions,
        now=NOW + timedelta(minutes=5),
    )

    assert answer["status"] == "APPROVED"
    [(token, outcome)] = runs.resumed
    assert token == "token-1"
    assert outcome == {
        "decision": "approve",
        "approval_id": "a-1",
        "actor": f"human:{APPROVER}",
        "reason": "ok",
        "args_sha256": reviewed(store),  # what the person decided on travels with the decision
    }
    [record] = decisions.list("run-1")
    assert (record.actor, record.agent, record.status) == (f"human:{APPROVER}", "approval-gate", "SUCCEEDED")
    assert json.loads(record.input_json)["policy_version"] == "2026-11-01"
    with pytest.raises(ProblemError) as twice:
        settle(store, {"decision": "reject", "reason": "again"})
    assert twice.value.status == 409


@pytest.mark.parametrize(
    ("body", "caller", "now", "status", "kind"),
    [
        pytest.param({"decision": "approve", "reason": "mine"}, SUBMITTER, NOW, 403, "forbidden", id="self-approval"),
        pytest.param(
            {"decision": "approve", "reason": "mine, as approver"},
            "arn:aws:sts::123456789012:assumed-role/approver-role/alice",
            NOW,
            403,
            "forbidden",
            id="self-approval with another persona",
        ),
        pytest.param(
            {"decision": "approve", "reason": "late"}, APPROVER, NOW + timedelta(hours=2), 409, "expired", id="late"
        ),
        pytest.param(
            {"decision": "approve", "reason": "x", "args_sha256": "0" * 64},
            APPROVER,
            NOW,
            409,
            "arguments-changed",
            id="changed",
        ),
        pytest.param({"decision": "approve"}, APPROVER, NOW, 400, "validation", id="no reason"),
        pytest.param(
            {"decision": "approve", "reason": "x", "approved": True},
            APPROVER,
            NOW,
            400,
            "validation",
            id="mass assignment",
        ),
    ],
)
def test_refusals_resume_nothing(
    store: InMemoryApprovalStore, body: dict[str, Any], caller: str, now: datetime, status: int, kind: str
) -> None:
    runs = Runs()

    with pytest.raises(ProblemError) as refused:
        settle(store, body, caller=caller, runs=runs, now=now)

    assert (refused.value.status, refused.value.kind) == (status, kind)
    assert runs.resumed == []


def test_an_approval_must_name_what_was_reviewed(store: InMemoryApprovalStore) -> None:
    runs = Runs()

    with pytest.raises(ProblemError) as refused:
        decide_approval(
            "a-1",
            json.dumps({"decision": "approve", "reason": "looks fine"}),
            caller_arn=APPROVER,
            store=store,
            runs=runs,
            decisions=InMemoryDecisionStore(),
            now=NOW,
        )

    assert (refused.value.status, refused.value.kind) == (400, "validation")
    assert refused.value.detail.startswith("args_sha256: ")
    assert runs.resumed == []


def test_a_late_approval_marks_the_approval_expired(store: InMemoryApprovalStore) -> None:
    with pytest.raises(ProblemError):
        settle(store, {"decision": "approve", "reason": "late"}, now=NOW + timedelta(hours=2))

    assert list_approvals("EXPIRED", store=store)["approvals"][0]["approval_id"] == "a-1"
    assert list_approvals(None, store=store) == {"approvals": []}
    with pytest.raises(ProblemError):
        list_approvals("SOMETIMES", store=store)


def test_a_run_that_stopped_waiting_cannot_be_resumed(store: InMemoryApprovalStore) -> None:
    with pytest.raises(ProblemError) as gone:
        settle(store, {"decision": "approve", "reason": "ok"}, runs=Runs(waiting=False))
    assert gone.value.kind == "expired"


def test_the_gate_refuses_a_malformed_request() -> None:
    with pytest.raises(BadApprovalRequest):
        open_approval({**REQUEST, "timeout_s": "soon"}, approval_id="a-2", now=NOW, submitted_by=None)


@pytest.mark.parametrize(
    ("approval", "outcome"),
    [
        (ApprovalOutcome(decision="not-required"), "escalate"),
        (ApprovalOutcome(decision="approve", actor="human:x", reason="ok"), "accept"),
        (ApprovalOutcome(decision="reject", actor="human:x", reason="no"), "reject"),
        (ApprovalOutcome(decision="timeout", actor="system:approval-window"), "escalate"),
    ],
)
def test_the_decision_follows_the_approval(approval: ApprovalOutcome, outcome: str) -> None:
    request = DecisionInput(
        workflow="doc-review",
        title="memo",
        document_ref=S3Ref(bucket="bucket", key="documents/x.json", sha256="0" * 64, size_bytes=1),
        claims=[],
        verdicts=[],
        risk=RiskAssessment(
            level="high", score=0.7, reasons=["refuted"], policy_version="p", recommended_outcome="escalate"
        ),
        approval=approval,
    )

    decision = decide(request, decision_id="d-1", now=NOW)

    assert decision.outcome == outcome
    assert (decision.approval is None) == (approval.decision == "not-required")


def test_the_decision_says_what_was_degraded() -> None:
    degraded = ["c-001: evidence-verifier~approximate (fallback: approximate result)"]
    request = DecisionInput(
        workflow="doc-review",
        title="memo",
        document_ref=S3Ref(bucket="bucket", key="documents/x.json", sha256="0" * 64, size_bytes=1),
        claims=[],
        verdicts=[],
        risk=RiskAssessment(
            level="high",
            score=0.4,
            reasons=["degraded"],
            policy_version="p",
            recommended_outcome="escalate",
            degraded=degraded,
        ),
        approval=ApprovalOutcome(decision="approve", actor="human:x", reason="checked by hand"),
    )

    decision = decide(request, decision_id="d-1", now=NOW)

    assert decision.degraded == degraded
    assert decision.summary.endswith("; 1 step(s) degraded")
