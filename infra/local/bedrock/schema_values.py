"""A value for a JSON Schema, built deterministically, taking fields by name from what the conversation holds.

Each property is looked up by its name in the sources (newest first, breadth-first inside each), and a value found
there is used when it validates against the property's schema. Otherwise the schema decides: ``const``, the first
``enum`` value, ``default``, the first non-null branch of ``anyOf``/``oneOf``, then by type: a string naming the
field (``"scripted <name>"``, or an example of its ``format``), the middle of a number's range (its minimum, or 0),
``false``, ``max(minItems, 1)`` items, and an object with its required properties plus the optional ones the sources
hold.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

import jsonschema

MAX_DEPTH = 12
_MISSING = object()
_FORMATS = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "00:00:00Z",
    "email": "scripted@example.com",
    "uri": "https://example.com/scripted",
    "url": "https://example.com/scripted",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


class ValueBuilder:
    def __init__(self, schema: dict[str, Any], sources: Sequence[Any] = ()) -> None:
        self.root = schema
        self.sources = list(sources)
        self._definitions = {key: schema[key] for key in ("$defs", "definitions") if key in schema}

    def build(self) -> Any:
        return self.value(self.root, None, 0)

    def value(self, schema: Any, name: str | None, depth: int) -> Any:
        schema = self.resolve(schema)
        if not isinstance(schema, dict) or depth > MAX_DEPTH:
            return None
        if name is not None:
            found = self.lookup(name, schema)
            if found is not _MISSING:
                return found
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][0]
        if "default" in schema and self.valid(schema["default"], schema):
            return schema["default"]
        for keyword in ("anyOf", "oneOf"):
            if keyword in schema:
                branches = [self.resolve(branch) for branch in schema[keyword]]
                chosen = next((b for b in branches if isinstance(b, dict) and b.get("type") != "null"), branches[0])
                return self.value({**_without(schema, keyword), **chosen}, None, depth + 1)
        if "allOf" in schema:
            merged = _without(schema, "allOf")
            for part in schema["allOf"]:
                merged = _merge(merged, self.resolve(part))
            return self.value(merged, None, depth + 1)
        return self.typed(schema, name, depth)

    def typed(self, schema: dict[str, Any], name: str | None, depth: int) -> Any:
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
        if kind == "object":
            return self.object(schema, depth)
        if kind == "array":
            low, high = schema.get("minItems", 0), schema.get("maxItems")
            count = max(low, 1) if high is None else min(max(low, 1), high)
            return [self.value(schema.get("items", {}), None, depth + 1) for _ in range(count)]
        if kind == "string":
            return _string(schema, name)
        if kind in ("number", "integer"):
            return _number(schema, integral=kind == "integer")
        if kind == "boolean":
            return False
        return None

    def object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties", {})
        required = schema.get("required", [])
        built: dict[str, Any] = {}
        for key in [*properties, *(key for key in required if key not in properties)]:
            subschema = properties.get(key, {"type": "string"})
            if key in required:
                built[key] = self.value(subschema, key, depth + 1)
            elif (found := self.lookup(key, self.resolve(subschema))) is not _MISSING:
                built[key] = found
        return built

    def lookup(self, name: str, schema: Any) -> Any:
        for source in self.sources:
            for candidate in _named(source, name):
                if self.valid(candidate, schema):
                    return candidate
        return _MISSING

    def valid(self, value: Any, schema: Any) -> bool:
        if not isinstance(schema, dict):
            return True
        document = {**schema, **self._definitions}  # a $ref into the root's definitions still resolves
        return jsonschema.validators.validator_for(document)(document).is_valid(value)

    def resolve(self, schema: Any) -> Any:
        seen = 0
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and seen < MAX_DEPTH:
            target = self._pointer(schema["$ref"])
            if target is None:
                return {}
            schema = {**_without(schema, "$ref"), **target}
            seen += 1
        return schema

    def _pointer(self, reference: str) -> dict[str, Any] | None:
        if not reference.startswith("#"):
            return None  # no remote references in a tool's schema
        node: Any = self.root
        for part in [p for p in reference[1:].split("/") if p]:
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node if isinstance(node, dict) else None


def _named(source: Any, name: str) -> Iterator[Any]:
    """Values of keys called ``name`` anywhere in ``source``, shallowest first."""
    queue: deque[Any] = deque([source])
    while queue:
        node = queue.popleft()
        if isinstance(node, dict):
            if name in node:
                yield node[name]
            queue.extend(node.values())
        elif isinstance(node, list):
            queue.extend(node)


def _without(schema: dict[str, Any], keyword: str) -> dict[str, Any]:
    return {key: value for key, value in schema.items() if key != keyword}


def _merge(base: dict[str, Any], part: Any) -> dict[str, Any]:
    if not isinstance(part, dict):
        return base
    merged = {**base, **part}
    if "properties" in base or "properties" in part:
        merged["properties"] = {**base.get("properties", {}), **part.get("properties", {})}
    if "required" in base or "required" in part:
        merged["required"] = list(dict.fromkeys([*base.get("required", []), *part.get("required", [])]))
    return merged


def _string(schema: dict[str, Any], name: str | None) -> str:
    text = _FORMATS.get(schema.get("format", ""), f"scripted {name or 'value'}")
    pattern = schema.get("pattern")
    if pattern and not re.search(pattern, text):
        text = next((c for c in ("scripted", "a", "A", "0", "a0", "x-0") if re.search(pattern, c)), text)
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    text = text.ljust(low, ".")
    return text[:high] if high is not None else text


def _number(schema: dict[str, Any], *, integral: bool) -> int | float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if low is not None and high is not None:
        value: float = (low + high) / 2
    elif low is not None:
        value = low + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0)
    elif high is not None:
        value = min(0, high - (1 if "exclusiveMaximum" in schema and "maximum" not in schema else 0))
    else:
        value = 0
    return int(value) if integral else float(value)
