"""The approval gate in the template: a callback task, an encrypted approvals table, who may resume runs."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from contracts.workflow import WORKFLOWS_DIR, load_workflow
from tests.infra.assembly import Synthesized

pytestmark = pytest.mark.infra


def doc_review(synthesized: Synthesized) -> str:
    (lid,) = [lid for lid in synthesized.of_type("AWS::StepFunctions::StateMachine") if lid.startswith("DocReview")]
    return lid


def test_high_risk_waits_on_a_task_token_with_a_window_that_escalates(synthesized: Synthesized) -> None:
    states = synthesized.state_machine_definition(doc_review(synthesized))["States"]

    choice = states["NeedsApproval"]
    assert choice["Choices"][0] == {"Variable": "$.risk.level", "StringEquals": "high", "Next": "RequestApproval"}
    request = states["RequestApproval"]
    assert request["Resource"].endswith(":states:::lambda:invoke.waitForTaskToken")
    assert request["Parameters"]["Payload"]["task_token.$"] == "$$.Task.Token"
    assert request["TimeoutSeconds"] > 0
    catches = {tuple(c["ErrorEquals"]): c["Next"] for c in request["Catch"]}
    assert catches[("States.Timeout",)] == "ApprovalTimedOut"
    assert catches[("States.ALL",)] == "HasCause"  # the failure path, which records it
    assert states["ApprovalTimedOut"]["Next"] == states["NoApprovalNeeded"]["Next"] == "RecordDecision"


def test_the_approvals_table_is_encrypted_and_recoverable(synthesized: Synthesized) -> None:
    table = synthesized.resources["ApprovalsA0F5E432"]["Properties"]

    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_only_the_api_resumes_runs_and_only_doc_review(synthesized: Synthesized) -> None:
    resumers: list[tuple[str, Any]] = []
    for lid, policy in synthesized.of_type("AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            acts = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
            if "states:SendTaskSuccess" in acts:
                resumers.append((lid, statement["Resource"]))

    [(lid, resource)] = resumers
    assert lid.startswith("ApiFunctionRole")
    assert json.dumps(resource).count(doc_review(synthesized)) == 1


def test_a_runs_deadline_and_timeout_cover_its_approval_window(synthesized: Synthesized) -> None:
    # GIVEN the deployed window, the state machine's timeout and the budget the API sets each run's deadline from
    machine = synthesized.resources[doc_review(synthesized)]["Properties"]
    states = synthesized.state_machine_definition(doc_review(synthesized))
    window_ms = states["States"]["RequestApproval"]["TimeoutSeconds"] * 1000
    (api,) = [
        r
        for r in synthesized.of_type("AWS::Lambda::Function").values()
        if "WORKFLOWS" in r["Properties"].get("Environment", {}).get("Variables", {})
    ]
    ttl = re.search(r'\\"doc-review\\".*?\\"ttl_ms\\": ?(\d+)', json.dumps(api["Properties"]["Environment"]))
    assert ttl is not None
    deadline_ms = int(ttl.group(1))

    # THEN an approval at the window's last moment still leaves the work budget for the steps after it
    spec = load_workflow(WORKFLOWS_DIR / "doc-review.yaml")
    assert deadline_ms >= spec.deadline.work_s * 1000 + window_ms
    assert window_ms == spec.approvals[0].window_s * 1000
    # AND the execution outlives the deadline: a late step fails, and is recorded, before the run could time out
    assert states.get("TimeoutSeconds", machine.get("TimeoutSeconds", 0)) * 1000 > deadline_ms
