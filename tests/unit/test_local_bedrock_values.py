"""Values the scripted model builds from a tool's JSON Schema: valid, deterministic, filled by name."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from infra.local.bedrock.schema_values import ValueBuilder

pytestmark = pytest.mark.unit


def built(schema: dict[str, Any], *sources: Any) -> Any:
    value = ValueBuilder(schema, sources).build()
    jsonschema.validate(value, schema)
    return value


def test_references_and_nullable_branches_resolve() -> None:
    schema = {
        "$defs": {
            "Span": {
                "type": "object",
                "properties": {"start": {"type": "integer", "minimum": 0}},
                "required": ["start"],
            }
        },
        "type": "object",
        "properties": {
            "span": {"$ref": "#/$defs/Span"},
            "label": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 5}]},
        },
        "required": ["span", "label"],
    }
    assert built(schema) == {"span": {"start": 0}, "label": "scrip"}


def test_fields_come_from_the_sources_by_name_when_their_schema_takes_them() -> None:
    schema = {
        "type": "object",
        "properties": {
            "doc_id": {"type": "string"},
            "score": {"type": "number", "maximum": 1},
            "tags": {"type": "array"},
        },
        "required": ["doc_id", "score"],
    }
    newest, oldest = {"hits": [{"doc_id": "d-2", "score": 7}]}, {"doc_id": "d-1", "score": 0.25, "tags": ["a"]}
    # doc_id from the newest source, found deep inside it; score 7 is over the maximum, so the older 0.25 wins;
    # the optional tags are taken because a source holds them.
    assert built(schema, newest, oldest) == {"doc_id": "d-2", "score": 0.25, "tags": ["a"]}


def test_types_formats_and_bounds_pick_deterministic_values() -> None:
    schema = {
        "type": "object",
        "properties": {
            "when": {"type": "string", "format": "date-time"},
            "code": {"type": "string", "pattern": "^[0-9]+$"},
            "padded": {"type": "string", "minLength": 20},
            "count": {"type": "integer", "exclusiveMinimum": 3},
            "ratio": {"type": ["number", "null"], "minimum": -1, "maximum": 1},
            "flag": {"type": "boolean"},
            "mode": {"const": "strict"},
            "level": {"enum": ["low", "high"], "default": "high"},
            "items": {"type": "array", "items": {"type": "integer"}, "minItems": 2},
            "both": {"allOf": [{"properties": {"a": {"type": "string"}}, "required": ["a"]}, {"required": ["b"]}]},
        },
        "required": ["when", "code", "padded", "count", "ratio", "flag", "mode", "level", "items", "both"],
    }
    assert built(schema) == {
        "when": "2026-01-01T00:00:00Z",
        "code": "0",
        "padded": "scripted padded.....",
        "count": 4,
        "ratio": 0.0,
        "flag": False,
        "mode": "strict",
        "level": "low",
        "items": [0, 0],
        "both": {"a": "scripted a", "b": "scripted b"},
    }
