"""Contract compatibility: classify every change between two versions of a capability contract.

A change is judged as a caller would judge it: can something that worked against the old version stop
working against the new one? If so it is breaking and needs a major version bump; otherwise it needs a
minor bump (callers can see it) or a patch bump (they cannot). The rules are tables (:data:`RULES` for
contract fields, :data:`PROPERTY_RULES` for io fields); a contract field no rule knows is reported as
breaking until one classifies it. The rules, in words: ``docs/contract-compatibility.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Literal

from pydantic import ValidationError

from contracts.capability import SLO, CapabilityContract, LambdaRuntime, LlmRuntime

Direction = Literal["input", "output"]
Effect = Literal["narrows", "widens"]


class CompatError(ValueError):
    """Something that cannot be compared (a version that is not SemVer, a dangling ``$ref``); one line."""


class Bump(IntEnum):
    """The least version bump a change needs (SemVer)."""

    NONE = 0
    PATCH = 1
    MINOR = 2
    MAJOR = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Change:
    """One difference between two versions of a contract, and what it means for callers."""

    path: str
    kind: str
    bump: Bump
    detail: str
    old: Any = None
    new: Any = None

    @property
    def breaking(self) -> bool:
        return self.bump is Bump.MAJOR

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "compatibility": "breaking" if self.breaking else "compatible",
            "bump": self.bump.label,
            "detail": self.detail,
            "old": self.old,
            "new": self.new,
        }


@dataclass(frozen=True)
class Snapshot:
    """A contract as its callers see it: the contract document and the JSON Schemas of its io models."""

    contract: Mapping[str, Any]
    schemas: Mapping[str, Mapping[str, Any]]

    @property
    def name(self) -> str:
        return str(self.contract.get("name", "?"))

    @property
    def version(self) -> str:
        return str(self.contract.get("version", "0.0.0"))

    def to_json(self) -> dict[str, Any]:
        return {"contract": dict(self.contract), "schemas": {k: dict(v) for k, v in self.schemas.items()}}


def snapshot(contract: CapabilityContract) -> Snapshot:
    """What callers rely on today: inputs as the agent validates them, outputs as it serialises them."""
    return Snapshot(
        contract=contract.model_dump(mode="json"),
        schemas={
            "input": contract.input_model.model_json_schema(mode="validation"),
            "output": contract.output_model.model_json_schema(mode="serialization"),
        },
    )


# --- versions -------------------------------------------------------------------------------------


def parse_version(version: str) -> tuple[int, int, int]:
    parts = version.split(".")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        raise CompatError(f"not a MAJOR.MINOR.PATCH version: {version!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])


def bump_between(old: str, new: str) -> Bump | None:
    """The bump from ``old`` to ``new``; None when ``new`` is lower."""
    before, after = parse_version(old), parse_version(new)
    if after < before:
        return None
    if after == before:
        return Bump.NONE
    if after[0] != before[0]:
        return Bump.MAJOR
    return Bump.MINOR if after[1] != before[1] else Bump.PATCH


def needed_bump(changes: Iterable[Change], old_version: str) -> Bump:
    """The bump the changes need. Below 1.0.0 everything shifts down one (0.y: y breaks), as Cargo does."""
    needed = max((change.bump for change in changes), default=Bump.NONE)
    if parse_version(old_version)[0] == 0 and needed > Bump.PATCH:
        return Bump(needed - 1)
    return needed


def suggest(old_version: str, bump: Bump) -> str:
    major, minor, patch = parse_version(old_version)
    if bump is Bump.MAJOR:
        return f"{major + 1}.0.0"
    if bump is Bump.MINOR:
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}" if bump is Bump.PATCH else old_version


@dataclass(frozen=True)
class ContractDiff:
    """Every change between two versions of one contract, and whether the new version number covers them."""

    name: str
    old_version: str
    new_version: str
    changes: tuple[Change, ...]

    @property
    def breaking(self) -> bool:
        return any(change.breaking for change in self.changes)

    @property
    def needed(self) -> Bump:
        return needed_bump(self.changes, self.old_version)

    @property
    def bumped(self) -> Bump | None:
        return bump_between(self.old_version, self.new_version)

    @property
    def verdict(self) -> str | None:
        """Why the new version number does not fit the changes; None when it does."""
        bumped = self.bumped
        if bumped is None:
            return "the version went backwards"
        if bumped >= self.needed:
            return None
        what = "breaking change" if self.breaking else f"{self.needed.label}-level change"
        got = "no bump" if bumped is Bump.NONE else f"a {bumped.label} bump"
        target = suggest(self.old_version, self.needed)
        return f"{what} without a {self.needed.label} version bump (to {target}; got {got})"

    @property
    def problem(self) -> str | None:
        """The verdict with the contract and the changes that need the bump named: one line for a gate."""
        verdict = self.verdict
        if verdict is None:
            return None
        top = max((change.bump for change in self.changes), default=Bump.NONE)
        relevant = [change for change in self.changes if change.bump == top]
        named = "; ".join(f"{change.path}: {change.detail}" for change in relevant[:3])
        more = f" (+{len(relevant) - 3} more)" if len(relevant) > 3 else ""
        head = f"{self.name} {self.old_version} -> {self.new_version}: {verdict}"
        return f"{head}: {named}{more}" if named else head

    def to_json(self) -> dict[str, Any]:
        bumped = self.bumped
        return {
            "name": self.name,
            "old_version": self.old_version,
            "new_version": self.new_version,
            "breaking": self.breaking,
            "needed_bump": self.needed.label,
            "version_bump": "downgrade" if bumped is None else bumped.label,
            "problem": self.problem,
            "changes": [change.to_json() for change in self.changes],
        }

    def lines(self) -> list[str]:
        """The diff for people: a heading, one line per change, and the version verdict."""
        breaking = sum(change.breaking for change in self.changes)
        count = f"{len(self.changes)} change{'s' if len(self.changes) != 1 else ''}"
        out = [f"{self.name} {self.old_version} -> {self.new_version}: {count} ({breaking} breaking)"]
        width = max((len(change.path) for change in self.changes), default=0)
        for change in self.changes:
            label = "BREAKING" if change.breaking else change.bump.label
            out.append(f"  {label:<8}  {change.path:<{width}}  {change.detail}")
        out.append(f"  version: {self.verdict or 'ok'}")
        return out


def diff(old: Snapshot, new: Snapshot) -> ContractDiff:
    """Every change from ``old`` to ``new``, classified."""
    for version in (old.version, new.version):
        parse_version(version)  # refuse now, not when the verdict is asked for
    walker = _Walker(_normalized(old.contract), _normalized(new.contract))
    walker.walk("", walker.old, walker.new)
    for direction in ("input", "output"):
        _SchemaDiff(walker, old.schemas.get(direction, {}), new.schemas.get(direction, {}), direction).node(
            f"io.{direction}", old.schemas.get(direction, {}), new.schemas.get(direction, {}), frozenset(), root=True
        )
    return ContractDiff(name=new.name, old_version=old.version, new_version=new.version, changes=tuple(walker.changes))


def _normalized(document: Mapping[str, Any]) -> dict[str, Any]:
    """The document with today's defaults filled in, so a field added since with a default is not a change."""
    try:
        return CapabilityContract.model_validate(document).model_dump(mode="json")
    except ValidationError:
        return dict(document)


# --- contract fields ----------------------------------------------------------------------------------

_ABSENT: Any = object()


class _Walker:
    def __init__(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.old = old
        self.new = new
        self.changes: list[Change] = []

    def add(self, path: str, kind: str, bump: Bump, detail: str, old: Any = None, new: Any = None) -> None:
        self.changes.append(Change(path, kind, bump, detail, _shown(old), _shown(new)))

    def walk(self, path: str, old: Any, new: Any) -> None:
        if _same(old, new):
            return
        rule = RULES.get(path)
        if rule is not None:
            rule(self, path, _shown(old), _shown(new))
        elif isinstance(old, Mapping) and isinstance(new, Mapping):
            for key in sorted(old.keys() | new.keys()):
                if path == "" and key == "version":
                    continue  # the version is what the changes are checked against, not a change
                self.walk(f"{path}.{key}" if path else key, old.get(key, _ABSENT), new.get(key, _ABSENT))
        else:
            self.add(
                path,
                "unclassified",
                Bump.MAJOR,
                f"no compatibility rule for {path!r} yet: treated as breaking until contracts/compat.py classifies it",
                old,
                new,
            )


def _same(old: Any, new: Any) -> bool:
    # A field one side lacks and the other leaves empty says the same thing.
    return old == new or (_empty(old) and _empty(new))


def _empty(value: Any) -> bool:
    return value is None or value is _ABSENT or value == [] or value == {}


def _shown(value: Any) -> Any:
    return None if value is _ABSENT else value


Rule = Callable[[_Walker, str, Any, Any], None]


@dataclass(frozen=True)
class Outcome:
    kind: str
    bump: Bump
    detail: str  # may use {old}, {new} and {item}


def _fixed(outcome: Outcome) -> Rule:
    """Any change at all has this outcome."""

    def rule(walker: _Walker, path: str, old: Any, new: Any) -> None:
        walker.add(path, outcome.kind, outcome.bump, outcome.detail.format(old=_shown(old), new=_shown(new)), old, new)

    return rule


def _numeric(*, lower: Outcome, higher: Outcome, unset: float) -> Rule:
    """A number whose direction matters; an unset value counts as ``unset`` (e.g. infinity: no cap)."""

    def rule(walker: _Walker, path: str, old: Any, new: Any) -> None:
        before = unset if old in (None, _ABSENT) else float(old)
        after = unset if new in (None, _ABSENT) else float(new)
        outcome = lower if after < before else higher
        walker.add(path, outcome.kind, outcome.bump, outcome.detail.format(old=_shown(old), new=_shown(new)), old, new)

    return rule


def _members(*, removed: Outcome, added: Outcome) -> Rule:
    """A list read as a set: each removed and each added member is a change of its own."""

    def rule(walker: _Walker, path: str, old: Any, new: Any) -> None:
        before, after = list(old or []), list(new or [])
        for item in before:
            if item not in after:
                walker.add(path, removed.kind, removed.bump, removed.detail.format(item=item), item, None)
        for item in after:
            if item not in before:
                walker.add(path, added.kind, added.bump, added.detail.format(item=item), None, item)

    return rule


def _ranked(order: tuple[str, ...], *, up: Outcome, down: Outcome) -> Rule:
    """A value on a scale: moving up the scale is ``up``, down is ``down``."""

    def rule(walker: _Walker, path: str, old: Any, new: Any) -> None:
        if old not in order or new not in order:
            walker.add(path, "unclassified", Bump.MAJOR, f"{old} -> {new}: not on the scale {order}", old, new)
            return
        outcome = up if order.index(new) > order.index(old) else down
        walker.add(path, outcome.kind, outcome.bump, outcome.detail.format(old=old, new=new), old, new)

    return rule


def _flag(*, cleared: Outcome, set_: Outcome) -> Rule:
    def rule(walker: _Walker, path: str, old: Any, new: Any) -> None:
        outcome = set_ if new else cleared
        walker.add(path, outcome.kind, outcome.bump, outcome.detail, old, new)

    return rule


def _runtime(walker: _Walker, path: str, old: Any, new: Any) -> None:
    old_kind = old.get("kind") if isinstance(old, Mapping) else None
    new_kind = new.get("kind") if isinstance(new, Mapping) else None
    if old_kind != new_kind or not isinstance(old, Mapping) or not isinstance(new, Mapping):
        walker.add(
            f"{path}.kind",
            "runtime-kind-changed",
            Bump.MAJOR,
            f"runtime changed from {old_kind} to {new_kind}: callers bound to the old target no longer reach it",
            old_kind,
            new_kind,
        )
        return
    for key in sorted(old.keys() | new.keys()):
        walker.walk(f"{path}.{key}", old.get(key, _ABSENT), new.get(key, _ABSENT))


def _effective_timeout(document: Mapping[str, Any]) -> int | None:
    try:
        runtime = document["runtime"]
        model = LlmRuntime if runtime.get("kind") == "llm" else LambdaRuntime
        return model.model_validate(runtime).effective_timeout_s(SLO.model_validate(document["slo"]))
    except (KeyError, TypeError, AttributeError, ValidationError):
        return None


def _timeout(walker: _Walker, path: str, old: Any, new: Any) -> None:
    # Unset means "derived from the SLO's p95": compare what the function actually gets.
    before, after = _effective_timeout(walker.old), _effective_timeout(walker.new)
    if before is not None and after is not None and after < before:
        walker.add(
            path,
            "timeout-shortened",
            Bump.MAJOR,
            f"timeout {before} s -> {after} s: calls that ran longer than {after} s now fail",
            _shown(old),
            _shown(new),
        )
    else:
        walker.add(path, "timeout-lengthened", Bump.PATCH, f"timeout {before} s -> {after} s", _shown(old), _shown(new))


def _fallback_key(entry: Any) -> str:
    return f"capability:{entry['capability']}" if isinstance(entry, Mapping) else str(entry)


def covers(wide: str, narrow: str) -> bool:
    """Whether version range ``wide`` ("1.x", "1.2.x", "1.2.3") includes all of ``narrow``."""
    for have, want in zip(wide.split("."), narrow.split("."), strict=False):
        if have == "x":
            return True
        if have != want:
            return False
    return len(wide.split(".")) == len(narrow.split("."))


def _fallback(walker: _Walker, path: str, old: Any, new: Any) -> None:
    before = {_fallback_key(entry): entry for entry in old or []}
    after = {_fallback_key(entry): entry for entry in new or []}
    for key, entry in before.items():
        if key not in after:
            walker.add(path, "fallback-removed", Bump.MAJOR, f"failures no longer fall back to {key}", entry, None)
            continue
        if isinstance(entry, Mapping) and entry != after[key]:
            was, now = str(entry["max_version"]), str(after[key]["max_version"])
            if covers(now, was):
                walker.add(path, "fallback-range-widened", Bump.MINOR, f"{key}: accepts {now} (was {was})", was, now)
            else:
                detail = f"{key}: versions within {was} that {now} leaves out are no longer used"
                walker.add(path, "fallback-range-narrowed", Bump.MAJOR, detail, was, now)
    for key, entry in after.items():
        if key in before:
            continue
        if key == "approximate":
            detail = "callers may now receive an approximate result where they received an error"
            walker.add(path, "fallback-approximate-added", Bump.MAJOR, detail, None, entry)
        else:
            walker.add(path, "fallback-added", Bump.MINOR, f"failures may now fall back to {key}", None, entry)
    common = [key for key in before if key in after]
    if common != [key for key in after if key in before]:
        walker.add(path, "fallback-reordered", Bump.MINOR, "fallbacks are tried in a different order", old, new)


def _guardrail(walker: _Walker, path: str, old: Any, new: Any) -> None:
    if _empty(new):
        detail = "no guardrail any more: answers it blocked may now reach callers"
        walker.add(path, "guardrail-removed", Bump.MAJOR, detail, old, None)
    else:
        detail = f"guardrail {old} -> {new}: answers are filtered differently"
        walker.add(path, "guardrail-changed", Bump.MINOR, detail, old, new)


def _limit(what: str) -> Rule:
    return _numeric(
        lower=Outcome(
            "budget-tightened", Bump.MAJOR, what + " {old} -> {new}: runs that finished within it may now fail"
        ),
        higher=Outcome("budget-loosened", Bump.PATCH, what + " {old} -> {new}"),
        unset=math.inf,
    )


def _io_model(walker: _Walker, path: str, old: Any, new: Any) -> None:
    # The model's name is not what callers see; its schema is (compared separately, field by field).
    walker.add(path, "io-model-renamed", Bump.PATCH, f"model {old} -> {new}", old, new)


INTERNAL = Outcome("internal", Bump.PATCH, "{old} -> {new} (not visible to callers)")
ANSWERS_MAY_DIFFER = Outcome("model-changed", Bump.MINOR, "{old} -> {new}: same schemas, possibly different answers")
_SIDE_EFFECTS = ("read-only", "idempotent-write", "external-action")

# Contract field (dotted path) -> how a change to it is classified. Fields that are mappings and have no rule
# are compared key by key; a leaf without a rule is reported as breaking ("unclassified").
RULES: dict[str, Rule] = {
    "name": _fixed(Outcome("renamed", Bump.MAJOR, "renamed {old} -> {new}: callers address it by name")),
    "description": _fixed(Outcome("description", Bump.PATCH, "description changed")),
    "capabilities": _members(
        removed=Outcome("capability-removed", Bump.MAJOR, "no longer offers {item!r}: callers dispatching to it fail"),
        added=Outcome("capability-added", Bump.MINOR, "now also offers {item!r}"),
    ),
    "subscribes": _members(
        removed=Outcome("subscription-removed", Bump.MAJOR, "no longer handles {item!r} events: publishers lose it"),
        added=Outcome("subscription-added", Bump.MINOR, "now also handles {item!r} events"),
    ),
    "io.input": _io_model,
    "io.output": _io_model,
    "runtime": _runtime,
    "runtime.handler": _fixed(INTERNAL),
    "runtime.approximate_handler": _fixed(INTERNAL),
    "runtime.memory_mb": _fixed(INTERNAL),
    "runtime.timeout_s": _timeout,
    "runtime.reserved_concurrency": _numeric(
        lower=Outcome(
            "concurrency-capped", Bump.MAJOR, "reserved concurrency {old} -> {new}: calls above it are now throttled"
        ),
        higher=Outcome("concurrency-raised", Bump.PATCH, "reserved concurrency {old} -> {new}"),
        unset=math.inf,
    ),
    "runtime.provisioned_concurrency": _fixed(INTERNAL),
    "runtime.snapstart": _fixed(INTERNAL),
    "runtime.bursty": _fixed(INTERNAL),
    "runtime.instance_type": _fixed(INTERNAL),
    "runtime.min_instances": _fixed(INTERNAL),
    "runtime.max_instances": _numeric(
        lower=Outcome("capacity-capped", Bump.MAJOR, "max instances {old} -> {new}: less capacity under load"),
        higher=Outcome("capacity-raised", Bump.PATCH, "max instances {old} -> {new}"),
        unset=math.inf,
    ),
    "runtime.container": _fixed(INTERNAL),
    # Another image, version, set of weights or tool parser: same schemas, possibly different answers.
    "runtime.serving": _fixed(ANSWERS_MAY_DIFFER),
    "runtime.stateful": _flag(
        cleared=Outcome("sessions-dropped", Bump.MAJOR, "no longer sticky: a session's calls may reach any instance"),
        set_=Outcome("sessions-added", Bump.MINOR, "now keeps sticky sessions"),
    ),
    # How a new version takes traffic is the plane's business: callers see the same contract either way.
    "rollout": _fixed(Outcome("rollout", Bump.PATCH, "rollout policy {old} -> {new} (not visible to callers)")),
    # kind: llm. Callers see the same schemas whatever answers; a different model or prompt may answer differently.
    "runtime.model.provider": _fixed(ANSWERS_MAY_DIFFER),
    "runtime.model.id": _fixed(ANSWERS_MAY_DIFFER),
    "runtime.model.endpoint": _fixed(ANSWERS_MAY_DIFFER),
    "runtime.model.inference_profile": _fixed(INTERNAL),
    "runtime.prompt": _fixed(INTERNAL),  # the file's name; its text is prompt_sha256
    "runtime.prompt_sha256": _fixed(
        Outcome("prompt-changed", Bump.MINOR, "prompt text changed: same schemas, possibly different answers")
    ),
    "runtime.tools": _members(
        removed=Outcome("tool-removed", Bump.MINOR, "no longer calls {item!r}"),
        added=Outcome("tool-added", Bump.MAJOR, "now calls {item!r}: a wider reach needs a fresh review"),
    ),
    "runtime.limits.max_turns": _limit("max turns"),
    "runtime.limits.max_input_tokens": _limit("max input tokens"),
    "runtime.limits.max_output_tokens": _limit("max output tokens"),
    "runtime.limits.max_cost_usd": _limit("max cost (USD)"),
    "runtime.limits.answer_retries": _fixed(INTERNAL),
    "runtime.guardrail": _guardrail,
    "runtime.inference.temperature": _fixed(ANSWERS_MAY_DIFFER),
    "runtime.inference.top_p": _fixed(ANSWERS_MAY_DIFFER),
    "runtime.inference.max_tokens": _limit("max tokens per turn"),
    "permissions": _members(
        removed=Outcome("permission-narrowed", Bump.MINOR, "no longer holds {item!r}"),
        added=Outcome("permission-widened", Bump.MAJOR, "now holds {item!r}: a wider grant needs a fresh review"),
    ),
    "side_effects": _ranked(
        _SIDE_EFFECTS,
        up=Outcome("side-effects-widened", Bump.MAJOR, "{old} -> {new}: retries and replays are no longer safe"),
        down=Outcome("side-effects-narrowed", Bump.MINOR, "{old} -> {new}"),
    ),
    "slo.p95_ms": _numeric(
        lower=Outcome("slo-tightened", Bump.MAJOR, "p95 {old} ms -> {new} ms: behaviour that met the SLO now burns it"),
        higher=Outcome("slo-loosened", Bump.MINOR, "p95 {old} ms -> {new} ms: a weaker latency promise"),
        unset=math.inf,
    ),
    "slo.availability": _numeric(
        lower=Outcome("slo-loosened", Bump.MINOR, "availability {old}% -> {new}%: a weaker promise"),
        higher=Outcome(
            "slo-tightened", Bump.MAJOR, "availability {old}% -> {new}%: error rates that met the SLO now burn it"
        ),
        unset=0,
    ),
    "slo.error_budget_pct": _numeric(
        lower=Outcome("slo-tightened", Bump.MAJOR, "error budget {old}% -> {new}%: it is spent sooner"),
        higher=Outcome("slo-loosened", Bump.MINOR, "error budget {old}% -> {new}%"),
        unset=math.inf,
    ),
    "batching": _fixed(Outcome("batching", Bump.PATCH, "batching {old} -> {new} (latency stays within the SLO)")),
    "fallback": _fallback,
    "telemetry.metrics": _members(
        removed=Outcome("metric-removed", Bump.MAJOR, "stops emitting {item!r}: dashboards and alarms on it go blind"),
        added=Outcome("metric-added", Bump.MINOR, "now emits {item!r}"),
    ),
    "telemetry.errors": _members(
        removed=Outcome("error-removed", Bump.MINOR, "no longer raises {item!r}"),
        added=Outcome("error-added", Bump.MAJOR, "may now raise {item!r}, which callers do not handle yet"),
    ),
}


# --- io schemas -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PropertyOutcome:
    kind: str
    bump: Bump
    detail: str


# (direction, what happened to a field) -> outcome. Outputs are always serialised in full, so a field that
# disappears from an output or may now be missing breaks callers even if the schema called it optional.
PROPERTY_RULES: dict[tuple[Direction, str], PropertyOutcome] = {
    ("input", "added-required"): PropertyOutcome(
        "input-field-required", Bump.MAJOR, "new required input field: existing callers do not send it"
    ),
    ("input", "added-optional"): PropertyOutcome("input-field-added", Bump.MINOR, "new optional input field"),
    ("input", "removed"): PropertyOutcome(
        "input-field-removed", Bump.MAJOR, "input field removed: callers that send it are refused"
    ),
    ("input", "now-required"): PropertyOutcome(
        "input-field-required", Bump.MAJOR, "input field is now required: callers that omit it are refused"
    ),
    ("input", "now-optional"): PropertyOutcome("input-field-optional", Bump.MINOR, "input field is now optional"),
    ("output", "added-required"): PropertyOutcome("output-field-added", Bump.MINOR, "new output field"),
    ("output", "added-optional"): PropertyOutcome("output-field-added", Bump.MINOR, "new output field"),
    ("output", "removed"): PropertyOutcome(
        "output-field-removed", Bump.MAJOR, "output field removed: callers that read it break"
    ),
    ("output", "now-required"): PropertyOutcome("output-field-required", Bump.MINOR, "output field is now always set"),
    ("output", "now-optional"): PropertyOutcome(
        "output-field-optional", Bump.MAJOR, "output field may now be missing: callers that read it break"
    ),
}

# Whether narrowing or widening a value's accepted set is breaking depends on who produces it: callers
# produce inputs (narrowing refuses what they send), agents produce outputs (widening surprises callers).
_CONSEQUENCE: dict[tuple[Direction, Effect], tuple[Bump, str]] = {
    ("input", "narrows"): (Bump.MAJOR, "some requests that were valid are now refused"),
    ("input", "widens"): (Bump.MINOR, "accepts more than before"),
    ("output", "widens"): (Bump.MAJOR, "callers may receive values the old version never returned"),
    ("output", "narrows"): (Bump.MINOR, "returns a subset of what it returned before"),
}

_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_RESTRICTIONS = ("pattern", "format", "multipleOf")
_ANNOTATIONS = frozenset({"title", "description", "examples", "deprecated", "readOnly", "writeOnly", "$comment"})
_STRUCTURE = frozenset(
    {"$ref", "$defs", "$schema", "anyOf", "oneOf", "type", "const", "enum", "properties", "required"}
    | {"additionalProperties", "items", "prefixItems", "uniqueItems", "default"}
    | set(_LOWER_BOUNDS)
    | set(_UPPER_BOUNDS)
    | set(_RESTRICTIONS)
)
_NUMBER_KINDS = ("integer", "number")


@dataclass
class _SchemaDiff:
    walker: _Walker
    old_root: Mapping[str, Any]
    new_root: Mapping[str, Any]
    direction: Direction

    def effect(self, path: str, kind: str, effect: Effect, what: str, old: Any = None, new: Any = None) -> None:
        bump, consequence = _CONSEQUENCE[(self.direction, effect)]
        self.walker.add(path, kind, bump, f"{what}: {consequence}", old, new)

    def node(
        self, path: str, old: Mapping[str, Any], new: Mapping[str, Any], seen: frozenset[str], *, root: bool = False
    ) -> None:
        old, old_ref = _resolve(old, self.old_root)
        new, new_ref = _resolve(new, self.new_root)
        pair = f"{old_ref}|{new_ref}"
        if old_ref is not None and new_ref is not None:
            if pair in seen:
                return  # a recursive model: its fields were compared one level up
            seen = seen | {pair}
        before, after = _alternatives(old, self.old_root), _alternatives(new, self.new_root)
        if len(before) == 1 and len(after) == 1 and next(iter(before)) != next(iter(after)):
            self._retyped(path, next(iter(before)), next(iter(after)))
            return
        for kind in sorted(before.keys() - after.keys()):
            self.effect(path, "type-removed", "narrows", f"no longer {_a(kind)}", kind, None)
        for kind in sorted(after.keys() - before.keys()):
            self.effect(path, "type-added", "widens", f"may now be {_a(kind)}", None, kind)
        for kind in sorted(before.keys() & after.keys()):
            self.constraints(path, before[kind], after[kind], seen)
        # Defaults and annotations belong to the field, not to one of its alternatives.
        self._default(path, old.get("default", _ABSENT), new.get("default", _ABSENT))
        self.annotations(path, old, new, root=root)

    def _retyped(self, path: str, old: str, new: str) -> None:
        if new == "any" or (old, new) == _NUMBER_KINDS:
            self.effect(path, "type-widened", "widens", f"{old} -> {new}", old, new)
        elif old == "any" or (new, old) == _NUMBER_KINDS:
            self.effect(path, "type-narrowed", "narrows", f"{old} -> {new}", old, new)
        else:
            self.walker.add(path, "retyped", Bump.MAJOR, f"retyped {old} -> {new}: no caller survives both", old, new)

    def constraints(self, path: str, old: Mapping[str, Any], new: Mapping[str, Any], seen: frozenset[str]) -> None:
        self._enum(path, old, new)
        for keyword in _LOWER_BOUNDS:
            self._bound(path, keyword, old.get(keyword), new.get(keyword), tighter=lambda a, b: a > b)
        for keyword in _UPPER_BOUNDS:
            self._bound(path, keyword, old.get(keyword), new.get(keyword), tighter=lambda a, b: a < b)
        for keyword in (*_RESTRICTIONS, "uniqueItems"):
            self._restriction(path, keyword, old.get(keyword), new.get(keyword))
        self._properties(path, old, new, seen)
        self._extra(path, old.get("additionalProperties", True), new.get("additionalProperties", True), seen)
        if "items" in old or "items" in new:
            self.node(f"{path}[]", old.get("items", {}), new.get("items", {}), seen)
        if old.get("prefixItems") != new.get("prefixItems"):
            self.walker.add(path, "tuple-changed", Bump.MAJOR, "tuple shape changed", old.get("prefixItems"), None)
        for keyword in sorted((old.keys() | new.keys()) - _STRUCTURE - _ANNOTATIONS):
            if old.get(keyword) != new.get(keyword):
                detail = f"no compatibility rule for schema keyword {keyword!r} yet: treated as breaking"
                self.walker.add(path, "unclassified", Bump.MAJOR, detail, old.get(keyword), new.get(keyword))

    def annotations(self, path: str, old: Mapping[str, Any], new: Mapping[str, Any], *, root: bool) -> None:
        for keyword in sorted(_ANNOTATIONS - ({"title"} if root else set())):
            if old.get(keyword) != new.get(keyword):
                detail = f"{keyword} changed (documentation only)"
                self.walker.add(path, "documentation", Bump.PATCH, detail, old.get(keyword), new.get(keyword))

    def _enum(self, path: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        before, after = _enum_values(old), _enum_values(new)
        if before == after:
            return
        if before is None or after is None:
            effect: Effect = "narrows" if before is None else "widens"
            what = f"values limited to {after}" if before is None else "values no longer limited to a list"
            self.effect(path, "enum-" + effect, effect, what, before, after)
            return
        removed = [value for value in before if value not in after]
        added = [value for value in after if value not in before]
        if removed:
            self.effect(path, "enum-narrowed", "narrows", f"values {removed} removed", removed, None)
        if added:
            self.effect(path, "enum-widened", "widens", f"values {added} added", None, added)

    def _bound(self, path: str, keyword: str, old: Any, new: Any, tighter: Callable[[Any, Any], bool]) -> None:
        if old == new:
            return
        narrows = old is None or (new is not None and tighter(new, old))
        effect: Effect = "narrows" if narrows else "widens"
        kind = "bound-tightened" if narrows else "bound-loosened"
        self.effect(path, kind, effect, f"{keyword} {old} -> {new}", old, new)

    def _restriction(self, path: str, keyword: str, old: Any, new: Any) -> None:
        if old == new or (not old and not new):
            return
        if not old or not new:
            effect: Effect = "narrows" if not old else "widens"
            self.effect(path, f"{keyword}-{'added' if not old else 'removed'}", effect, f"{keyword} {old} -> {new}")
            return
        detail = f"{keyword} {old!r} -> {new!r}: neither accepts all the other does"
        self.walker.add(path, f"{keyword}-changed", Bump.MAJOR, detail, old, new)

    def _default(self, path: str, old: Any, new: Any) -> None:
        if old == new:
            return
        if self.direction == "input" and old is not _ABSENT and new is not _ABSENT:
            detail = f"default {old!r} -> {new!r}: callers that omit it get a different request"
            self.walker.add(path, "input-default-changed", Bump.MAJOR, detail, old, new)
        else:
            self.walker.add(path, "default", Bump.PATCH, "default changed", _shown(old), _shown(new))

    def _properties(self, path: str, old: Mapping[str, Any], new: Mapping[str, Any], seen: frozenset[str]) -> None:
        before: Mapping[str, Any] = old.get("properties", {})
        after: Mapping[str, Any] = new.get("properties", {})
        was_required, now_required = set(old.get("required", [])), set(new.get("required", []))
        for name in sorted(before.keys() | after.keys()):
            where = f"{path}.{name}"
            if name not in after:
                self._field(where, "removed")
            elif name not in before:
                self._field(where, "added-required" if name in now_required else "added-optional")
            else:
                if (name in was_required) != (name in now_required):
                    self._field(where, "now-required" if name in now_required else "now-optional")
                self.node(where, before[name], after[name], seen)

    def _field(self, path: str, event: str) -> None:
        outcome = PROPERTY_RULES[(self.direction, event)]
        self.walker.add(path, outcome.kind, outcome.bump, outcome.detail)

    def _extra(self, path: str, old: Any, new: Any, seen: frozenset[str]) -> None:
        """``additionalProperties``: False (none), a schema (values of a mapping) or True (anything)."""
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            self.node(f"{path}.*", old, new, seen)
            return
        rank = {False: 0, True: 2}
        before, after = rank.get(old, 1), rank.get(new, 1)
        if before != after:
            effect: Effect = "widens" if after > before else "narrows"
            self.effect(path, f"extra-fields-{effect}", effect, f"additional fields {old} -> {new}", old, new)


def _resolve(node: Mapping[str, Any], root: Mapping[str, Any]) -> tuple[Mapping[str, Any], str | None]:
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return node, None
    name = ref.removeprefix("#/$defs/")
    target = root.get("$defs", {}).get(name)
    if not isinstance(target, Mapping):
        raise CompatError(f"cannot resolve $ref {ref!r}")
    siblings = {key: value for key, value in node.items() if key != "$ref"}
    return {**target, **siblings}, name


def _alternatives(node: Mapping[str, Any], root: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The node's alternatives (``anyOf``/``oneOf``/type lists), keyed by type (and title for objects)."""
    options = node.get("anyOf") or node.get("oneOf")
    if options:
        found: dict[str, Mapping[str, Any]] = {}
        for option in options:
            for key, alternative in _alternatives(_resolve(option, root)[0], root).items():
                found[key if key not in found else f"{key}#{len(found)}"] = alternative
        return found
    kinds = node.get("type")
    if isinstance(kinds, list):
        return {str(kind): {**node, "type": kind} for kind in kinds}
    if kinds is None:
        return {"any": node} if "const" not in node and "enum" not in node else {"value": node}
    return {str(kinds): node}


def _enum_values(node: Mapping[str, Any]) -> list[Any] | None:
    if "const" in node:
        return [node["const"]]
    values = node.get("enum")
    return list(values) if isinstance(values, list) else None


def _a(kind: str) -> str:
    return "null" if kind == "null" else f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"
