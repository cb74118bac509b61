"""Requests and responses checked against botocore's service model for Converse, with Bedrock's messages.

A constraint the model declares (required members, one member of a union, lengths, ranges, patterns, enums, types)
fails as Bedrock's service fails it: ``N validation error(s) detected: Value X at 'path' failed to satisfy
constraint: Member must ...``, with 0-based paths as Bedrock writes them (``messages.2.content.0.text``). A member
the model does not have is refused too (boto3 refuses it before sending; a raw HTTP caller gets the same answer).
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from botocore.model import Shape

from infra.local.bedrock.errors import BedrockError, operation_model, validation

MAX_LISTED = 10  # errors named in one message; the count says how many there were


@functools.cache
def _pattern(expression: str) -> re.Pattern[str]:
    return re.compile(expression)


def _render(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


class _Walk:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, value: Any, path: str, constraint: str) -> None:
        shown = "null" if value is None else f"'{_render(value)}'"
        self.errors.append(f"Value {shown} at '{path}' failed to satisfy constraint: Member must {constraint}")

    def shape(self, shape: Shape, value: Any, path: str) -> None:
        kind = shape.type_name
        if kind == "structure":
            self.structure(shape, value, path)
        elif kind == "list":
            if not isinstance(value, list):
                self.fail(value, path, "be a list")
                return
            self.length(shape, value, path)
            for index, item in enumerate(value):
                self.shape(shape.member, item, f"{path}.{index}")  # type: ignore[attr-defined]
        elif kind == "map":
            if not isinstance(value, dict):
                self.fail(value, path, "be a map")
                return
            self.length(shape, value, path)
            for key, item in value.items():
                self.shape(shape.value, item, f"{path}.{key}")  # type: ignore[attr-defined]
        else:
            self.scalar(shape, value, path)

    def structure(self, shape: Shape, value: Any, path: str) -> None:
        if shape.metadata.get("document"):
            return  # any JSON value
        if not isinstance(value, dict):
            self.fail(value, path, "be a structure")
            return
        members = shape.members  # type: ignore[attr-defined]
        prefix = f"{path}." if path else ""
        for name in value:
            if name not in members:
                self.errors.append(f"Unknown parameter '{prefix}{name}', must be one of: {', '.join(members)}")
        present = [name for name in members if value.get(name) is not None]
        if shape.metadata.get("union") and len(present) != 1:
            self.fail(value, path or "input", f"have exactly one of the members set: {', '.join(members)}")
        for name in shape.metadata.get("required", []):
            if value.get(name) is None:
                self.fail(None, f"{prefix}{name}", "not be null")
        for name in present:
            self.shape(members[name], value[name], f"{prefix}{name}")

    def length(self, shape: Shape, value: Any, path: str) -> None:
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if low is not None and len(value) < low:
            self.fail(value, path, f"have length greater than or equal to {low}")
        if high is not None and len(value) > high:
            self.fail(value, path, f"have length less than or equal to {high}")

    def scalar(self, shape: Shape, value: Any, path: str) -> None:
        kind = shape.type_name
        if kind == "string":
            if not isinstance(value, str):
                self.fail(value, path, "be a string")
                return
            self.length(shape, value, path)
            enum = getattr(shape, "enum", None)
            if enum and value not in enum:
                self.fail(value, path, f"satisfy enum value set: [{', '.join(enum)}]")
            expression = shape.metadata.get("pattern")
            if expression and not _pattern(expression).fullmatch(value):  # the service matches the whole value
                self.fail(value, path, f"satisfy regular expression pattern: {expression}")
        elif kind in ("integer", "long", "float", "double"):
            integral = kind in ("integer", "long")
            if isinstance(value, bool) or not isinstance(value, int if integral else (int, float)):
                self.fail(value, path, "be an integer" if integral else "be a number")
                return
            low, high = shape.metadata.get("min"), shape.metadata.get("max")
            if low is not None and value < low:
                self.fail(value, path, f"have value greater than or equal to {low}")
            if high is not None and value > high:
                self.fail(value, path, f"have value less than or equal to {high}")
        elif kind == "boolean" and not isinstance(value, bool):
            self.fail(value, path, "be a boolean")
        elif kind == "blob" and not isinstance(value, str | bytes | bytearray):
            self.fail(value, path, "be base64-encoded bytes")


def problems(shape: Shape, value: Any) -> list[str]:
    """Every constraint of ``shape`` that ``value`` breaks, as Bedrock words them."""
    walk = _Walk()
    walk.shape(shape, value, "")
    return walk.errors


def _error(found: list[str]) -> BedrockError:
    count = len(found)
    listed = "; ".join(found[:MAX_LISTED])
    return validation(f"{count} validation error{'s' if count > 1 else ''} detected: {listed}")


def check_request(request: Any) -> None:
    """Raise Bedrock's ``ValidationException`` for a Converse request the service model refuses."""
    if not isinstance(request, dict):
        raise validation("Malformed input request, please reformat your input and try again.")
    found = problems(_shape("input"), request)
    if found:
        raise _error(found)


def response_problems(response: dict[str, Any]) -> list[str]:
    """What in a Converse response the service model would not have produced (a local model's mistake)."""
    return problems(_shape("output"), response)


def _shape(which: str) -> Shape:
    shape = operation_model().input_shape if which == "input" else operation_model().output_shape
    assert shape is not None  # Converse has both
    return shape
