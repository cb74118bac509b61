"""What a doc-review run's state can grow to, against Step Functions' 256 KiB limit on a state's input and output.

The API claim-checks the request (its body never enters the state), and intake keeps the claims within
MAX_CLAIMS and MAX_CLAIMS_BYTES: these tests build the largest state those limits allow and measure it the way
the local plane's Step Functions (moto) does, JSON with non-ASCII escaped, the larger of the two measures.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.models import (
    ApprovalOutcome,
    Claim,
    Decision,
    DocReviewRequest,
    DocumentIn,
    Evidence,
    IntakeResult,
    RiskAssessment,
    S3Ref,
    Salience,
    Summary,
    Verdict,
)
from functions.intake.service import (
    MAX_CLAIM_CHARS,
    MAX_CLAIMS,
    MAX_CLAIMS_BYTES,
    InMemoryDocumentStore,
    claim_bytes,
    intake,
    within_budget,
)

pytestmark = pytest.mark.unit

STATE_LIMIT = 256 * 1024
REF = S3Ref(bucket="agentplane-documents", key="documents/" + "0" * 64 + ".json", sha256="0" * 64, size_bytes=10**6)
PASSAGE_CHARS = 500  # the shipped knowledge base's passages are shorter (the largest is under 480 characters)
EVIDENCE = 3


def measured(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=True).encode("utf-8"))


def largest_claims() -> list[Claim]:
    """As many claims as intake keeps, each as long as a claim may be, of the widest characters."""
    claims = [
        Claim(claim_id=f"c-{n:03d}", text="\U0001f600" * (MAX_CLAIM_CHARS - 1) + ".", sentence_index=n)
        for n in range(1, 400)
    ]
    kept, _ = within_budget(claims)
    return kept


def largest_verdict(claim: Claim) -> Verdict:
    passage = Evidence(passage_id="kb-" + "9" * 8, source="x" * 80, text="y" * PASSAGE_CHARS, score=99.99)
    return Verdict(
        claim_id=claim.claim_id,
        label="not-enough-info",
        confidence=0.3,
        evidence=[passage] * EVIDENCE,
        rationale="z" * 300,
        escalated=True,
        degraded="d" * 300,
    )


def test_the_largest_state_a_run_can_reach_fits_the_limit() -> None:
    claims = largest_claims()
    assert sum(claim_bytes(c) for c in claims) <= MAX_CLAIMS_BYTES
    verdicts = [largest_verdict(c).model_dump(mode="json") for c in claims]
    claim_dicts = [c.model_dump(mode="json") for c in claims]
    risk = RiskAssessment(
        level="high",
        score=1.0,
        reasons=["r" * 300] * 8,
        policy_version="2026-12-02",
        recommended_outcome="escalate",
        degraded=[f"c-{n:03d}: " + "d" * 300 for n in range(MAX_CLAIMS + 2)],
    ).model_dump(mode="json")
    # GIVEN everything the state holds when RecordDecision is entered (the request only by reference)
    state = {
        "workflow": "doc-review",
        "trace_id": "1-" + "0" * 8 + "-" + "0" * 24,
        "traceparent": "00-" + "0" * 32 + "-" + "0" * 16 + "-01",
        "correlation_id": "0" * 36,
        "submitted_at": datetime.now(UTC).isoformat(),
        "deadline": datetime.now(UTC).isoformat(),
        "request_ref": REF.model_dump(mode="json"),
        "intake": IntakeResult(document_ref=REF, title="t" * 200, claims=claims, claims_left_out=10**6).model_dump(
            mode="json"
        ),
        "summary": Summary(
            summary=" ".join(c.text for c in claims),
            claims=claims,
            salience=[Salience(claim_id=c.claim_id, score=0.123456789, selected=True) for c in claims],
            model="m" * 100,
        ).model_dump(mode="json"),
        "degraded": {"steps": ["s" * 300]},
        "verdicts": verdicts,
        "risk": risk,
        "approval": ApprovalOutcome(
            decision="approve", approval_id="a" * 36, actor="h" * 200, reason="x" * 1000
        ).model_dump(mode="json"),
    }
    # AND what RecordDecision is handed and returns
    payload = {"claims": claim_dicts, "verdicts": verdicts, "risk": risk, "title": "t" * 200}
    decision = Decision(
        decision_id="d-" + "0" * 24,
        workflow="doc-review",
        outcome="accept",
        risk_level="high",
        summary="s" * 2000,
        decided_at=datetime.now(UTC),
        degraded=risk["degraded"],
    ).model_dump(mode="json")

    # THEN each is under the limit, with room to spare
    assert measured({**state, "decision": decision}) < STATE_LIMIT * 0.95
    assert measured({"payload": payload, "envelope": "e" * 2000}) < STATE_LIMIT * 0.95


def test_intake_keeps_what_a_run_can_carry_and_counts_the_rest() -> None:
    # GIVEN the longest text the request model accepts, every sentence a checkable claim in multi-byte characters
    sentence = "Der Anbieter hält seit 2019 die Zertifizierung ISO 27001 für alle Rechenzentren 😀. "
    text = (sentence * (100_000 // len(sentence) + 1))[:100_000]
    request = DocReviewRequest(document=DocumentIn(title="Größe", text=text), metadata={"k": "ü" * 5000})

    # WHEN intake takes it in
    result = intake(request, store=InMemoryDocumentStore(), bucket="agentplane-documents")

    # THEN it keeps the claims the budget allows and says how many it left out
    assert 0 < len(result.claims) <= MAX_CLAIMS
    assert sum(claim_bytes(c) for c in result.claims) <= MAX_CLAIMS_BYTES
    assert result.claims_left_out == text.count("😀.") - len(result.claims)
