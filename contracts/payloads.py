"""Payload types by name: what agents take and return, and what starts a workflow.

The plane's own types are the models in :mod:`contracts.models`. A project brings its own by naming them where a
contract's ``io`` (or a workflow's ``input``/``output``) names a type:

- ``package.module:Class``: a pydantic model, imported from the project's source folder;
- ``path/to/schema.json``: a JSON Schema file relative to the project, made into a pydantic model (the subset
  :func:`schema_model` reads; anything else is refused, naming the keyword, rather than half-validated).

Either is registered under its name (the class's name, or the schema's ``title``, else its file name in CamelCase)
and then named like the plane's own everywhere: the contract, a workflow spec, the checker, the template.
Two different types under one name are refused.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model

from contracts.models import MODELS
from contracts.validation import read_text

NAME_PATTERN = re.compile(r"^[A-Z][A-Za-z0-9]*$")
_IMPORT_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
_REGISTERED: dict[str, type[BaseModel]] = {}
_ORIGINS: dict[str, str] = {}
# What a JSON Schema node may say beyond its type; the rest is refused.
_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$schema", "$id", "$comment", "format"})
_KEYWORDS = {
    "string": {"minLength", "maxLength", "pattern", "enum", "const"},
    "integer": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum", "const", "multipleOf"},
    "number": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum", "const", "multipleOf"},
    "boolean": {"const", "enum"},
    "null": set(),
    "array": {"items", "minItems", "maxItems"},
    "object": {"properties", "required", "additionalProperties", "$defs", "definitions"},
}
_SCALARS: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool, "null": type(None)}
_CONSTRAINTS = {
    "minLength": "min_length",
    "maxLength": "max_length",
    "pattern": "pattern",
    "minimum": "ge",
    "maximum": "le",
    "exclusiveMinimum": "gt",
    "exclusiveMaximum": "lt",
    "multipleOf": "multiple_of",
    "minItems": "min_length",
    "maxItems": "max_length",
}


class PayloadError(ValueError):
    """A payload type that cannot be used, and why (one line)."""


def is_reference(value: str) -> bool:
    """Whether ``value`` names a project's type by import path or schema file, rather than a registered name."""
    return value.endswith(".json") or ":" in value


def known(name: str) -> bool:
    return name in MODELS or name in _REGISTERED


def names() -> list[str]:
    return sorted({*MODELS, *_REGISTERED})


def payload_model(name: str) -> type[BaseModel]:
    """The model registered under ``name``; a :class:`KeyError` that lists the known names otherwise."""
    found = MODELS.get(name) or _REGISTERED.get(name)
    if found is None:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(names())}")
    return found


def unknown(name: str) -> str:
    """The one-line reason a name is refused."""
    hint = " (a project's own type: package.module:Class or a path to a .json schema)"
    return f"unknown model {name!r}; known models: {', '.join(names())}{hint}"


def register(name: str, model: type[BaseModel], origin: str) -> str:
    """``model`` under ``name``; the same model again is fine, another one under a taken name is refused."""
    if not NAME_PATTERN.match(name):
        raise PayloadError(f"{origin}: type name {name!r} must be CamelCase (e.g. OrderRequest)")
    if name in MODELS:
        raise PayloadError(f"{origin}: {name!r} is one of the plane's own types: give the project's type another name")
    taken = _REGISTERED.get(name)
    if taken is not None and _fingerprint(taken) != _fingerprint(model):
        raise PayloadError(f"{origin}: type {name!r} is already defined by {_ORIGINS[name]}")
    _REGISTERED[name] = model
    _ORIGINS.setdefault(name, origin)
    return name


def resolve(ref: str, *, project_root: Path, import_root: Path) -> str:
    """The registered name of the type ``ref`` names (registering it), or ``ref`` itself when it is a name."""
    if not is_reference(ref):
        return ref
    if ref.endswith(".json"):
        path = (project_root / ref).resolve()
        if not path.is_relative_to(project_root.resolve()):
            raise PayloadError(f"{ref}: a schema file must lie inside the project")
        text = read_text(path, PayloadError, named=ref)
        try:
            schema = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PayloadError(f"{ref}: not JSON: line {exc.lineno}: {exc.msg}") from exc
        name = schema_name(schema, path) if isinstance(schema, dict) else ""
        return register(name, schema_model(schema, name=name or "Payload", where=ref), ref)
    if not _IMPORT_PATH.match(ref):
        raise PayloadError(f"{ref!r}: expected package.module:Class")
    module_name, _, attribute = ref.partition(":")
    root = str(import_root.resolve())
    if root not in sys.path:
        sys.path.insert(0, root)  # the project's packages import as they do on Lambda (their folder is the root)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PayloadError(f"{ref}: cannot import {module_name} from {import_root}: {exc}") from exc
    model = getattr(module, attribute, None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise PayloadError(f"{ref}: {attribute} is not a pydantic model")
    return register(model.__name__, model, ref)


def load_schema_model(path: Path) -> type[BaseModel]:
    """The model of the JSON Schema file at ``path``, named as :func:`resolve` names it: for a handler whose contract
    names a schema file (kept inside the handler's package, it ships with the code)."""
    schema = json.loads(path.read_text(encoding="utf-8"))
    return schema_model(schema, name=schema_name(schema, path), where=path.name)


def schema_name(schema: Mapping[str, Any], path: Path) -> str:
    """The schema's ``title`` when it is a CamelCase name, else its file name in CamelCase."""
    title = schema.get("title")
    if isinstance(title, str) and NAME_PATTERN.match(title):
        return title
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", path.stem) if part)


def schema_model(schema: Any, *, name: str, where: str = "<schema>") -> type[BaseModel]:
    """A pydantic model validating what the JSON Schema ``schema`` (an object schema) says.

    Read: ``type`` (one, or one with ``"null"``), ``properties``, ``required``, ``additionalProperties`` (false:
    unknown fields refused; a schema: the type of every value of a map), ``items``, ``enum``, ``const``,
    ``anyOf``/``oneOf``, local ``$ref`` into ``$defs``/``definitions``, string/number/array bounds, ``pattern``,
    ``default`` and ``description``. Anything else is a :class:`PayloadError` naming it.
    """
    if not isinstance(schema, Mapping) or schema.get("type") != "object":
        raise PayloadError(f"{where}: a payload schema describes an object (type: object)")
    builder = _SchemaBuilder(schema, where)
    return builder.model(schema, name, "")


class _SchemaBuilder:
    def __init__(self, root: Mapping[str, Any], where: str) -> None:
        self.definitions: Mapping[str, Any] = {**root.get("definitions", {}), **root.get("$defs", {})}
        self.where = where
        self.built: dict[str, type[BaseModel]] = {}
        self.building: set[str] = set()

    def fail(self, path: str, reason: str) -> PayloadError:
        return PayloadError(f"{self.where}: {path or '<root>'}: {reason}")

    def model(self, node: Mapping[str, Any], name: str, path: str) -> type[BaseModel]:
        self.check_keywords(node, "object", path)
        properties = node.get("properties", {})
        required = set(node.get("required", []))
        if not isinstance(properties, Mapping) or not required <= set(properties):
            raise self.fail(path, f"required names what properties do not: {sorted(required - set(properties))}")
        fields: dict[str, Any] = {}
        for key, child in properties.items():
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key) or key.startswith("model_"):
                raise self.fail(f"{path}.{key}", "property names must be identifiers (and not start with model_)")
            annotation, constraints = self.annotation(child, f"{path}.{key}", name + _camel(key))
            description = child.get("description") if isinstance(child, Mapping) else None
            if key in required:
                default: Any = ...
            elif isinstance(child, Mapping) and "default" in child:
                default = child["default"]
            else:
                annotation, default = annotation | None, None
            fields[key] = (annotation, Field(default, description=description, **constraints))
        extra: Literal["forbid", "allow"] = "forbid" if node.get("additionalProperties") is False else "allow"
        config = ConfigDict(extra=extra, frozen=True, title=str(node.get("title") or name))
        model: type[BaseModel] = create_model(name, __config__=config, **fields)
        model.__doc__ = str(node.get("description") or f"{name}, read from {self.where}")
        return model

    def annotation(self, node: Any, path: str, name: str) -> tuple[Any, dict[str, Any]]:
        """The type and the pydantic constraints of one schema node."""
        if node is True or node == {}:
            return Any, {}
        if not isinstance(node, Mapping):
            raise self.fail(path, "expected a schema object")
        if "$ref" in node:
            return self.reference(str(node["$ref"]), path), {}
        for union in ("anyOf", "oneOf"):
            if union in node:
                members = [
                    self.annotation(m, f"{path}.{union}[{i}]", f"{name}{i}")[0] for i, m in enumerate(node[union])
                ]
                return Union[tuple(members)], {}  # noqa: UP007 (a runtime-built union)
        kind = node.get("type")
        if isinstance(kind, list):
            others = [k for k in kind if k != "null"]
            if len(others) != 1:
                raise self.fail(path, f"type {kind}: one type, optionally with null")
            inner, constraints = self.annotation({**node, "type": others[0]}, path, name)
            return inner | None, constraints
        if kind not in _KEYWORDS:
            raise self.fail(path, f"type {kind!r}: expected one of {', '.join(_KEYWORDS)}")
        self.check_keywords(node, str(kind), path)
        if "const" in node:
            return Literal[node["const"]], {}
        if "enum" in node:
            return Literal[tuple(node["enum"])], {}
        constraints = {_CONSTRAINTS[k]: v for k, v in node.items() if k in _CONSTRAINTS}
        if kind == "array":
            item, _ = self.annotation(node.get("items", True), f"{path}[]", f"{name}Item")
            return list[item], constraints  # type: ignore[valid-type]
        if kind == "object":
            values = node.get("additionalProperties")
            if "properties" in node or values is False or (values is None and "required" in node):
                return self.model(node, name, path), {}
            value, _ = self.annotation(values if isinstance(values, Mapping) else True, f"{path}{{}}", f"{name}Value")
            return dict[str, value], {}  # type: ignore[valid-type]
        return _SCALARS[str(kind)], constraints

    def reference(self, ref: str, path: str) -> type[BaseModel]:
        match = re.match(r"^#/(\$defs|definitions)/([A-Za-z0-9_]+)$", ref)
        if match is None or match[2] not in self.definitions:
            raise self.fail(path, f"$ref {ref!r}: only references into this schema's $defs are read")
        target = match[2]
        if target in self.building:
            raise self.fail(path, f"$ref {ref!r}: a type that contains itself is not read")
        if target not in self.built:
            self.building.add(target)
            node = self.definitions[target]
            if not isinstance(node, Mapping) or node.get("type") != "object":
                raise self.fail(path, f"$ref {ref!r}: a referenced definition must be an object schema")
            self.built[target] = self.model(node, target, f"$defs.{target}")
            self.building.discard(target)
        return self.built[target]

    def check_keywords(self, node: Mapping[str, Any], kind: str, path: str) -> None:
        unread = set(node) - _ANNOTATIONS - _KEYWORDS[kind] - {"type"}
        if unread:
            raise self.fail(path, f"{', '.join(sorted(unread))}: not read by the plane (see docs/projects.md)")


def _camel(key: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in key.split("_") if part)


def _fingerprint(model: type[BaseModel]) -> str:
    return json.dumps(model.model_json_schema(), sort_keys=True)
