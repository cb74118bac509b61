"""The release lock: every contract as last released, and the gate that holds current contracts to it.

``contracts/released.lock.json`` keeps each released contract with the JSON Schemas of its io models, so
a later change to a shared model is caught even though the contract file itself did not move.
``agentplane contracts release`` writes it; the gate (run by ``make test``) fails on a breaking change
without a major bump and on any change without a bump at all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from contracts.capability import CapabilityContract
from contracts.compat import ContractDiff, Snapshot, diff, snapshot
from contracts.validation import first_error

LOCK_PATH = Path(__file__).parent / "released.lock.json"
LOCK_FORMAT = 1


class LockError(Exception):
    """A lock file that cannot be read, or a release that must not be written; the message is one line."""


class _LockedContract(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contract: dict[str, Any]
    schemas: dict[str, dict[str, Any]]


class _Lock(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: int
    contracts: dict[str, _LockedContract]


@dataclass(frozen=True)
class GateReport:
    """Current contracts against the lock: a diff per released contract, plus the new and the gone."""

    diffs: tuple[ContractDiff, ...]
    unreleased: tuple[str, ...]
    removed: tuple[str, ...]

    @property
    def problems(self) -> list[str]:
        found = [problem for d in self.diffs if (problem := d.problem) is not None]
        found += [
            f"{name}: released contract is gone: callers of it break "
            "(`agentplane contracts release --allow-removed` retires it)"
            for name in self.removed
        ]
        return found

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "breaking": bool(self.removed) or any(d.breaking for d in self.diffs),
            "problems": self.problems,
            "contracts": [d.to_json() for d in self.diffs],
            "unreleased": list(self.unreleased),
            "removed": list(self.removed),
        }


def read_lock(path: Path = LOCK_PATH) -> dict[str, Snapshot]:
    """The released contracts by name; an absent lock means nothing was released yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise LockError(f"cannot read {path}: {error}") from None
    try:
        lock = _Lock.model_validate_json(text)
    except ValidationError as error:
        raise LockError(f"{path}: {first_error(error, root='<document>')}") from None
    if lock.format != LOCK_FORMAT:
        raise LockError(f"{path}: format {lock.format} is not {LOCK_FORMAT}")
    return {name: Snapshot(entry.contract, entry.schemas) for name, entry in lock.contracts.items()}


def render_lock(snapshots: Mapping[str, Snapshot]) -> str:
    document = {"format": LOCK_FORMAT, "contracts": {name: snapshots[name].to_json() for name in sorted(snapshots)}}
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def gate(contracts: Mapping[str, CapabilityContract], released: Mapping[str, Snapshot]) -> GateReport:
    """Compare every current contract with its released version."""
    diffs = tuple(diff(released[name], snapshot(contracts[name])) for name in sorted(contracts) if name in released)
    return GateReport(
        diffs=diffs,
        unreleased=tuple(sorted(contracts.keys() - released.keys())),
        removed=tuple(sorted(released.keys() - contracts.keys())),
    )


def release(
    contracts: Mapping[str, CapabilityContract],
    released: Mapping[str, Snapshot],
    *,
    allow_removed: bool = False,
) -> dict[str, Snapshot]:
    """The lock after releasing ``contracts``; refused while the gate has problems (removals only if allowed)."""
    report = gate(contracts, released)
    problems = [p for d in report.diffs if (p := d.problem) is not None] if allow_removed else report.problems
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise LockError(f"not released: {problems[0]}{more}")
    return {name: snapshot(contract) for name, contract in contracts.items()}


def write_lock(snapshots: Mapping[str, Snapshot], path: Path = LOCK_PATH) -> None:
    """Write the lock whole (temporary file, then rename): a failed write leaves the old lock in place."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(render_lock(snapshots), encoding="utf-8")
    temporary.replace(path)
