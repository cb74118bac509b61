"""The workflow spec model and its loader: what a spec file may say, and the one-line errors when it may not."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from contracts.loader import ContractError
from contracts.workflow import (
    WORKFLOWS_DIR,
    ApprovalStep,
    MapStep,
    TaskStep,
    WorkflowSpec,
    is_reference,
    load_workflow,
    load_workflows,
)

pytestmark = pytest.mark.unit

DOC_REVIEW: dict[str, Any] = yaml.safe_load((WORKFLOWS_DIR / "doc-review.yaml").read_text())
QUICK_CHECK: dict[str, Any] = yaml.safe_load((WORKFLOWS_DIR / "quick-check.yaml").read_text())


def write(tmp_path: Path, document: dict[str, Any], name: str | None = None) -> Path:
    path = tmp_path / f"{name or document['name']}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_the_shipped_specs_load_with_their_steps_by_capability() -> None:
    specs = load_workflows()

    assert set(specs) == {"doc-review", "quick-check"}
    review = specs["doc-review"]
    intake = review.step("Intake")
    assert isinstance(intake, TaskStep)
    assert intake.capability == "document-intake"
    verify = review.step("VerifyClaims")
    assert isinstance(verify, MapStep)
    assert verify.concurrency == 10
    assert [a.approval for a in review.approvals] == ["RequestApproval"]
    assert specs["quick-check"].type == "express"


def test_the_deadline_covers_every_approval_window_and_the_machine_outlives_it_by_the_grace() -> None:
    review = load_workflow(WORKFLOWS_DIR / "doc-review.yaml")
    quick = load_workflow(WORKFLOWS_DIR / "quick-check.yaml")

    # 15 minutes of work and a 60-minute window; the machine 15 minutes past that deadline
    assert review.ttl_ms == (900 + 3600) * 1000
    assert review.timeout_s == 900 + 3600 + 900
    # the hot path: 10 s, and the machine ends with it
    assert quick.ttl_ms == 10_000
    assert quick.timeout_s == 10


def test_an_express_workflow_refuses_an_approval_at_validation_time() -> None:
    document = copy.deepcopy(DOC_REVIEW)
    document["type"] = "express"
    document["deadline"] = {"work_s": 60, "grace_s": 0}

    with pytest.raises(
        ValidationError, match="approval 'RequestApproval': an express workflow cannot wait for a person"
    ):
        WorkflowSpec.model_validate(document)


def test_an_express_run_must_fit_five_minutes_and_only_express_answers_in_the_request() -> None:
    longer = copy.deepcopy(QUICK_CHECK)
    longer["deadline"] = {"work_s": 301, "grace_s": 0}
    with pytest.raises(ValidationError, match="an express run ends within 300 s"):
        WorkflowSpec.model_validate(longer)

    standard = copy.deepcopy(QUICK_CHECK)
    standard["type"] = "standard"
    with pytest.raises(ValidationError, match="only an express workflow can"):
        WorkflowSpec.model_validate(standard)


@pytest.mark.parametrize("name", ["ScoreRisk", "HasCause", "RecordFailure", "ApprovalTimedOut"])
def test_a_step_id_is_used_once_and_never_one_the_failure_path_takes(name: str) -> None:
    document = copy.deepcopy(DOC_REVIEW)
    document["steps"].insert(0, {"set": name, "value": {"x": 1}, "result": "$.x"})

    with pytest.raises(ValidationError, match=f"step id '{name}' is used twice"):
        WorkflowSpec.model_validate(document)


def test_a_file_with_a_bad_step_names_the_field_in_one_line(tmp_path: Path) -> None:
    document = copy.deepcopy(DOC_REVIEW)
    document["steps"][2]["concurrency"] = -1
    path = write(tmp_path, document)

    with pytest.raises(ContractError) as caught:
        load_workflow(path)

    # the union's tag (map) is not in the path the author reads
    assert str(caught.value).startswith(f"{path}: steps[2].concurrency: Input should be greater than or equal to 0")
    assert "\n" not in str(caught.value)


def test_a_step_names_exactly_one_kind(tmp_path: Path) -> None:
    document = copy.deepcopy(QUICK_CHECK)
    document["steps"][1] = {"set": "Answer", "task": "Answer", "value": {}}

    with pytest.raises(ContractError, match=r"steps\[1\]: a step has exactly one kind key: one of task, agent, map"):
        load_workflow(write(tmp_path, document))


def test_the_file_name_is_the_workflow_name_and_models_are_known(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="'quick-check' must match the file name 'other'"):
        load_workflow(write(tmp_path, QUICK_CHECK, name="other"))

    document = copy.deepcopy(QUICK_CHECK)
    document["input"] = "NoSuchRequest"
    with pytest.raises(ContractError, match="input: unknown model 'NoSuchRequest'"):
        load_workflow(write(tmp_path, document))


def test_a_choice_case_tests_one_thing_and_a_parallel_has_real_branches() -> None:
    document = copy.deepcopy(QUICK_CHECK)
    document["steps"].append({"choice": "Pick", "field": "$.verdict.label", "cases": [{"equals": "x", "matches": "*"}]})
    with pytest.raises(ValidationError, match="give exactly one of equals and matches"):
        WorkflowSpec.model_validate(document)

    document = copy.deepcopy(QUICK_CHECK)
    document["steps"].append({"parallel": "Both", "branches": [[{"succeed": "A"}], []]})
    with pytest.raises(ValidationError, match="every branch needs at least one step"):
        WorkflowSpec.model_validate(document)


def test_approval_escalation_and_who_default() -> None:
    review = load_workflow(WORKFLOWS_DIR / "doc-review.yaml")
    (approval,) = review.approvals

    assert isinstance(approval, ApprovalStep)
    assert approval.who == "approver"
    assert approval.window_s == 3600
    assert (approval.escalation.id, approval.escalation.action) == ("ApprovalTimedOut", "continue")


@pytest.mark.parametrize(
    ("value", "reference"),
    [
        ("$", True),
        ("$.intake.claims", True),
        ("$$.Map.Item.Value", True),
        ("States.Format('{}', $.a)", True),
        ("high", False),
        ("$ 5", False),
        ("States of the art", False),
        (3, False),
    ],
)
def test_what_a_step_reads_from_the_run_and_what_is_literal(value: object, reference: bool) -> None:
    assert is_reference(value) is reference
