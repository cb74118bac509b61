"""Load and validate capability contract files, with one-line errors that name file, field and reason."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from contracts.capability import CapabilityContract, LlmRuntime

CONTRACTS_DIR = Path(__file__).parent / "agents"
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


def load_contract(path: Path, *, check_name: bool = True) -> CapabilityContract:
    """Parse and validate one contract file; its stem must be the contract's name unless ``check_name`` is off."""
    contract = validate_file(path, CapabilityContract)
    if check_name and contract.name != path.stem:
        raise ContractError(str(path), "name", f"{contract.name!r} must match the file name {path.stem!r}")
    if isinstance(contract.runtime, LlmRuntime):
        contract = contract.model_copy(update={"runtime": _with_prompt(str(path), path, contract.runtime)})
    return contract


def validate_file(path: Path, model: type[M], field_path: Callable[[tuple[int | str, ...]], str] | None = None) -> M:
    """One YAML file as ``model``; any problem is a :class:`ContractError` naming the first field (``field_path``
    renders pydantic's location; by default as contracts' fields)."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(file, DOCUMENT, f"cannot read: {exc}") from exc
    document = _parse_yaml(file, text)
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


def load_contracts(directory: Path = CONTRACTS_DIR) -> dict[str, CapabilityContract]:
    """Every contract in ``directory`` (``*.yaml``, ``*.yml``), keyed and sorted by name."""
    contracts: dict[str, CapabilityContract] = {}
    paths = sorted(path for path in directory.iterdir() if path.suffix in _SUFFIXES and path.is_file())
    for path in paths:
        contract = load_contract(path)
        if contract.name in contracts:
            raise ContractError(str(path), "name", f"duplicate contract name {contract.name!r}")
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
