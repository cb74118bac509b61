"""The compatibility classifier against a table of changes, each in both directions (old -> new and back)."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from contracts.compat import (
    RULES,
    Bump,
    Change,
    CompatError,
    ContractDiff,
    Snapshot,
    bump_between,
    covers,
    diff,
    snapshot,
)
from contracts.loader import load_contracts

pytestmark = pytest.mark.unit

Edit = Callable[[dict[str, Any]], None]
MAJOR, MINOR, PATCH = Bump.MAJOR, Bump.MINOR, Bump.PATCH

LAMBDA_CONTRACT: dict[str, Any] = {
    "name": "checker",
    "version": "1.2.3",
    "description": "Checks things.",
    "capabilities": ["fact-check", "scoring"],
    "io": {"input": "ClaimCheck", "output": "Verdict"},
    "runtime": {
        "kind": "lambda",
        "handler": "functions.checker.handler.lambda_handler",
        "memory_mb": 512,
        "timeout_s": 10,
        "reserved_concurrency": 20,
        "provisioned_concurrency": None,
        "bursty": False,
    },
    "permissions": ["read:kb"],
    "side_effects": "idempotent-write",
    "slo": {"p95_ms": 1500, "availability": 99.9, "error_budget_pct": 0.1},
    "batching": None,
    "fallback": [{"capability": "fact-check", "max_version": "1.x"}, "human"],
    "telemetry": {"metrics": ["latency_ms", "hits"], "errors": ["BadInput"]},
}
SAGEMAKER_CONTRACT: dict[str, Any] = {
    **LAMBDA_CONTRACT,
    "runtime": {
        "kind": "sagemaker",
        "instance_type": "ml.g5.xlarge",
        "min_instances": 1,
        "max_instances": 4,
        "container": "summarizer",
        "stateful": False,
    },
    "batching": {"max_batch": 16, "max_wait_ms": 10},
}
# The same small schema serves as input and as output: whether a change breaks depends on the direction.
SCHEMA: dict[str, Any] = {
    "title": "Payload",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": 100, "description": "The text."},
        "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
        "count": {"type": "integer", "minimum": 0, "maximum": 10},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        "tags": {"type": "array", "items": {"type": "string"}},
        "meta": {"type": "object", "additionalProperties": {"type": "string"}},
        "ref": {"$ref": "#/$defs/Ref"},
    },
    "required": ["text", "count", "ref"],
    "$defs": {
        "Ref": {"type": "object", "properties": {"key": {"type": "string", "pattern": "^k"}}, "required": ["key"]}
    },
}


def snapshot_of(contract: dict[str, Any], schema: dict[str, Any] = SCHEMA) -> Snapshot:
    return Snapshot(contract=contract, schemas={"input": schema, "output": schema})


def edited(document: dict[str, Any], edit: Edit) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    edit(changed)
    return changed


def only_change(found: ContractDiff) -> Change:
    assert len(found.changes) == 1, [c.to_json() for c in found.changes]
    return found.changes[0]


# --- contract fields --------------------------------------------------------------------------------

# (id, base, edit, path, (kind, bump) old -> edited, (kind, bump) edited -> old)
CONTRACT_CASES: list[tuple[str, dict[str, Any], Edit, str, tuple[str, Bump], tuple[str, Bump]]] = [
    (
        "capability",
        LAMBDA_CONTRACT,
        lambda c: c["capabilities"].append("ranking"),
        "capabilities",
        ("capability-added", MINOR),
        ("capability-removed", MAJOR),
    ),
    (
        "permission",
        LAMBDA_CONTRACT,
        lambda c: c["permissions"].append("write:documents"),
        "permissions",
        ("permission-widened", MAJOR),
        ("permission-narrowed", MINOR),
    ),
    (
        "side effects",
        LAMBDA_CONTRACT,
        lambda c: c.update(side_effects="external-action"),
        "side_effects",
        ("side-effects-widened", MAJOR),
        ("side-effects-narrowed", MINOR),
    ),
    (
        "p95",
        LAMBDA_CONTRACT,
        lambda c: c["slo"].update(p95_ms=900),
        "slo.p95_ms",
        ("slo-tightened", MAJOR),
        ("slo-loosened", MINOR),
    ),
    (
        "availability",
        LAMBDA_CONTRACT,
        lambda c: c["slo"].update(availability=99.99),
        "slo.availability",
        ("slo-tightened", MAJOR),
        ("slo-loosened", MINOR),
    ),
    (
        "error budget",
        LAMBDA_CONTRACT,
        lambda c: c["slo"].update(error_budget_pct=0.01),
        "slo.error_budget_pct",
        ("slo-tightened", MAJOR),
        ("slo-loosened", MINOR),
    ),
    (
        "timeout",
        LAMBDA_CONTRACT,
        lambda c: c["runtime"].update(timeout_s=5),
        "runtime.timeout_s",
        ("timeout-shortened", MAJOR),
        ("timeout-lengthened", PATCH),
    ),
    (
        "timeout derived from the SLO",  # unset: 3 x p95 = 5 s, shorter than the 10 s it had
        LAMBDA_CONTRACT,
        lambda c: c["runtime"].update(timeout_s=None),
        "runtime.timeout_s",
        ("timeout-shortened", MAJOR),
        ("timeout-lengthened", PATCH),
    ),
    (
        "reserved concurrency",
        LAMBDA_CONTRACT,
        lambda c: c["runtime"].update(reserved_concurrency=5),
        "runtime.reserved_concurrency",
        ("concurrency-capped", MAJOR),
        ("concurrency-raised", PATCH),
    ),
    (
        "reserved concurrency unset",
        LAMBDA_CONTRACT,
        lambda c: c["runtime"].update(reserved_concurrency=None),
        "runtime.reserved_concurrency",
        ("concurrency-raised", PATCH),
        ("concurrency-capped", MAJOR),
    ),
    (
        "memory",
        LAMBDA_CONTRACT,
        lambda c: c["runtime"].update(memory_mb=1024),
        "runtime.memory_mb",
        ("internal", PATCH),
        ("internal", PATCH),
    ),
    (
        "handler",
        LAMBDA_CONTRACT,
        lambda c: c["runtime"].update(handler="functions.checker2.handler.lambda_handler"),
        "runtime.handler",
        ("internal", PATCH),
        ("internal", PATCH),
    ),
    (
        "runtime kind",
        LAMBDA_CONTRACT,
        lambda c: c.update(runtime={"kind": "bedrock", "model_id": "anthropic.claude"}),
        "runtime.kind",
        ("runtime-kind-changed", MAJOR),
        ("runtime-kind-changed", MAJOR),
    ),
    (
        "max instances",
        SAGEMAKER_CONTRACT,
        lambda c: c["runtime"].update(max_instances=2),
        "runtime.max_instances",
        ("capacity-capped", MAJOR),
        ("capacity-raised", PATCH),
    ),
    (
        "sticky sessions",
        SAGEMAKER_CONTRACT,
        lambda c: c["runtime"].update(stateful=True),
        "runtime.stateful",
        ("sessions-added", MINOR),
        ("sessions-dropped", MAJOR),
    ),
    (
        "batching",
        SAGEMAKER_CONTRACT,
        lambda c: c["batching"].update(max_wait_ms=50),
        "batching",
        ("batching", PATCH),
        ("batching", PATCH),
    ),
    (
        "fallback entry",
        LAMBDA_CONTRACT,
        lambda c: c["fallback"].remove("human"),
        "fallback",
        ("fallback-removed", MAJOR),
        ("fallback-added", MINOR),
    ),
    (
        "approximate fallback",
        LAMBDA_CONTRACT,
        lambda c: c["fallback"].insert(1, "approximate"),
        "fallback",
        ("fallback-approximate-added", MAJOR),
        ("fallback-removed", MAJOR),
    ),
    (
        "fallback range",
        LAMBDA_CONTRACT,
        lambda c: c["fallback"][0].update(max_version="1.2.x"),
        "fallback",
        ("fallback-range-narrowed", MAJOR),
        ("fallback-range-widened", MINOR),
    ),
    (
        "fallback order",
        LAMBDA_CONTRACT,
        lambda c: c["fallback"].reverse(),
        "fallback",
        ("fallback-reordered", MINOR),
        ("fallback-reordered", MINOR),
    ),
    (
        "metric",
        LAMBDA_CONTRACT,
        lambda c: c["telemetry"]["metrics"].remove("hits"),
        "telemetry.metrics",
        ("metric-removed", MAJOR),
        ("metric-added", MINOR),
    ),
    (
        "error",
        LAMBDA_CONTRACT,
        lambda c: c["telemetry"]["errors"].append("Timeout"),
        "telemetry.errors",
        ("error-added", MAJOR),
        ("error-removed", MINOR),
    ),
    (
        "rollout policy set",  # unset means the plane's default canary
        LAMBDA_CONTRACT,
        lambda c: c.update(rollout={"strategy": "linear", "percent": 20, "interval_minutes": 2}),
        "rollout",
        ("rollout", PATCH),
        ("rollout", PATCH),
    ),
    (
        "rollout policy changed",
        {**LAMBDA_CONTRACT, "rollout": {"strategy": "canary", "percent": 10, "interval_minutes": 5}},
        lambda c: c.update(rollout={"strategy": "all-at-once", "percent": None, "interval_minutes": None}),
        "rollout",
        ("rollout", PATCH),
        ("rollout", PATCH),
    ),
    (
        "description",
        LAMBDA_CONTRACT,
        lambda c: c.update(description="Checks claims."),
        "description",
        ("description", PATCH),
        ("description", PATCH),
    ),
    (
        "name",
        LAMBDA_CONTRACT,
        lambda c: c.update(name="checker-two"),
        "name",
        ("renamed", MAJOR),
        ("renamed", MAJOR),
    ),
]


@pytest.mark.parametrize(
    ("base", "edit", "path", "forward", "backward"),
    [case[1:] for case in CONTRACT_CASES],
    ids=[case[0] for case in CONTRACT_CASES],
)
def test_contract_field_changes_are_classified_both_ways(
    base: dict[str, Any], edit: Edit, path: str, forward: tuple[str, Bump], backward: tuple[str, Bump]
) -> None:
    # GIVEN a contract and the same contract with one field changed
    old, new = snapshot_of(base), snapshot_of(edited(base, edit))
    # WHEN each is compared with the other
    there, back = only_change(diff(old, new)), only_change(diff(new, old))
    # THEN each direction gets its own, single classification
    assert (there.path, there.kind, there.bump) == (path, *forward)
    assert (back.path, back.kind, back.bump) == (path, *backward)
    assert there.detail
    assert there.to_json()["compatibility"] == ("breaking" if forward[1] is MAJOR else "compatible")


def test_every_contract_field_has_a_rule() -> None:
    # A field without one is reported as breaking on every change: fine as a default, not as a state to stay in.
    from contracts.capability import CapabilityContract

    for name in sorted(set(CapabilityContract.model_fields) - {"version"}):
        assert any(path == name or path.startswith(f"{name}.") for path in RULES), (
            f"contract field {name!r} has no compatibility rule: add one to RULES in contracts/compat.py "
            "(and a row to docs/contract-compatibility.md)"
        )


def test_a_field_no_rule_knows_is_breaking_by_default_and_says_so() -> None:
    # GIVEN a contract that grew a field this classifier has no rule for
    old = snapshot_of(LAMBDA_CONTRACT)
    new = snapshot_of(edited(LAMBDA_CONTRACT, lambda c: c.update(dispatch={"strategy": "healthiest"})))
    # WHEN compared
    change = only_change(diff(old, new))
    # THEN it is breaking, and the message says why and where to classify it
    assert (change.path, change.kind, change.bump) == ("dispatch", "unclassified", MAJOR)
    assert "no compatibility rule for 'dispatch'" in change.detail
    assert "contracts/compat.py" in change.detail


def test_an_unchanged_contract_has_no_changes() -> None:
    assert diff(snapshot_of(LAMBDA_CONTRACT), snapshot_of(copy.deepcopy(LAMBDA_CONTRACT))).changes == ()


def test_a_field_missing_from_an_older_lock_is_not_a_change_when_it_has_its_default() -> None:
    # An older release recorded before `batching` existed; today's default (None) says the same thing.
    old = snapshot_of({key: value for key, value in LAMBDA_CONTRACT.items() if key != "batching"})
    assert diff(old, snapshot_of(LAMBDA_CONTRACT)).changes == ()


# --- io schemas -------------------------------------------------------------------------------------


def add_required(schema: dict[str, Any]) -> None:
    schema["properties"]["lang"] = {"type": "string"}
    schema["required"].append("lang")


def add_optional(schema: dict[str, Any]) -> None:
    schema["properties"]["lang"] = {"type": "string", "default": "en"}


def make_optional(schema: dict[str, Any]) -> None:
    schema["required"].remove("count")


def retype(schema: dict[str, Any]) -> None:
    schema["properties"]["text"]["type"] = "integer"


def integer_to_number(schema: dict[str, Any]) -> None:
    schema["properties"]["count"]["type"] = "number"


def add_enum_value(schema: dict[str, Any]) -> None:
    schema["properties"]["mode"]["enum"].append("thorough")


def longer_text(schema: dict[str, Any]) -> None:
    schema["properties"]["text"]["maxLength"] = 200


def higher_minimum(schema: dict[str, Any]) -> None:
    schema["properties"]["count"]["minimum"] = 1


def drop_null(schema: dict[str, Any]) -> None:
    schema["properties"]["note"] = {"type": "string", "default": None}


def drop_pattern(schema: dict[str, Any]) -> None:
    del schema["$defs"]["Ref"]["properties"]["key"]["pattern"]


def other_pattern(schema: dict[str, Any]) -> None:
    schema["$defs"]["Ref"]["properties"]["key"]["pattern"] = "^[a-z]"


def retype_items(schema: dict[str, Any]) -> None:
    schema["properties"]["tags"]["items"] = {"type": "integer"}


def open_extra_fields(schema: dict[str, Any]) -> None:
    schema["additionalProperties"] = True


def new_default(schema: dict[str, Any]) -> None:
    schema["properties"]["mode"]["default"] = "slow"


def new_description(schema: dict[str, Any]) -> None:
    schema["properties"]["text"]["description"] = "The claim's text."


def map_values_retyped(schema: dict[str, Any]) -> None:
    schema["properties"]["meta"]["additionalProperties"] = {"type": "integer"}


Expect = tuple[str, Bump]
# (id, edit, path, input old->new, input new->old, output old->new, output new->old)
SCHEMA_CASES: list[tuple[str, Edit, str, Expect, Expect, Expect, Expect]] = [
    (
        "required field",
        add_required,
        "lang",
        ("input-field-required", MAJOR),
        ("input-field-removed", MAJOR),
        ("output-field-added", MINOR),
        ("output-field-removed", MAJOR),
    ),
    (
        "optional field",
        add_optional,
        "lang",
        ("input-field-added", MINOR),
        ("input-field-removed", MAJOR),
        ("output-field-added", MINOR),
        ("output-field-removed", MAJOR),
    ),
    (
        "required to optional",
        make_optional,
        "count",
        ("input-field-optional", MINOR),
        ("input-field-required", MAJOR),
        ("output-field-optional", MAJOR),
        ("output-field-required", MINOR),
    ),
    (
        "retyped",
        retype,
        "text",
        ("retyped", MAJOR),
        ("retyped", MAJOR),
        ("retyped", MAJOR),
        ("retyped", MAJOR),
    ),
    (
        "integer to number",
        integer_to_number,
        "count",
        ("type-widened", MINOR),
        ("type-narrowed", MAJOR),
        ("type-widened", MAJOR),
        ("type-narrowed", MINOR),
    ),
    (
        "enum",
        add_enum_value,
        "mode",
        ("enum-widened", MINOR),
        ("enum-narrowed", MAJOR),
        ("enum-widened", MAJOR),
        ("enum-narrowed", MINOR),
    ),
    (
        "upper bound",
        longer_text,
        "text",
        ("bound-loosened", MINOR),
        ("bound-tightened", MAJOR),
        ("bound-loosened", MAJOR),
        ("bound-tightened", MINOR),
    ),
    (
        "lower bound",
        higher_minimum,
        "count",
        ("bound-tightened", MAJOR),
        ("bound-loosened", MINOR),
        ("bound-tightened", MINOR),
        ("bound-loosened", MAJOR),
    ),
    (
        "nullable",
        drop_null,
        "note",
        ("type-removed", MAJOR),
        ("type-added", MINOR),
        ("type-removed", MINOR),
        ("type-added", MAJOR),
    ),
    (
        "pattern dropped, in a referenced model",
        drop_pattern,
        "ref.key",
        ("pattern-removed", MINOR),
        ("pattern-added", MAJOR),
        ("pattern-removed", MAJOR),
        ("pattern-added", MINOR),
    ),
    (
        "pattern changed",
        other_pattern,
        "ref.key",
        ("pattern-changed", MAJOR),
        ("pattern-changed", MAJOR),
        ("pattern-changed", MAJOR),
        ("pattern-changed", MAJOR),
    ),
    (
        "array items",
        retype_items,
        "tags[]",
        ("retyped", MAJOR),
        ("retyped", MAJOR),
        ("retyped", MAJOR),
        ("retyped", MAJOR),
    ),
    (
        "extra fields",
        open_extra_fields,
        "",
        ("extra-fields-widens", MINOR),
        ("extra-fields-narrows", MAJOR),
        ("extra-fields-widens", MAJOR),
        ("extra-fields-narrows", MINOR),
    ),
    (
        "mapping values",
        map_values_retyped,
        "meta.*",
        ("retyped", MAJOR),
        ("retyped", MAJOR),
        ("retyped", MAJOR),
        ("retyped", MAJOR),
    ),
    (
        "default",
        new_default,
        "mode",
        ("input-default-changed", MAJOR),
        ("input-default-changed", MAJOR),
        ("default", PATCH),
        ("default", PATCH),
    ),
    (
        "description",
        new_description,
        "text",
        ("documentation", PATCH),
        ("documentation", PATCH),
        ("documentation", PATCH),
        ("documentation", PATCH),
    ),
]


def schema_diff(direction: str, old: dict[str, Any], new: dict[str, Any]) -> Change:
    other = "output" if direction == "input" else "input"
    before = Snapshot(LAMBDA_CONTRACT, {direction: old, other: SCHEMA})
    after = Snapshot(LAMBDA_CONTRACT, {direction: new, other: SCHEMA})
    return only_change(diff(before, after))


@pytest.mark.parametrize(
    ("edit", "field", "input_there", "input_back", "output_there", "output_back"),
    [case[1:] for case in SCHEMA_CASES],
    ids=[case[0] for case in SCHEMA_CASES],
)
def test_io_schema_changes_are_classified_by_direction(
    edit: Edit, field: str, input_there: Expect, input_back: Expect, output_there: Expect, output_back: Expect
) -> None:
    # GIVEN the schema and the schema with one change, used as an input and as an output, in both directions
    changed = edited(SCHEMA, edit)
    for direction, old, new, expected in (
        ("input", SCHEMA, changed, input_there),
        ("input", changed, SCHEMA, input_back),
        ("output", SCHEMA, changed, output_there),
        ("output", changed, SCHEMA, output_back),
    ):
        # WHEN compared THEN callers' side decides: narrowing breaks senders, widening breaks receivers
        change = schema_diff(direction, old, new)
        path = f"io.{direction}" + (f".{field}" if field and not field.startswith("[") else field)
        assert (change.path, change.kind, change.bump) == (path, *expected), (direction, change.detail)


def test_an_unknown_schema_keyword_is_breaking_by_default() -> None:
    changed = edited(SCHEMA, lambda s: s["properties"]["text"].update(contentEncoding="base64"))
    change = schema_diff("input", SCHEMA, changed)
    assert (change.kind, change.bump) == ("unclassified", MAJOR)
    assert "contentEncoding" in change.detail


class Node(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str
    children: list[Node] = Field(default_factory=list)


class NodeV2(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Node")

    label: str = Field(max_length=10)
    children: list[NodeV2] = Field(default_factory=list)


def test_recursive_models_are_compared_without_looping() -> None:
    old = Snapshot(LAMBDA_CONTRACT, {"input": Node.model_json_schema(), "output": SCHEMA})
    new = Snapshot(LAMBDA_CONTRACT, {"input": NodeV2.model_json_schema(), "output": SCHEMA})
    changes = diff(old, new).changes
    assert [(c.path, c.kind, c.bump) for c in changes] == [("io.input.label", "bound-tightened", MAJOR)]


class Inner(BaseModel):
    value: str


class InnerV2(BaseModel):
    model_config = ConfigDict(title="Inner")

    value: str
    unit: str


class Outer(BaseModel):
    items: list[Inner]


class OuterV2(BaseModel):
    model_config = ConfigDict(title="Outer")

    items: list[InnerV2]


def test_a_change_in_a_shared_nested_model_is_found_through_its_references() -> None:
    # The outer schemas are equal text ({"$ref": "#/$defs/Inner"}); only the referenced model moved.
    old = Snapshot(LAMBDA_CONTRACT, {"input": Outer.model_json_schema(), "output": SCHEMA})
    new = Snapshot(LAMBDA_CONTRACT, {"input": OuterV2.model_json_schema(), "output": SCHEMA})
    change = only_change(diff(old, new))
    assert (change.path, change.kind, change.bump) == ("io.input.items[].unit", "input-field-required", MAJOR)


def test_renaming_an_io_model_with_the_same_shape_is_a_patch() -> None:
    renamed = edited(LAMBDA_CONTRACT, lambda c: c["io"].update(input="ClaimCheckV2"))
    renamed_schema = edited(SCHEMA, lambda s: s.update(title="ClaimCheckV2"))
    old, new = snapshot_of(LAMBDA_CONTRACT), Snapshot(renamed, {"input": renamed_schema, "output": SCHEMA})
    change = only_change(diff(old, new))
    assert (change.path, change.kind, change.bump) == ("io.input", "io-model-renamed", PATCH)


@pytest.mark.parametrize("name", sorted(load_contracts()))
def test_every_real_contract_is_compatible_with_itself(name: str) -> None:
    contract = load_contracts()[name]
    assert diff(snapshot(contract), snapshot(contract)).changes == ()


# --- versions ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "bump"),
    [
        ("1.2.3", "1.2.3", Bump.NONE),
        ("1.2.3", "1.2.4", Bump.PATCH),
        ("1.2.3", "1.3.0", Bump.MINOR),
        ("1.2.3", "2.0.0", Bump.MAJOR),
        ("1.2.3", "1.2.2", None),
        ("1.2.3", "0.9.9", None),
    ],
)
def test_version_bumps(old: str, new: str, bump: Bump | None) -> None:
    assert bump_between(old, new) == bump


def breaking_diff(old_version: str, new_version: str) -> ContractDiff:
    old = snapshot_of(edited(LAMBDA_CONTRACT, lambda c: c.update(version=old_version)))
    new = snapshot_of(
        edited(LAMBDA_CONTRACT, lambda c: (c.update(version=new_version), c["permissions"].append("write:documents")))
    )
    return diff(old, new)


def test_a_breaking_change_without_a_major_bump_is_a_problem_naming_the_change() -> None:
    found = breaking_diff("1.2.3", "1.3.0")
    assert found.breaking
    assert found.problem is not None
    assert found.problem.startswith("checker 1.2.3 -> 1.3.0: breaking change without a major version bump (to 2.0.0")
    assert "permissions: now holds 'write:documents'" in found.problem


def test_a_breaking_change_with_a_major_bump_is_no_problem() -> None:
    found = breaking_diff("1.2.3", "2.0.0")
    assert found.breaking
    assert found.problem is None


def test_below_one_a_minor_bump_may_break() -> None:
    assert breaking_diff("0.3.1", "0.4.0").problem is None
    assert "to 0.4.0" in (breaking_diff("0.3.1", "0.3.2").problem or "")


def test_a_compatible_change_without_a_bump_is_flagged() -> None:
    new = snapshot_of(edited(LAMBDA_CONTRACT, lambda c: c["capabilities"].append("ranking")))
    found = diff(snapshot_of(LAMBDA_CONTRACT), new)
    assert not found.breaking
    assert found.problem is not None
    assert "minor-level change without a minor version bump (to 1.3.0; got no bump)" in found.problem


def test_a_patch_bump_does_not_cover_a_minor_change_but_covers_a_patch_one() -> None:
    minor = edited(LAMBDA_CONTRACT, lambda c: (c.update(version="1.2.4"), c["capabilities"].append("ranking")))
    patch = edited(LAMBDA_CONTRACT, lambda c: (c.update(version="1.2.4"), c.update(description="New words.")))
    assert "got a patch bump" in (diff(snapshot_of(LAMBDA_CONTRACT), snapshot_of(minor)).problem or "")
    assert diff(snapshot_of(LAMBDA_CONTRACT), snapshot_of(patch)).problem is None


def test_a_version_that_goes_backwards_is_flagged() -> None:
    older = edited(LAMBDA_CONTRACT, lambda c: c.update(version="1.2.0"))
    assert diff(snapshot_of(LAMBDA_CONTRACT), snapshot_of(older)).problem == (
        "checker 1.2.3 -> 1.2.0: the version went backwards"
    )


def test_human_lines_name_each_change_and_the_version_verdict() -> None:
    lines = breaking_diff("1.2.3", "1.2.3").lines()
    assert lines[0] == "checker 1.2.3 -> 1.2.3: 1 change (1 breaking)"
    assert lines[1].split()[:2] == ["BREAKING", "permissions"]
    assert lines[-1].startswith("  version: breaking change without a major version bump")


@pytest.mark.parametrize(
    ("wide", "narrow", "expected"),
    [
        ("1.x", "1.2.x", True),
        ("1.x", "1.2.3", True),
        ("1.2.x", "1.x", False),
        ("1.x", "2.x", False),
        ("1.2.3", "1.2.3", True),
    ],
)
def test_fallback_version_ranges(wide: str, narrow: str, expected: bool) -> None:
    assert covers(wide, narrow) is expected


def test_a_released_document_today_s_model_cannot_read_is_compared_as_written() -> None:
    # GIVEN a release that named a model since deleted, written before `fallback` had a default
    old_document = {k: v for k, v in LAMBDA_CONTRACT.items() if k != "fallback"}
    old = snapshot_of(edited(old_document, lambda c: c["io"].update(input="RetiredModel")))
    new = snapshot_of(edited(LAMBDA_CONTRACT, lambda c: c.update(fallback=[])))
    # WHEN compared THEN a missing list and an empty one say the same; only the model's name moved
    change = only_change(diff(old, new))
    assert (change.path, change.kind, change.bump) == ("io.input", "io-model-renamed", PATCH)


@pytest.mark.parametrize(
    ("old", "says"),
    [
        (Snapshot({**LAMBDA_CONTRACT, "version": "one"}, {"input": SCHEMA, "output": SCHEMA}), "not a MAJOR.MINOR"),
        (Snapshot(LAMBDA_CONTRACT, {"input": {"$ref": "#/$defs/Gone"}, "output": SCHEMA}), "cannot resolve $ref"),
    ],
)
def test_what_cannot_be_compared_is_a_compat_error(old: Snapshot, says: str) -> None:
    with pytest.raises(CompatError, match=re.escape(says)):
        diff(old, snapshot_of(LAMBDA_CONTRACT)).problem  # noqa: B018
