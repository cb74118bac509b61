from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts.models import Claim, ClaimCheck, DocReviewRequest, S3Ref
from functions.evidence_verifier.service import (
    DEFAULT_KB_PATH,
    KnowledgeBase,
    KnowledgeBaseError,
    Passage,
    default_kb,
    verify,
)
from functions.intake.service import extract_claims
from tests.sample_events import load_event

pytestmark = pytest.mark.unit

DOCUMENT = S3Ref(bucket="agentplane-documents", key="documents/memo.json", sha256="0" * 64, size_bytes=1)


def check(text: str) -> ClaimCheck:
    return ClaimCheck(claim=Claim(claim_id="c-001", text=text, sentence_index=0), document_ref=DOCUMENT)


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD_LINE = json.dumps({"passage_id": "p-1", "source": "handbook", "text": "Acme was founded in 1999."})


def test_shipped_knowledge_base_loads() -> None:
    # GIVEN the knowledge base file that ships with the verifier
    # WHEN it is loaded
    kb = KnowledgeBase.load(DEFAULT_KB_PATH)

    # THEN it holds 60 to 100 passages with unique ids, most naming their entities
    ids = [p.passage_id for p in kb.passages]
    assert 60 <= len(ids) <= 100
    assert len(set(ids)) == len(ids)
    assert sum(1 for p in kb.passages if p.entities) > len(ids) * 3 // 4


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        pytest.param([GOOD_LINE, "{not json"], r"kb\.jsonl:2: .*Invalid JSON", id="bad JSON"),
        pytest.param(
            [GOOD_LINE, "", json.dumps({"passage_id": "p-2", "text": "No source."})],
            r"kb\.jsonl:3: source: Field required",
            id="missing field, after a blank line",
        ),
        pytest.param(
            [json.dumps({"passage_id": "p-1", "source": "s", "text": "t", "score": 1})],
            r"kb\.jsonl:1: score: Extra inputs are not permitted",
            id="unknown field",
        ),
        pytest.param([GOOD_LINE, GOOD_LINE], r"kb\.jsonl:2: duplicate passage_id 'p-1' \(first on line 1\)", id="dup"),
        pytest.param(["", "  "], r"kb\.jsonl: no passages", id="empty"),
    ],
)
def test_load_names_the_line_of_a_bad_passage(tmp_path: Path, lines: list[str], message: str) -> None:
    # GIVEN a knowledge-base file with one problem
    path = write_lines(tmp_path / "kb.jsonl", *lines)

    # WHEN it is loaded
    # THEN the error names the file, the line and the problem
    with pytest.raises(KnowledgeBaseError, match=message):
        KnowledgeBase.load(path)


def test_load_of_a_missing_file_is_a_knowledge_base_error(tmp_path: Path) -> None:
    # GIVEN no file
    # WHEN it is loaded
    # THEN the error says it cannot be read
    with pytest.raises(KnowledgeBaseError, match="cannot read knowledge base"):
        KnowledgeBase.load(tmp_path / "absent.jsonl")


def test_search_ranks_the_passage_that_answers_first() -> None:
    # GIVEN the shipped knowledge base
    kb = default_kb()

    # WHEN it is searched for the headquarters
    hits = kb.search("Where is Northwind Analytics headquartered?", k=3)

    # THEN the founding passage comes first, scores never increase and never go below zero
    assert hits[0].passage_id == "nw-001"
    assert len(hits) == 3
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(score >= 0 for score in scores)


def test_search_without_a_known_term_finds_nothing() -> None:
    # GIVEN a query sharing no term with any passage
    # WHEN it is searched
    # THEN nothing comes back
    assert default_kb().search("zebra quokka", k=3) == []


@pytest.mark.parametrize(
    ("claim", "label", "passage_id", "rationale"),
    [
        pytest.param(
            "Northwind Analytics was founded in 2012 and is headquartered in Rotterdam.",
            "supported",
            "nw-001",
            "nw-001 states the claim, covering 100% of its content words.",
            id="supported",
        ),
        pytest.param(
            "Northwind Analytics was founded in 2009.",
            "refuted",
            "nw-001",
            "nw-001 covers 100% of the claim's content words but gives 2012 where the claim says 2009.",
            id="refuted: year",
        ),
        pytest.param(
            "Northwind Analytics reported revenue of EUR 95 million for fiscal year 2025.",
            "refuted",
            "nw-015",
            "nw-015 covers 100% of the claim's content words but gives 18, 71.3, 84.2 where the claim says 95.",
            id="refuted: amount",
        ),
        pytest.param(
            "Northwind Analytics is certified under PCI DSS.",
            "refuted",
            "nw-049",
            "nw-049 covers 100% of the claim's content words but negates what the claim affirms.",
            id="refuted: the passage negates",
        ),
        pytest.param(
            "Northwind Analytics does not hold ISO/IEC 27001 certification.",
            "refuted",
            "nw-045",
            "nw-045 covers 100% of the claim's content words but affirms what the claim negates.",
            id="refuted: the claim negates",
        ),
        pytest.param(
            "Northwind Analytics does not store payment card data.",
            "supported",
            "nw-049",
            "nw-049 states the claim, covering 100% of its content words.",
            id="supported: both negate",
        ),
        pytest.param(
            "Northwind Analytics is headquartered in Lisbon.",
            "refuted",
            "nw-001",
            "nw-001 covers 58% of the claim's content words but names Rotterdam where the claim names Lisbon.",
            id="refuted: another name in the slot",
        ),
        pytest.param(
            "Northwind Analytics won the European Data Innovation Award in 2024.",
            "not-enough-info",
            "nw-036",
            "No passage states the claim: the closest, nw-036, covers 24% of its content words.",
            id="not-enough-info: off topic",
        ),
        pytest.param(
            "Meridian Freight has used Ledgerline since 2020.",
            "not-enough-info",
            "nw-075",
            "No passage states the claim: the closest, nw-075, covers 51% of its content words.",
            id="not-enough-info: another subject does it",
        ),
        pytest.param(
            "Northwind Analytics does not sell customer data to 40 third parties.",
            "not-enough-info",
            "nw-043",
            "No passage states the claim: the closest, nw-043, covers 100% of its content words and lacks 40.",
            id="not-enough-info: a figure nobody gives",
        ),
        pytest.param(
            "Northwind Analytics keeps application logs for 90 days in Oslo.",
            "not-enough-info",
            "nw-040",
            "No passage states the claim: the closest, nw-040, covers 79% of its content words and lacks Oslo.",
            id="not-enough-info: a name nobody mentions",
        ),
    ],
)
def test_verify_labels_crafted_claims(claim: str, label: str, passage_id: str, rationale: str) -> None:
    # GIVEN a claim about the knowledge base's domain
    # WHEN it is verified
    verdict = verify(check(claim), default_kb())

    # THEN the label, the deciding passage (first evidence) and the rationale say why
    assert verdict.claim_id == "c-001"
    assert verdict.label == label
    assert verdict.evidence[0].passage_id == passage_id
    assert verdict.rationale == rationale
    assert 1 <= len(verdict.evidence) <= 3


@pytest.mark.parametrize(
    ("claim", "confidence"),
    [
        pytest.param("Northwind Analytics was founded in 2012.", 0.95, id="supported, full coverage"),
        pytest.param("Northwind Analytics is headquartered in Lisbon.", 0.76, id="refuted at 58% coverage"),
        pytest.param("Meridian Freight has used Ledgerline since 2020.", 0.721, id="not-enough-info at 51% coverage"),
    ],
)
def test_confidence_follows_coverage(claim: str, confidence: float) -> None:
    # GIVEN claims decided at known coverages
    # WHEN they are verified
    verdict = verify(check(claim), default_kb())

    # THEN confidence is 0.5 + 0.45 * coverage (one minus coverage for not-enough-info)
    assert verdict.confidence == pytest.approx(confidence, abs=0.002)


def test_claim_sharing_no_term_is_not_enough_info_without_evidence() -> None:
    # GIVEN a claim with no word the knowledge base knows
    # WHEN it is verified
    verdict = verify(check("Zebras graze quietly."), default_kb())

    # THEN nothing backs it, and the verifier is as sure as it gets that nothing does
    assert verdict.label == "not-enough-info"
    assert verdict.evidence == []
    assert verdict.confidence == 0.95
    assert verdict.rationale == "No passage in the knowledge base shares a term with the claim."


def test_knowledge_base_built_in_memory_verifies_claims() -> None:
    # GIVEN a small knowledge base about another company
    kb = KnowledgeBase(
        [
            Passage(passage_id="a-1", source="profile", text="Acme Widgets was founded in 1999 in Leeds."),
            Passage(passage_id="a-2", source="profile", text="Acme Widgets employs 120 people."),
            Passage(passage_id="a-3", source="policy", text="Acme Widgets does not sell customer data."),
        ]
    )

    # WHEN claims about it are verified
    labels = [
        verify(check(text), kb).label
        for text in (
            "Acme Widgets employs 120 people.",
            "Acme Widgets employs 300 people.",
            "Acme Widgets sells customer data.",
            "Acme Widgets has a canteen.",
        )
    ]

    # THEN each gets the label its passage warrants
    assert labels == ["supported", "refuted", "refuted", "not-enough-info"]


def test_sample_request_claims_get_the_expected_labels() -> None:
    # GIVEN the claims of the sample vendor memo
    request = DocReviewRequest.model_validate(load_event("doc-review-request.json"))
    claims = extract_claims(request.document.text)

    # WHEN each is verified against the shipped knowledge base
    verdicts = [verify(ClaimCheck(claim=claim, document_ref=DOCUMENT), default_kb()) for claim in claims]

    # THEN the ISO year is refuted, the award cannot be checked, everything else is supported
    assert {v.claim_id: v.label for v in verdicts} == {
        "c-001": "supported",
        "c-002": "supported",
        "c-003": "supported",
        "c-004": "supported",
        "c-005": "supported",
        "c-006": "refuted",
        "c-007": "supported",
        "c-008": "supported",
        "c-009": "not-enough-info",
        "c-010": "supported",
    }


def test_default_kb_is_loaded_once() -> None:
    # GIVEN / WHEN the default knowledge base is asked for twice
    # THEN the same index is returned
    assert default_kb() is default_kb()
