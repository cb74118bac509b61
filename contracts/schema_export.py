"""Generate the committed JSON Schemas from the pydantic models, and detect drift.

``python -m contracts.schema_export`` regenerates ``contracts/schemas/``: a JSON Schema 2020-12 file per
model, and draft-4 copies of the API request bodies for API Gateway REST models.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from contracts.capability import CapabilityContract
from contracts.envelope import Envelope
from contracts.models import MODELS, ApprovalDecisionRequest, DocReviewRequest, QuickCheckRequest
from contracts.workflow import WorkflowSpec

SCHEMAS_DIR = Path(__file__).parent / "schemas"
API_REQUEST_MODELS: tuple[type[BaseModel], ...] = (DocReviewRequest, QuickCheckRequest, ApprovalDecisionRequest)
APIGW_DIR = "apigw"
DRAFT4 = "http://json-schema.org/draft-04/schema#"

_DRAFT4_KEYWORDS = frozenset(
    {
        "$schema",
        "id",
        "title",
        "description",
        "default",
        "format",
        "type",
        "enum",
        "multipleOf",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "items",
        "additionalItems",
        "maxItems",
        "minItems",
        "uniqueItems",
        "maxProperties",
        "minProperties",
        "required",
        "properties",
        "patternProperties",
        "additionalProperties",
        "dependencies",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
    }
)
_SCHEMA_MAPS = frozenset({"properties", "patternProperties"})
_SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf"})
_SCHEMA_VALUES = frozenset({"not", "additionalProperties", "additionalItems"})


def generate() -> dict[str, dict[str, Any]]:
    """Every schema this module owns, keyed by its path relative to the schemas directory."""
    models: list[type[BaseModel]] = [*MODELS.values(), Envelope, CapabilityContract, WorkflowSpec]
    schemas = {f"{model.__name__}.schema.json": _with_dialect(model.model_json_schema()) for model in models}
    for model in API_REQUEST_MODELS:
        schemas[f"{APIGW_DIR}/{model.__name__}.json"] = to_draft4(model.model_json_schema())
    return dict(sorted(schemas.items()))


def to_draft4(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Convert pydantic's JSON Schema 2020-12 to a self-contained draft-4 schema API Gateway accepts.

    Local ``$ref``s are inlined (API Gateway models cannot point into ``$defs``), so recursive models
    are refused.
    """
    definitions: Mapping[str, Any] = schema.get("$defs", {})
    converted = _convert(schema, definitions, ())
    return {"$schema": DRAFT4, **converted}


def write(directory: Path = SCHEMAS_DIR) -> list[Path]:
    """Write every generated schema under ``directory`` and remove the stale ones; return what was written."""
    rendered = {name: _render(schema) for name, schema in generate().items()}
    written = []
    for name, text in rendered.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    for name in _owned_files(directory).keys() - rendered.keys():
        (directory / name).unlink()
    return written


def drift(directory: Path = SCHEMAS_DIR) -> list[str]:
    """Files under ``directory`` that are missing, stale or differ from the models; empty when in sync."""
    rendered = {name: _render(schema) for name, schema in generate().items()}
    on_disk = _owned_files(directory)
    names = rendered.keys() | on_disk.keys()
    return sorted(name for name in names if rendered.get(name) != on_disk.get(name))


def _with_dialect(schema: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def _render(schema: Mapping[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _owned_files(directory: Path) -> dict[str, str]:
    paths = [*directory.glob("*.schema.json"), *(directory / APIGW_DIR).glob("*.json")]
    return {path.relative_to(directory).as_posix(): path.read_text(encoding="utf-8") for path in paths}


def _convert(node: Mapping[str, Any], definitions: Mapping[str, Any], expanding: tuple[str, ...]) -> dict[str, Any]:
    if "$ref" in node:
        name = _ref_name(str(node["$ref"]), definitions, expanding)
        # Keywords next to a $ref (description, default) describe this use of the model: they win.
        siblings = {keyword: value for keyword, value in node.items() if keyword != "$ref"}
        return _convert({**definitions[name], **siblings}, definitions, (*expanding, name))
    result: dict[str, Any] = {}
    for keyword, value in node.items():
        if keyword == "const":
            result["enum"] = [value]
        elif keyword == "prefixItems":
            result["items"] = [_convert(item, definitions, expanding) for item in value]
        elif keyword == "items" and "prefixItems" in node:
            # In 2020-12 ``items`` after ``prefixItems`` means what draft 4 calls ``additionalItems``.
            result["additionalItems"] = _convert_value(value, definitions, expanding)
        elif keyword in _SCHEMA_MAPS:
            result[keyword] = {name: _convert(sub, definitions, expanding) for name, sub in value.items()}
        elif keyword in _SCHEMA_LISTS:
            result[keyword] = [_convert(sub, definitions, expanding) for sub in value]
        elif keyword in _SCHEMA_VALUES or keyword == "items":
            result[keyword] = _convert_value(value, definitions, expanding)
        elif keyword in _DRAFT4_KEYWORDS and keyword != "$schema":
            result[keyword] = value
    _exclusive_bounds(result, "minimum", "exclusiveMinimum", stricter=max)
    _exclusive_bounds(result, "maximum", "exclusiveMaximum", stricter=min)
    return _merge_nullable(result)


def _convert_value(value: Any, definitions: Mapping[str, Any], expanding: tuple[str, ...]) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, list):
        return [_convert(item, definitions, expanding) for item in value]
    return _convert(value, definitions, expanding)


def _ref_name(ref: str, definitions: Mapping[str, Any], expanding: tuple[str, ...]) -> str:
    name = ref.removeprefix("#/$defs/")
    if name == ref or name not in definitions:
        raise ValueError(f"cannot inline $ref {ref!r}: only local $defs are supported")
    if name in expanding:
        raise ValueError(f"cannot inline recursive model {name!r} into a draft-4 schema")
    return name


def _exclusive_bounds(schema: dict[str, Any], inclusive: str, exclusive: str, stricter: Callable[..., Any]) -> None:
    """2020-12's numeric ``exclusiveMinimum: 0`` is draft 4's ``minimum: 0, exclusiveMinimum: true``."""
    bound = schema.get(exclusive)
    if isinstance(bound, bool) or bound is None:
        return
    if inclusive in schema and stricter(schema[inclusive], bound) != bound:
        del schema[exclusive]  # the inclusive bound is the tighter one
        return
    schema[inclusive] = bound
    schema[exclusive] = True


def _merge_nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, {type: null}]`` becomes X with ``null`` added to its type, when X has a single type."""
    options = schema.get("anyOf")
    null = {"type": "null"}
    if not isinstance(options, list) or len(options) != 2 or null not in options:
        return schema
    other = options[0] if options[1] == null else options[1]
    if not isinstance(other.get("type"), str):
        return schema
    merged = {**other, **{keyword: value for keyword, value in schema.items() if keyword != "anyOf"}}
    merged["type"] = [other["type"], "null"]
    if "enum" in merged and None not in merged["enum"]:
        merged["enum"] = [*merged["enum"], None]
    return merged


def main() -> None:
    cwd = Path.cwd()
    for path in write():
        shown = path.relative_to(cwd) if path.is_relative_to(cwd) else path
        sys.stdout.write(f"wrote {shown}\n")


if __name__ == "__main__":
    main()
