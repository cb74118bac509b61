from __future__ import annotations

import hashlib
import json

import pytest
from pydantic import ValidationError

from contracts.models import DocReviewRequest, DocumentIn
from functions.intake.service import InMemoryDocumentStore, NoClaimsFound, extract_claims, intake, split_sentences
from tests.sample_events import load_event

pytestmark = pytest.mark.unit

BUCKET = "agentplane-documents"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "Revenue grew 3.5% in 2025. Margins held.",
            ["Revenue grew 3.5% in 2025.", "Margins held."],
            id="decimal",
        ),
        pytest.param(
            "It sells to banks, e.g. Brightfield Bank. It also sells to insurers.",
            ["It sells to banks, e.g. Brightfield Bank.", "It also sells to insurers."],
            id="e.g.",
        ),
        pytest.param(
            "Northwind Analytics Inc. was founded in 2012. The vendor is Kestrel Labs Inc. The deal closed in 2022.",
            [
                "Northwind Analytics Inc. was founded in 2012.",
                "The vendor is Kestrel Labs Inc.",
                "The deal closed in 2022.",
            ],
            id="Inc.",
        ),
        pytest.param(
            "It opened an office in the U.S. Market share grew. Sales in the U.S. The end.",
            ["It opened an office in the U.S. Market share grew.", "Sales in the U.S.", "The end."],
            id="U.S. ends a sentence only before an opener",
        ),
        pytest.param(
            "The CEO is Dr. Ilse Marquardt. J. Smith joined in 2019. See No. 5 for details.",
            ["The CEO is Dr. Ilse Marquardt.", "J. Smith joined in 2019.", "See No. 5 for details."],
            id="titles, initials, No.",
        ),
        pytest.param(
            'He said "It works." Then it broke! Why? Nobody knows...',
            ['He said "It works."', "Then it broke!", "Why?", "Nobody knows..."],
            id="quotes and other terminators",
        ),
    ],
)
def test_split_sentences_handles_abbreviations_and_decimals(text: str, expected: list[str]) -> None:
    # GIVEN prose with periods that do and do not end sentences
    # WHEN it is split
    sentences = split_sentences(text)

    # THEN only real sentence ends split it
    assert sentences == expected


def test_split_sentences_keeps_headings_bullets_and_wrapped_lines_apart() -> None:
    # GIVEN a memo with a heading, a hard-wrapped paragraph, bullets and a markdown heading
    text = (
        "Vendor Review\n\n"
        "Northwind Analytics was founded in 2012 and is\nheadquartered in Rotterdam.\n"
        "Key facts\n"
        "- It employs 640 people\n"
        "* Its data stays in Frankfurt.\n"
        "2) Beacon launched in 2014.\n"
        "## Open points\n"
        "None so far."
    )

    # WHEN it is split
    sentences = split_sentences(text)

    # THEN wrapped lines are joined, markers are stripped, and no heading leaks into a sentence
    assert sentences == [
        "Vendor Review",
        "Northwind Analytics was founded in 2012 and is headquartered in Rotterdam.",
        "Key facts",
        "It employs 640 people",
        "Its data stays in Frankfurt.",
        "Beacon launched in 2014.",
        "Open points",
        "None so far.",
    ]


def test_extract_claims_keeps_declarative_statements_in_order() -> None:
    # GIVEN a heading, a statement, a question, a fragment, a verb-less label and a bullet with a verb
    text = (
        "Northwind Analytics Review\n\n"
        "Northwind Analytics was founded in 2012. Is it profitable? Yes, mostly.\n"
        "Security Posture and Certifications\n"
        "- Northwind Analytics holds ISO 27001 certification\n"
    )

    # WHEN claims are extracted
    claims = extract_claims(text)

    # THEN only the two statements remain, numbered in order, pointing at their sentence
    assert [(c.claim_id, c.text, c.sentence_index) for c in claims] == [
        ("c-001", "Northwind Analytics was founded in 2012.", 1),
        ("c-002", "Northwind Analytics holds ISO 27001 certification", 5),
    ]


def test_extract_claims_stops_at_max_claims() -> None:
    # GIVEN five statements
    text = " ".join(f"Northwind Analytics opened office number {n} in 2020." for n in range(1, 6))

    # WHEN at most three are asked for
    claims = extract_claims(text, max_claims=3)

    # THEN the first three come back
    assert [c.claim_id for c in claims] == ["c-001", "c-002", "c-003"]
    assert claims[-1].text == "Northwind Analytics opened office number 3 in 2020."


def test_extract_claims_is_deterministic() -> None:
    # GIVEN the sample memo
    text = load_event("doc-review-request.json")["document"]["text"]

    # WHEN claims are extracted twice
    # THEN both runs agree
    assert extract_claims(text) == extract_claims(text)


def test_intake_stores_the_document_under_its_content_hash() -> None:
    # GIVEN the sample request and an empty store
    request = DocReviewRequest.model_validate(load_event("doc-review-request.json"))
    store = InMemoryDocumentStore()

    # WHEN it is taken in
    result = intake(request, store=store, bucket=BUCKET)

    # THEN the stored body is the document as JSON, addressed by its SHA-256
    ref = result.document_ref
    body = store.get(ref.key)
    assert ref.bucket == BUCKET
    assert ref.key == f"documents/{ref.sha256}.json"
    assert ref.sha256 == hashlib.sha256(body).hexdigest()
    assert ref.size_bytes == len(body)
    assert json.loads(body) == {
        "title": request.document.title,
        "text": request.document.text,
        "source": request.document.source,
        "metadata": request.metadata,
    }
    # AND the claims of the memo come back with its title
    assert result.title == "Vendor assessment: Northwind Analytics"
    assert [c.claim_id for c in result.claims] == [f"c-{n:03d}" for n in range(1, 11)]
    assert result.claims[5].text == "Northwind Analytics has held ISO/IEC 27001 certification since 2015."


def test_intake_of_the_same_request_lands_on_the_same_key() -> None:
    # GIVEN one request taken in twice
    request = DocReviewRequest.model_validate(load_event("doc-review-low-risk.json"))
    store = InMemoryDocumentStore()

    # WHEN it is taken in twice
    first = intake(request, store=store, bucket=BUCKET)
    second = intake(request, store=store, bucket=BUCKET)

    # THEN both point at the one stored object
    assert first.document_ref == second.document_ref
    assert list(store.objects) == [first.document_ref.key]


def test_intake_without_claims_raises_and_stores_nothing() -> None:
    # GIVEN a request whose text is only a heading and a question
    request = DocReviewRequest.model_validate(load_event("doc-review-no-claims.json"))
    store = InMemoryDocumentStore()

    # WHEN it is taken in
    with pytest.raises(NoClaimsFound) as raised:
        intake(request, store=store, bucket=BUCKET)

    # THEN the error says what was found instead, and nothing was stored
    assert str(raised.value) == (
        "no checkable claim in 'Open questions for Northwind Analytics': its 2 sentence(s) are 1 heading, 1 question"
    )
    assert store.objects == {}


def test_intake_of_a_text_without_sentences_says_so() -> None:
    # GIVEN a document made of blank lines
    request = DocReviewRequest(document=DocumentIn(title="Blank", text="\n \n"))

    # WHEN it is taken in
    # THEN the error says there is no sentence
    with pytest.raises(NoClaimsFound, match="has no sentence"):
        intake(request, store=InMemoryDocumentStore(), bucket=BUCKET)


def test_malformed_request_is_refused_by_the_contract() -> None:
    # GIVEN a body with a numeric title and an unknown field
    body = load_event("doc-review-malformed.json")

    # WHEN it is parsed
    with pytest.raises(ValidationError) as raised:
        DocReviewRequest.model_validate(body)

    # THEN both problems are reported
    problems = {(error["loc"], error["type"]) for error in raised.value.errors()}
    assert problems == {(("document", "title"), "string_type"), (("priority",), "extra_forbidden")}


def test_in_memory_store_raises_key_error_for_a_missing_key() -> None:
    # GIVEN an empty store
    # WHEN a missing key is read
    # THEN it fails like a missing object
    with pytest.raises(KeyError):
        InMemoryDocumentStore().get("documents/missing.json")
