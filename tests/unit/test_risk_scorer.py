from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts.models import Claim, ClaimCheck, DocReviewRequest, RiskInput, Verdict
from functions.evidence_verifier.service import default_kb, verify
from functions.intake.service import InMemoryDocumentStore, intake
from functions.risk_scorer.service import (
    DEFAULT_POLICY_PATH,
    Policy,
    PolicyError,
    default_policy,
    load_policy,
    score,
)
from tests.sample_events import load_event

pytestmark = pytest.mark.unit


def claims(count: int) -> list[Claim]:
    return [Claim(claim_id=f"c-{n:03d}", text=f"Statement {n}.", sentence_index=n) for n in range(1, count + 1)]


def verdict(claim_id: str, label: str, confidence: float = 0.9) -> Verdict:
    return Verdict.model_validate(
        {"claim_id": claim_id, "label": label, "confidence": confidence, "rationale": "test verdict."}
    )


def risk_input(*labels: tuple[str, float]) -> RiskInput:
    return RiskInput(
        claims=claims(len(labels)),
        verdicts=[verdict(f"c-{n:03d}", label, conf) for n, (label, conf) in enumerate(labels, start=1)],
    )


def policy_document(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    document.update(overrides)
    return document


def test_shipped_policy_loads_with_its_version() -> None:
    # GIVEN the policy file that ships with the scorer
    # WHEN it is loaded
    policy = load_policy(DEFAULT_POLICY_PATH)

    # THEN it is the versioned policy the handler uses
    assert policy.version == "2026-12-02"
    assert policy == default_policy()
    assert [rule.name for rule in policy.rules] == ["confident-refutation", "any-refutation", "mostly-unverified"]


def test_all_supported_is_low_risk_and_accepted() -> None:
    # GIVEN three confidently supported claims
    # WHEN they are scored
    assessment = score(risk_input(("supported", 0.95), ("supported", 0.9), ("supported", 0.8)), default_policy())

    # THEN the risk is low and the document is accepted
    assert (assessment.level, assessment.score, assessment.recommended_outcome) == ("low", 0.0, "accept")
    assert assessment.policy_version == "2026-12-02"
    assert assessment.reasons == [
        "score 0.00 from 0 refuted, 0 not-enough-info and 3 supported of 3 claim(s): low "
        "(medium from 0.20, high from 0.50)"
    ]


def test_confident_refutation_escalates_whatever_the_score() -> None:
    # GIVEN ten claims of which one is refuted with confidence 0.95
    labels = [("supported", 0.95)] * 9 + [("refuted", 0.95)]

    # WHEN they are scored
    assessment = score(risk_input(*labels), default_policy())

    # THEN the score alone says low, but the hard rule makes it high and escalates
    assert assessment.score == 0.1
    assert (assessment.level, assessment.recommended_outcome) == ("high", "escalate")
    assert "rule confident-refutation: c-010 refuted at confidence >= 0.70, so at least high (raised from low)" in (
        assessment.reasons
    )


def test_unsure_refutation_only_raises_to_medium() -> None:
    # GIVEN one refutation below the confident-refutation threshold among supported claims
    labels = [("supported", 0.95)] * 9 + [("refuted", 0.6)]

    # WHEN they are scored
    assessment = score(risk_input(*labels), default_policy())

    # THEN only the any-refutation rule fires
    assert (assessment.level, assessment.recommended_outcome) == ("medium", "accept-with-notes")
    assert [reason for reason in assessment.reasons if reason.startswith("rule ")] == [
        "rule any-refutation: c-010 refuted, so at least medium (raised from low)"
    ]


def test_a_large_share_of_unverified_claims_is_medium() -> None:
    # GIVEN two of five claims that cannot be verified (40% >= 34%), weighing 0.16 in the score
    labels = [("supported", 0.9)] * 3 + [("not-enough-info", 0.8)] * 2

    # WHEN they are scored
    assessment = score(risk_input(*labels), default_policy())

    # THEN the mostly-unverified rule lifts the level to medium
    assert assessment.score == 0.16
    assert assessment.level == "medium"
    assert "rule mostly-unverified: c-004, c-005 not-enough-info, so at least medium (raised from low)" in (
        assessment.reasons
    )


def test_score_thresholds_set_the_level_without_rules() -> None:
    # GIVEN a policy without hard rules, and half of the claims unverified
    policy = Policy.model_validate(policy_document(rules=[]))
    labels = [("not-enough-info", 0.9)] * 3 + [("supported", 0.9)] * 3

    # WHEN they are scored
    assessment = score(risk_input(*labels), policy)

    # THEN 3 * 0.4 / 6 = 0.2 reaches the medium threshold
    assert (assessment.score, assessment.level) == (0.2, "medium")


def test_low_confidence_support_counts_as_not_enough_info() -> None:
    # GIVEN a supported verdict below the policy's minimum confidence
    # WHEN it is scored
    assessment = score(risk_input(("supported", 0.4), ("supported", 0.9)), default_policy())

    # THEN it weighs as not-enough-info and the reasons say so
    assert assessment.score == 0.2
    assert "c-001 is supported at confidence 0.40, below 0.50: counted as not-enough-info" in assessment.reasons


def test_claim_without_a_verdict_counts_as_not_enough_info() -> None:
    # GIVEN two claims but a verdict for only one
    request = RiskInput(claims=claims(2), verdicts=[verdict("c-001", "supported")])

    # WHEN it is scored
    assessment = score(request, default_policy())

    # THEN the missing one is unverified, which is half the document
    assert "c-002 has no verdict: counted as not-enough-info" in assessment.reasons
    assert assessment.level == "medium"


def test_verdict_for_an_unknown_claim_is_a_policy_error() -> None:
    # GIVEN a verdict whose claim is not among the claims
    request = RiskInput(claims=claims(2), verdicts=[verdict("c-001", "supported"), verdict("c-009", "refuted")])

    # WHEN it is scored
    # THEN it is refused, naming the stray claim id
    with pytest.raises(PolicyError, match="verdict for unknown claim 'c-009'; claims are c-001, c-002"):
        score(request, default_policy())


def test_two_verdicts_for_one_claim_is_a_policy_error() -> None:
    # GIVEN two verdicts for the same claim
    request = RiskInput(claims=claims(1), verdicts=[verdict("c-001", "supported"), verdict("c-001", "refuted")])

    # WHEN it is scored
    # THEN it is refused
    with pytest.raises(PolicyError, match="more than one verdict for claim 'c-001'"):
        score(request, default_policy())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"levels": {"medium": 0.6, "high": 0.5}}, "medium .0.6. must be below high", id="levels"),
        pytest.param({"weights": {"supported": 0, "refuted": 1}}, r"weights\.not-enough-info: Field required", id="w"),
        pytest.param({"version": "2026-11-01", "owner": "risk"}, "owner: Extra inputs are not permitted", id="extra"),
        pytest.param(
            {"rules": [{"name": "r", "label": "refuted", "at_least": "high"}]},
            "needs exactly one of min_count and min_share",
            id="rule without threshold",
        ),
        pytest.param(
            {"outcomes": {"low": "accept", "medium": "accept", "high": "ignore"}},
            r"outcomes\.high: Input should be",
            id="outcome",
        ),
    ],
)
def test_invalid_policy_is_refused_with_the_problem(tmp_path: Path, overrides: dict[str, Any], message: str) -> None:
    # GIVEN a policy file with one mistake
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy_document(**overrides)), encoding="utf-8")

    # WHEN it is loaded
    # THEN the error names the file and the mistake
    with pytest.raises(PolicyError, match=message) as raised:
        load_policy(path)
    assert str(raised.value).startswith(str(path))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("version: [unclosed", "not valid YAML", id="yaml"),
        pytest.param("- a list\n", "a policy is a mapping, got list", id="not a mapping"),
        pytest.param("version: 2026-11-01\n", "version: Input should be a valid string", id="unquoted date"),
    ],
)
def test_unreadable_policy_is_a_policy_error(tmp_path: Path, content: str, message: str) -> None:
    # GIVEN a policy file that is not a policy
    path = tmp_path / "policy.yaml"
    path.write_text(content, encoding="utf-8")

    # WHEN it is loaded
    # THEN it is a policy error
    with pytest.raises(PolicyError, match=message):
        load_policy(path)


@pytest.mark.parametrize(
    ("event", "level", "outcome"),
    [
        pytest.param("doc-review-request.json", "high", "escalate", id="memo with a refuted claim"),
        pytest.param("doc-review-low-risk.json", "low", "accept", id="all supported"),
    ],
)
def test_sample_requests_come_out_as_the_demo_expects(event: str, level: str, outcome: str) -> None:
    # GIVEN a sample request taken in and verified claim by claim
    taken = intake(
        DocReviewRequest.model_validate(load_event(event)), store=InMemoryDocumentStore(), bucket="agentplane-docs"
    )
    verdicts = [verify(ClaimCheck(claim=c, document_ref=taken.document_ref), default_kb()) for c in taken.claims]

    # WHEN the verdicts are scored under the shipped policy
    assessment = score(RiskInput(claims=taken.claims, verdicts=verdicts), default_policy())

    # THEN the level and outcome are the ones the demo shows
    assert (assessment.level, assessment.recommended_outcome) == (level, outcome)


def test_sample_memo_is_escalated_because_of_the_refuted_iso_claim() -> None:
    # GIVEN the sample memo's claims and verdicts
    taken = intake(
        DocReviewRequest.model_validate(load_event("doc-review-request.json")),
        store=InMemoryDocumentStore(),
        bucket="agentplane-docs",
    )
    verdicts = [verify(ClaimCheck(claim=c, document_ref=taken.document_ref), default_kb()) for c in taken.claims]

    # WHEN they are scored
    assessment = score(RiskInput(claims=taken.claims, verdicts=verdicts), default_policy())

    # THEN the score alone is low; the confident refutation of c-006 is what makes it high
    assert assessment.score == 0.14
    assert assessment.reasons == [
        "score 0.14 from 1 refuted, 1 not-enough-info and 8 supported of 10 claim(s): low "
        "(medium from 0.20, high from 0.50)",
        "rule confident-refutation: c-006 refuted at confidence >= 0.70, so at least high (raised from low)",
        "rule any-refutation: c-006 refuted, so at least medium",
    ]


def test_degraded_verdicts_go_to_a_person_and_say_what_was_degraded() -> None:
    # GIVEN every claim answered by the approximate handler after the full verifier failed (not-enough-info, so on
    # its own a medium "accept-with-notes": a refuted claim among them would be missed)
    note = "evidence-verifier~approximate (fallback: approximate result): evidence-verifier failed (ModelError)"
    request = RiskInput(
        claims=claims(3),
        verdicts=[verdict(f"c-00{n}", "not-enough-info", 0.3).model_copy(update={"degraded": note}) for n in (1, 2, 3)],
        degraded=["SummarizeOnCpu: the summarizer endpoint failed"],
    )

    # WHEN it is scored under the shipped policy
    assessment = score(request, default_policy())

    # THEN the run is high risk (the approval gate asks a person), and the assessment names each degraded step
    assert assessment.level == "high"
    assert assessment.recommended_outcome == "escalate"
    assert assessment.degraded == [
        "SummarizeOnCpu: the summarizer endpoint failed",
        *(f"c-00{n}: {note}" for n in (1, 2, 3)),
    ]
    assert "4 step(s) were done by a degraded or fallback implementation, so at least high" in assessment.reasons[-1]


def test_a_policy_may_accept_degraded_evidence() -> None:
    policy = Policy.model_validate(policy_document(degraded_at_least="low"))
    request = RiskInput(
        claims=claims(1), verdicts=[verdict("c-001", "supported").model_copy(update={"degraded": "approximate"})]
    )

    assessment = score(request, policy)

    assert assessment.level == "low"
    assert assessment.degraded == ["c-001: approximate"]
