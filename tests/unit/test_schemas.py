from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from jsonschema import Draft4Validator
from pydantic import BaseModel, ConfigDict, Field

from contracts import MODELS
from contracts.schema_export import API_REQUEST_MODELS, SCHEMAS_DIR, drift, generate, to_draft4, write

pytestmark = pytest.mark.unit

DRAFT4 = "http://json-schema.org/draft-04/schema#"


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=r"^[A-Z]{3}$")
    kind: Literal["a"] = "a"


class Outer(BaseModel):
    """Exercises every 2020-12 construct pydantic emits that draft 4 lacks."""

    model_config = ConfigDict(extra="forbid")

    inner: Inner
    maybe_inner: Inner | None = None
    inners: list[Inner] = Field(default_factory=list, max_length=3)
    label: Literal["x"]
    level: Literal["low", "high"] | None = None
    note: str | None = Field(default=None, max_length=10, examples=["hi"])
    ratio: float = Field(gt=0, lt=1)
    pair: tuple[int, str]
    tags: dict[str, int] = Field(default_factory=dict, max_length=4)
    either: int | str


class Node(BaseModel):
    children: list[Node] = Field(default_factory=list)


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def keywords(schema: dict[str, Any]) -> set[str]:
    return {key for node in walk(schema) for key in node}


def test_committed_schemas_match_the_models() -> None:
    # WHEN the schemas are regenerated in memory and compared with the committed files
    differing = drift()

    # THEN nothing differs
    assert differing == [], f"schemas out of date: {differing}; run `python -m contracts.schema_export`"


def test_every_model_has_a_schema_and_api_bodies_have_a_draft4_one() -> None:
    names = generate().keys()

    assert {f"{model}.schema.json" for model in MODELS} <= names
    assert {"Envelope.schema.json", "CapabilityContract.schema.json"} <= names
    assert {f"apigw/{model.__name__}.json" for model in API_REQUEST_MODELS} <= names


def test_write_then_drift_detects_changes(tmp_path: Path) -> None:
    # GIVEN freshly written schemas, plus a stale file and an unrelated one
    written = write(tmp_path)
    (tmp_path / "Gone.schema.json").write_text("{}\n")
    (tmp_path / "notes.txt").write_text("kept")
    assert all(path.read_text().endswith("}\n") for path in written)

    # WHEN one is edited and one deleted
    (tmp_path / "Claim.schema.json").write_text("{}\n")
    (tmp_path / "apigw" / "DocReviewRequest.json").unlink()

    # THEN drift names exactly those, and the stale one
    assert drift(tmp_path) == ["Claim.schema.json", "Gone.schema.json", "apigw/DocReviewRequest.json"]

    # AND writing again repairs everything, removing the stale file but nothing it does not own
    write(tmp_path)
    assert drift(tmp_path) == []
    assert not (tmp_path / "Gone.schema.json").exists()
    assert (tmp_path / "notes.txt").exists()


def test_to_draft4_converts_nested_models() -> None:
    # WHEN a model using refs, const, nullable unions, exclusive bounds and tuples is converted
    schema = to_draft4(Outer.model_json_schema())

    # THEN it is a valid, self-contained draft-4 schema
    Draft4Validator.check_schema(schema)
    assert schema["$schema"] == DRAFT4
    assert keywords(schema).isdisjoint({"$ref", "$defs", "const", "prefixItems", "examples", "discriminator"})

    properties = schema["properties"]
    assert properties["inner"]["properties"]["code"]["pattern"] == "^[A-Z]{3}$"
    assert properties["maybe_inner"]["type"] == ["object", "null"]
    assert properties["maybe_inner"]["additionalProperties"] is False
    assert properties["inners"]["items"]["required"] == ["code"]
    assert properties["label"]["enum"] == ["x"]
    assert properties["level"]["enum"] == ["low", "high", None]
    assert properties["note"]["type"] == ["string", "null"]
    bounds = {"minimum": 0, "exclusiveMinimum": True, "maximum": 1, "exclusiveMaximum": True}
    assert properties["ratio"].items() >= bounds.items()
    assert properties["pair"]["items"] == [{"type": "integer"}, {"type": "string"}]
    assert properties["tags"]["maxProperties"] == 4
    assert len(properties["either"]["anyOf"]) == 2


def test_to_draft4_validates_like_the_model() -> None:
    # GIVEN the converted schema of a nested model
    validator = Draft4Validator(to_draft4(Outer.model_json_schema()))
    good = {"inner": {"code": "ABC"}, "label": "x", "ratio": 0.5, "pair": [1, "a"], "either": 3}

    # THEN it accepts what the model accepts and refuses what the model refuses
    assert validator.is_valid(good)
    assert validator.is_valid(good | {"maybe_inner": None, "level": None, "note": None})
    assert not validator.is_valid(good | {"ratio": 0})
    assert not validator.is_valid(good | {"label": "y"})
    assert not validator.is_valid(good | {"inner": {"code": "abc"}})
    assert not validator.is_valid(good | {"maybe_inner": {"code": "ABC", "extra": 1}})
    assert not validator.is_valid(good | {"tags": {str(n): n for n in range(5)}})


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        pytest.param(
            {"type": "number", "minimum": 5, "exclusiveMinimum": 3},
            {"type": "number", "minimum": 5},
            id="inclusive-minimum-is-tighter",
        ),
        pytest.param(
            {"type": "number", "minimum": 3, "exclusiveMinimum": 3},
            {"type": "number", "minimum": 3, "exclusiveMinimum": True},
            id="exclusive-minimum-is-tighter",
        ),
        pytest.param(
            {"type": "number", "maximum": 5, "exclusiveMaximum": 9},
            {"type": "number", "maximum": 5},
            id="inclusive-maximum-is-tighter",
        ),
        pytest.param(
            {"type": "array", "prefixItems": [{"type": "integer"}], "items": {"type": "string"}},
            {"type": "array", "items": [{"type": "integer"}], "additionalItems": {"type": "string"}},
            id="prefix-items-with-rest",
        ),
        pytest.param(
            {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 1}], "default": None, "title": "N"},
            {"type": ["integer", "null"], "minimum": 1, "default": None, "title": "N"},
            id="null-first",
        ),
        pytest.param(
            {"type": "object", "propertyNames": {"pattern": "^a"}, "contentMediaType": "text/plain"},
            {"type": "object"},
            id="unknown-keywords-dropped",
        ),
    ],
)
def test_to_draft4_fragments(fragment: dict[str, Any], expected: dict[str, Any]) -> None:
    assert to_draft4(fragment) == {"$schema": DRAFT4, **expected}


def test_to_draft4_refuses_recursive_models() -> None:
    with pytest.raises(ValueError, match="recursive model 'Node'"):
        to_draft4({"$ref": "#/$defs/Node", "$defs": Node.model_json_schema()["$defs"]})


def test_to_draft4_refuses_non_local_refs() -> None:
    with pytest.raises(ValueError, match="only local"):
        to_draft4({"$ref": "https://example.com/schema.json"})


@pytest.fixture(scope="module")
def doc_review_validator() -> Draft4Validator:
    schema = json.loads((SCHEMAS_DIR / "apigw" / "DocReviewRequest.json").read_text())
    Draft4Validator.check_schema(schema)
    return Draft4Validator(schema)


GOOD_BODY = {"document": {"title": "Q3 report", "text": "Revenue grew 12%."}, "metadata": {"team": "finance"}}


def test_api_schema_accepts_a_good_body(doc_review_validator: Draft4Validator) -> None:
    assert list(doc_review_validator.iter_errors(GOOD_BODY)) == []
    assert doc_review_validator.is_valid({"document": {"title": "t", "text": "x", "source": None}})


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"metadata": {}}, id="missing-document"),
        pytest.param({"document": {"title": "t"}}, id="missing-text"),
        pytest.param({"document": {"title": 3, "text": "x"}}, id="wrong-type"),
        pytest.param({"document": {"title": "", "text": "x"}}, id="empty-title"),
        pytest.param(GOOD_BODY | {"priority": "high"}, id="unknown-field"),
        pytest.param({"document": {"title": "t", "text": "x", "author": "me"}}, id="unknown-nested-field"),
        pytest.param(GOOD_BODY | {"metadata": {"n": 1}}, id="metadata-not-string"),
        pytest.param(GOOD_BODY | {"metadata": {str(n): "v" for n in range(21)}}, id="too-much-metadata"),
    ],
)
def test_api_schema_rejects_bad_bodies(doc_review_validator: Draft4Validator, body: dict[str, Any]) -> None:
    # WHEN API Gateway would validate this body against the model
    errors = list(doc_review_validator.iter_errors(body))

    # THEN it is refused
    assert errors
