from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contracts.models import Claim, Decision, DecisionRecordedDetail
from functions.entity_tagger.service import DEFAULT_GAZETTEER_PATH, Gazetteer, GazetteerError, default_gazetteer, tag
from tests.sample_events import load_event

pytestmark = pytest.mark.unit


def detail(*texts: str) -> DecisionRecordedDetail:
    return DecisionRecordedDetail(
        execution_id="exec-1",
        trace_id="1-6745a1b2-5e0c3d9a7b1f42e68c0d9a31",
        decision=Decision(
            decision_id="dec-1",
            workflow="doc-review",
            outcome="accept",
            risk_level="low",
            summary="test decision",
            decided_at=datetime(2026, 11, 2, tzinfo=UTC),
        ),
        claims=[Claim(claim_id=f"c-{n:03d}", text=t, sentence_index=n) for n, t in enumerate(texts, start=1)],
    )


def entities(tags_detail: DecisionRecordedDetail, gazetteer: Gazetteer) -> list[tuple[str, str, int]]:
    return [(e.text, e.kind, e.count) for e in tag(tags_detail, gazetteer=gazetteer).entities]


def test_default_gazetteer_comes_from_the_knowledge_base() -> None:
    # GIVEN the knowledge base's entity annotations
    # WHEN the default gazetteer is built
    gazetteer = default_gazetteer()

    # THEN it knows the domain's organisations, people, places and terms
    assert gazetteer.names["Northwind Analytics"] == "organization"
    assert gazetteer.names["Ilse Marquardt"] == "person"
    assert gazetteer.names["Rotterdam"] == "place"
    assert gazetteer.names["ISO/IEC 27001"] == "term"
    assert default_gazetteer() is gazetteer
    assert Gazetteer.load(DEFAULT_GAZETTEER_PATH).names == gazetteer.names


def test_tag_counts_known_names_and_detected_figures() -> None:
    # GIVEN claims naming the company twice, a person, a place, a date, money, a percentage and quantities
    claims = detail(
        "Northwind Analytics reported revenue of EUR 84.2 million in 2025, up 18% on 2024.",
        "Ilse Marquardt leads northwind analytics from Rotterdam with 640 people since 14 March 2023.",
        "Beacon was unavailable for 6 hours, and ISO/IEC 27001 has applied since 2017.",
    )

    # WHEN they are tagged
    found = entities(claims, default_gazetteer())

    # THEN names are canonical whatever their case, figures are typed, and the order is count, kind, text
    assert found == [
        ("Northwind Analytics", "organization", 2),
        ("14 March 2023", "date", 1),
        ("2017", "date", 1),
        ("2024", "date", 1),
        ("2025", "date", 1),
        ("EUR 84.2 million", "money", 1),
        ("18%", "percent", 1),
        ("Ilse Marquardt", "person", 1),
        ("Rotterdam", "place", 1),
        ("6 hours", "quantity", 1),
        ("640 people", "quantity", 1),
        ("Beacon", "term", 1),
        ("ISO/IEC 27001", "term", 1),
    ]


def test_figures_inside_a_known_name_are_not_tagged_again() -> None:
    # GIVEN a term that contains numbers
    # WHEN it is tagged
    found = entities(detail("The SOC 2 Type II report covers 12 months."), default_gazetteer())

    # THEN the term is one entity, and only the free-standing figure is a quantity
    assert found == [("12 months", "quantity", 1), ("SOC 2 Type II", "term", 1)]


def test_longest_name_wins(tmp_path: Path) -> None:
    # GIVEN a gazetteer with a name and a longer name containing it
    path = tmp_path / "kb.jsonl"
    path.write_text(
        json.dumps({"entities": [{"text": "Halvorsen", "kind": "person"}]})
        + "\n"
        + json.dumps({"entities": [{"text": "Halvorsen Cloud Services", "kind": "organization"}]})
        + "\n",
        encoding="utf-8",
    )

    # WHEN text with both is tagged
    found = entities(detail("Halvorsen Cloud Services hired Halvorsen as adviser."), Gazetteer.load(path))

    # THEN the longer name is matched where it occurs, the shorter one elsewhere
    assert found == [("Halvorsen Cloud Services", "organization", 1), ("Halvorsen", "person", 1)]


def test_tag_keeps_the_ids_of_the_decision() -> None:
    # GIVEN the sample decision.recorded event
    event = load_event("decision-recorded.json")
    recorded = DecisionRecordedDetail.model_validate(event["detail"])

    # WHEN its claims are tagged
    tags = tag(recorded, gazetteer=default_gazetteer())

    # THEN the tags belong to that execution and decision, and the memo's vendor leads them
    assert (tags.execution_id, tags.decision_id) == (recorded.execution_id, recorded.decision.decision_id)
    assert (tags.entities[0].text, tags.entities[0].count) == ("Northwind Analytics", 5)
    assert tag(recorded, gazetteer=default_gazetteer()) == tags


def test_sample_event_is_an_eventbridge_envelope() -> None:
    # GIVEN the sample decision.recorded event
    event = load_event("decision-recorded.json")

    # WHEN / THEN it has EventBridge's envelope fields around a valid detail
    assert {k: event[k] for k in ("version", "detail-type", "source", "account", "region", "resources")} == {
        "version": "0",
        "detail-type": "decision.recorded",
        "source": "agentplane",
        "account": "123456789012",
        "region": "us-east-1",
        "resources": [],
    }
    assert DecisionRecordedDetail.model_validate(event["detail"]).decision.outcome == "escalate"


def test_no_claims_means_no_entities() -> None:
    # GIVEN a decision without claims
    # WHEN it is tagged
    # THEN there is nothing to tag
    assert tag(detail(), gazetteer=default_gazetteer()).entities == []


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        pytest.param(["{broken"], r"g\.jsonl:1: invalid JSON", id="json"),
        pytest.param(
            [json.dumps({"entities": [{"text": "Oslo", "kind": "city"}]})], r"g\.jsonl:1: entities\.0\.kind", id="kind"
        ),
        pytest.param(
            [
                json.dumps({"entities": [{"text": "Beacon", "kind": "term"}]}),
                json.dumps({"entities": [{"text": "beacon", "kind": "place"}]}),
            ],
            r"g\.jsonl:2: 'beacon' is a place here but a term on line 1",
            id="conflicting kinds",
        ),
    ],
)
def test_gazetteer_load_names_the_line_of_a_problem(tmp_path: Path, lines: list[str], message: str) -> None:
    # GIVEN a gazetteer source with one problem
    path = tmp_path / "g.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    # WHEN it is loaded
    # THEN the error names the file and line
    with pytest.raises(GazetteerError, match=message):
        Gazetteer.load(path)
