"""Load and validate capability contract files, with one-line errors that name file, field and reason."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from contracts import payloads
from contracts.capability import CapabilityContract, LlmRuntime

CONTRACTS_DIR = Path(__file__).parent / "agents"
# The plane's own agents (the recorders every workflow ends with): part of every plane, whatever its projects.
CORE_DIR = Path(__file__).parent / "core"
DOCUMENT = "<document>"
_SUFFIXES = (".yaml", ".yml")
# Fields whose error locations carry a union tag right after them (``runtime.lambda.handler``,
# ``fallback.0.capability.max_version``): the tag is pydantic's bookkeeping, not a field the author wrote.
_TAGGED_UNION_DEPTH = {"runtime": 1, "fallback": 2}
_MAX_INPUT_CHARS = 60
M = TypeVar("M", bound=BaseModel)


class ContractError(Exception):
    """A contract file that cannot be used, and why."""

    def __init__(self, file: str, field: str, reason: str) -> None:
        self.file = file
        self.field = field
        self.reason = " ".join(reason.split())
        super().__init__(f"{self.file}: {self.field}: {self.reason}")


@dataclass(frozen=True)
class Roots:
    """Where a project's own payload types are found: schema files under ``project``, packages under ``imports``."""

    project: Path
    imports: Path

    @classmethod
    def beside(cls, contract_file: Path) -> Roots:
        """A contracts folder's project: the folder that holds it."""
        root = contract_file.resolve().parent.parent
        return cls(root, root)


def load_contract(path: Path, *, check_name: bool = True, roots: Roots | None = None) -> CapabilityContract:
    """Parse and validate one contract file; its stem must be the contract's name unless ``check_name`` is off.

    Payload types the contract names by import path or schema file are registered first (:mod:`contracts.payloads`),
    found under ``roots`` (default: the project holding the contract's folder); ``io`` then holds their names.
    """
    where = roots or Roots.beside(path)
    contract = validate_file(path, CapabilityContract, prepare=lambda doc: resolve_types(str(path), doc, "io", where))
    if check_name and contract.name != path.stem:
        raise ContractError(str(path), "name", f"{contract.name!r} must match the file name {path.stem!r}")
    if isinstance(contract.runtime, LlmRuntime):
        contract = contract.model_copy(update={"runtime": _with_prompt(str(path), path, contract.runtime)})
    return contract


def resolve_types(file: str, document: dict[str, Any], section: str | None, roots: Roots) -> dict[str, Any]:
    """``document`` with the ``input`` and ``output`` it names (under ``section``, if given) resolved to registered
    type names; a type that cannot be used is a :class:`ContractError` on its field."""
    holder = document.get(section) if section else document
    if not isinstance(holder, dict):
        return document
    resolved = dict(holder)
    for key in ("input", "output"):
        ref = holder.get(key)
        if isinstance(ref, str) and payloads.is_reference(ref):
            try:
                resolved[key] = payloads.resolve(ref, project_root=roots.project, import_root=roots.imports)
            except payloads.PayloadError as exc:
                raise ContractError(file, f"{section}.{key}" if section else key, str(exc)) from exc
    return {**document, section: resolved} if section else resolved


def validate_file(
    path: Path,
    model: type[M],
    field_path: Callable[[tuple[int | str, ...]], str] | None = None,
    *,
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> M:
    """One YAML file as ``model``; any problem is a :class:`ContractError` naming the first field (``field_path``
    renders pydantic's location; by default as contracts' fields). ``prepare`` may rewrite the parsed document."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(file, DOCUMENT, f"cannot read: {exc}") from exc
    document = _parse_yaml(file, text)
    if prepare is not None:
        document = prepare(document)
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        reason = _reason(first) + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else "")
        raise ContractError(file, (field_path or _field_path)(first["loc"]), reason) from exc


def prompt_path(contract_file: Path, prompt: str) -> Path:
    """A prompt is named relative to the contracts folder (``contracts/prompts/...`` beside ``contracts/agents/``).

    Looked up beside the contract's folder, then inside it, then in the shipped contracts folder (a copy of the
    contract files alone, as tests make, still finds the shipped prompts); the first that exists.
    """
    folder = contract_file.resolve().parent
    candidates = [folder.parent / prompt, folder / prompt, CONTRACTS_DIR.parent / prompt]
    return next((path for path in candidates if path.is_file()), candidates[0])


def _with_prompt(file: str, path: Path, runtime: LlmRuntime) -> LlmRuntime:
    """The runtime with its prompt read and hashed; a prompt_sha256 written in the contract pins the text."""
    where = prompt_path(path, runtime.prompt)
    try:
        text = where.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = f"cannot read the prompt {where}: {exc.__class__.__name__}"
        raise ContractError(file, "runtime.prompt", reason) from exc
    if not text.strip():
        raise ContractError(file, "runtime.prompt", f"the prompt {where} is empty")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if runtime.prompt_sha256 is not None and runtime.prompt_sha256 != digest:
        raise ContractError(
            file, "runtime.prompt_sha256", f"{runtime.prompt_sha256} pins the prompt, but {runtime.prompt} is {digest}"
        )
    return runtime.with_prompt(text, digest)


def load_contracts(
    directory: Path = CONTRACTS_DIR, *, roots: Roots | None = None, core: bool = True
) -> dict[str, CapabilityContract]:
    """Every contract in ``directory`` (``*.yaml``, ``*.yml``) and, with ``core``, the plane's own (``CORE_DIR``):
    what a plane holding this folder's agents runs. Keyed and sorted by name; a name twice is refused."""
    contracts: dict[str, CapabilityContract] = {}
    folders = [CORE_DIR, directory] if core and directory.resolve() != CORE_DIR.resolve() else [directory]
    for folder in folders:
        for path in sorted(path for path in folder.iterdir() if path.suffix in _SUFFIXES and path.is_file()):
            contract = load_contract(path, roots=None if folder == CORE_DIR else roots)
            if contract.name in contracts:
                mine = (
                    " (one of the plane's own agents)" if folder != CORE_DIR and (CORE_DIR / path.name).exists() else ""
                )
                raise ContractError(str(path), "name", f"duplicate contract name {contract.name!r}{mine}")
            contracts[contract.name] = contract
    return dict(sorted(contracts.items()))


def _parse_yaml(file: str, text: str) -> dict[str, Any]:
    try:
        document = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ContractError(file, DOCUMENT, f"invalid YAML: {where}{exc.problem or exc.context}") from exc
    except yaml.YAMLError as exc:
        raise ContractError(file, DOCUMENT, f"invalid YAML: {exc}") from exc
    if not isinstance(document, dict):
        kind = "an empty document" if document is None else f"a {type(document).__name__}"
        raise ContractError(file, DOCUMENT, f"line {_first_content_line(text)}: expected a mapping, got {kind}")
    return document


def _first_content_line(text: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and stripped != "---":
            return number
    return 1


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for index, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        elif _TAGGED_UNION_DEPTH.get(str(loc[0])) != index:
            path += f".{part}" if path else part
    return path or DOCUMENT


def _reason(error: ErrorDetails) -> str:
    if error["type"] == "value_error":
        # Our own validators' messages already name the value; drop pydantic's "Value error, " prefix.
        return str(error.get("ctx", {}).get("error", error["msg"]))
    reason = error["msg"]
    value = error["input"]
    if error["type"] != "missing" and isinstance(value, str | int | float | bool):
        shown = repr(value)
        if len(shown) > _MAX_INPUT_CHARS:
            shown = shown[: _MAX_INPUT_CHARS - 3] + "..."
        reason += f" (got {shown})"
    return reason
