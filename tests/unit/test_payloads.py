"""A project's own payload types: JSON Schema files made into models, import paths, one name per type."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from contracts import payloads
from contracts.payloads import PayloadError, schema_model

pytestmark = pytest.mark.unit

TICKET = {
    "title": "Ticket",
    "type": "object",
    "properties": {
        "ticket_id": {"type": "string", "pattern": "^T-[0-9]{3,}$"},
        "priority": {"type": "integer", "minimum": 1, "maximum": 5, "default": 3},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 10}, "maxItems": 2},
        "channel": {"enum": ["mail", "phone"], "type": "string"},
        "note": {"type": ["string", "null"]},
        "customer": {"$ref": "#/$defs/Customer"},
    },
    "required": ["ticket_id", "customer"],
    "additionalProperties": False,
    "$defs": {
        "Customer": {
            "type": "object",
            "properties": {"id": {"type": "string", "minLength": 1}},
            "required": ["id"],
        }
    },
}


def test_a_schema_validates_what_it_says() -> None:
    model = schema_model(TICKET, name="Ticket")

    ticket = model.model_validate({"ticket_id": "T-001", "customer": {"id": "c1", "since": 2020}})
    assert ticket.model_dump()["priority"] == 3  # the default
    refused = [
        {"ticket_id": "X-1", "customer": {"id": "c1"}},  # pattern
        {"ticket_id": "T-001", "customer": {"id": "c1"}, "priority": 9},  # maximum
        {"ticket_id": "T-001", "customer": {"id": "c1"}, "tags": ["a", "b", "c"]},  # maxItems
        {"ticket_id": "T-001", "customer": {"id": "c1"}, "channel": "fax"},  # enum
        {"ticket_id": "T-001", "customer": {"id": ""}},  # the referenced definition's minLength
        {"ticket_id": "T-001"},  # required
        {"ticket_id": "T-001", "customer": {"id": "c1"}, "unknown": 1},  # additionalProperties: false
    ]
    for body in refused:
        with pytest.raises(ValidationError):
            model.model_validate(body)


def test_a_model_survives_its_own_json_schema() -> None:
    # The API ships a project workflow's input as the model's JSON Schema and rebuilds it there.
    model = schema_model(TICKET, name="Ticket")
    again = schema_model(model.model_json_schema(), name="Ticket")

    assert again.model_validate({"ticket_id": "T-002", "customer": {"id": "c"}, "note": None})
    with pytest.raises(ValidationError):
        again.model_validate({"ticket_id": "T-002", "customer": {"id": "c"}, "channel": "fax"})


@pytest.mark.parametrize(
    ("schema", "says"),
    [
        ({"type": "array"}, "describes an object"),
        ({"type": "object", "properties": {"a": {"type": "string", "format": "email", "if": {}}}}, "if: not read"),
        ({"type": "object", "properties": {"a": {"$ref": "https://example.com/x.json"}}}, "only references into"),
        ({"type": "object", "properties": {"a": {"type": "date"}}}, "type 'date'"),
        ({"type": "object", "properties": {"a": {"type": ["string", "integer"]}}}, "one type, optionally with null"),
        ({"type": "object", "properties": {}, "required": ["a"]}, "required names what properties do not"),
        (
            {
                "type": "object",
                "properties": {"a": {"$ref": "#/$defs/Node"}},
                "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
            },
            "contains itself",
        ),
    ],
)
def test_what_the_plane_does_not_read_is_refused_by_name(schema: dict[str, object], says: str) -> None:
    with pytest.raises(PayloadError, match=says):
        schema_model(schema, name="Thing", where="schemas/thing.json")


def test_a_schema_file_is_registered_under_its_title(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "parcel-label.json").write_text(
        json.dumps({"type": "object", "properties": {"weight_kg": {"type": "number", "exclusiveMinimum": 0}}})
    )

    name = payloads.resolve("schemas/parcel-label.json", project_root=tmp_path, import_root=tmp_path)

    assert name == "ParcelLabel"  # no CamelCase title: the file name
    assert payloads.known("ParcelLabel")
    with pytest.raises(ValidationError):
        payloads.payload_model("ParcelLabel").model_validate({"weight_kg": 0})


def test_an_import_path_is_imported_from_the_projects_source(tmp_path: Path) -> None:
    package = tmp_path / "src" / "shipping_payloads"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(
        "from pydantic import BaseModel\n\nclass ShipmentQuote(BaseModel):\n    amount: float\n"
    )

    name = payloads.resolve(
        "shipping_payloads.models:ShipmentQuote", project_root=tmp_path, import_root=tmp_path / "src"
    )

    assert name == "ShipmentQuote"
    assert payloads.payload_model(name).model_validate({"amount": 1.5})


@pytest.mark.parametrize(
    ("ref", "says"),
    [
        ("nowhere_at_all.models:Thing", "cannot import nowhere_at_all.models"),
        ("json:dumps", "dumps is not a pydantic model"),
        ("schemas/absent.json", "cannot read"),
        ("../outside.json", "must lie inside the project"),
    ],
)
def test_a_reference_that_cannot_be_used_says_why(tmp_path: Path, ref: str, says: str) -> None:
    with pytest.raises(PayloadError, match=says):
        payloads.resolve(ref, project_root=tmp_path, import_root=tmp_path)


def test_one_name_means_one_type(tmp_path: Path) -> None:
    first = schema_model({"type": "object", "properties": {"a": {"type": "string"}}}, name="TwiceNamed")
    other = schema_model({"type": "object", "properties": {"b": {"type": "string"}}}, name="TwiceNamed")
    payloads.register("TwiceNamed", first, "team-a/schemas/x.json")

    payloads.register("TwiceNamed", first, "team-a/schemas/x.json")  # the same type again is fine
    with pytest.raises(PayloadError, match=r"already defined by team-a/schemas/x\.json"):
        payloads.register("TwiceNamed", other, "team-b/schemas/x.json")
    with pytest.raises(PayloadError, match="one of the plane's own types"):
        payloads.register("Verdict", other, "team-b/schemas/verdict.json")
