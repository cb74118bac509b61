"""The workflow compiler: specs to Step Functions states, every kind of step, and the failure catches it adds."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk.assertions import Template

from contracts.capability import CapabilityContract
from contracts.loader import load_contracts
from contracts.workflow import WorkflowSpec
from infra.components.coordinator_workflow import TRANSIENT_ERRORS, UNCAUGHT_BY_ALL
from infra.workflows.compiler import PlaneTargets, compile_workflow
from tests.infra.assembly import Synthesized

pytestmark = pytest.mark.infra

CONTRACTS = load_contracts()
FAILURE_CATCH = {"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "HasCause"}
DATA_LIMIT_CATCH = {"ErrorEquals": ["States.DataLimitExceeded"], "ResultPath": "$.failure", "Next": "HasCause"}


@dataclass(frozen=True)
class StandIn:
    """What the compiler reads of an agent pool: its contract and the function a step invokes."""

    contract: CapabilityContract
    target: lambda_.IFunction


def compiled(spec: dict[str, Any]) -> dict[str, Any]:
    """The ASL of ``spec`` compiled in a bare stack against stand-ins for the shipped contracts' pools."""
    stack = Stack(App(), "Bare")
    arn = "arn:aws:lambda:us-east-1:123456789012:function:"
    pools = {
        name: StandIn(contract, lambda_.Function.from_function_arn(stack, f"F{i}", f"{arn}{name}:live"))
        for i, (name, contract) in enumerate(CONTRACTS.items())
    }
    targets = PlaneTargets(
        pools=pools,  # type: ignore[arg-type]
        gate=lambda_.Function.from_function_arn(stack, "Gate", f"{arn}gate"),
        dispatcher=lambda_.Function.from_function_arn(stack, "Dispatcher", f"{arn}dispatcher"),
        bus=events.EventBus.from_event_bus_name(stack, "Bus", "bus"),
    )
    workflow = compile_workflow(stack, WorkflowSpec.model_validate(spec), targets)
    sfn.StateMachine(stack, "Machine", definition_body=sfn.DefinitionBody.from_chainable(workflow.definition))
    (machine,) = Template.from_stack(stack).find_resources("AWS::StepFunctions::StateMachine").values()
    definition = machine["Properties"]["DefinitionString"]
    parts = definition["Fn::Join"][1] if isinstance(definition, dict) else [definition]
    text = "".join(p if isinstance(p, str) else "aws" if p == {"Ref": "AWS::Partition"} else "TOKEN" for p in parts)
    asl: dict[str, Any] = json.loads(text)
    return asl


SPEC: dict[str, Any] = {
    "name": "every-kind",
    "description": "Each kind of step once.",
    "input": "QuickCheckRequest",
    "deadline": {"work_s": 60},
    "failure": {"capability": "record-failure"},
    "steps": [
        {
            "task": "Check",
            "capability": "fact-check",
            "input": {"claim": {"claim_id": "c-001", "text": "$.request.claim", "sentence_index": 0}},
            "result": "$.verdict",
            "retry": [{"errors": ["KnowledgeBaseUnavailable"], "max_attempts": 2}],
            "catch": [
                {
                    "errors": ["BadInput"],
                    "result": "$.bad",
                    "steps": [{"fail": "Refused", "error": "BadInput", "cause": "no"}],
                }
            ],
        },
        {
            "parallel": "Both",
            "result": "$.both",
            "branches": [
                [{"set": "Left", "value": {"side": "left"}}],
                [
                    {
                        "emit": "Announce",
                        "detail_type": "claim.checked",
                        "detail": {"verdict": "$.verdict", "kind": "quick"},
                    }
                ],
            ],
        },
        {
            "choice": "ByLabel",
            "field": "$.verdict.label",
            "cases": [
                {"equals": "supported", "steps": [{"set": "Fine", "value": {"ok": True}, "result": "$.ok"}]},
                {
                    "matches": "not-*",
                    "steps": [
                        {
                            "approval": "AskSomeone",
                            "window_s": 600,
                            "subject": {"verdict": "$.verdict"},
                            "policy_version": "quick-1",
                            "escalation": {"id": "NobodyAnswered", "action": "fail"},
                        }
                    ],
                },
            ],
        },
        {"succeed": "Done"},
    ],
}


@pytest.fixture(scope="module")
def every_kind() -> dict[str, Any]:
    return compiled(SPEC)["States"]


def test_a_task_retries_transient_errors_then_its_own_and_catches_before_the_failure_path(
    every_kind: dict[str, Any],
) -> None:
    check = every_kind["Check"]

    assert check["Resource"] == "arn:aws:lambda:us-east-1:123456789012:function:evidence-verifier:live"
    assert check["Parameters"]["capability"] == "fact-check"
    assert check["Parameters"]["payload"]["claim"]["text.$"] == "$.request.claim"
    assert [r["ErrorEquals"] for r in check["Retry"]] == [TRANSIENT_ERRORS, ["KnowledgeBaseUnavailable"]]
    assert check["Catch"] == [
        {"ErrorEquals": ["BadInput"], "ResultPath": "$.bad", "Next": "Refused"},
        DATA_LIMIT_CATCH,
        FAILURE_CATCH,
    ]
    assert every_kind["Refused"] == {"Type": "Fail", "Error": "BadInput", "Cause": "no"}
    assert check["Next"] == "Both"


def test_parallel_branches_and_an_event_on_the_bus(every_kind: dict[str, Any]) -> None:
    both = every_kind["Both"]
    left, right = (branch["States"] for branch in both["Branches"])

    assert left["Left"] == {"Type": "Pass", "Result": {"side": "left"}, "End": True}
    announce = right["Announce"]
    assert announce["Resource"] == "arn:aws:states:::events:putEvents"
    (entry,) = announce["Parameters"]["Entries"]
    assert (entry["Source"], entry["DetailType"]) == ("agentplane", "claim.checked")
    assert entry["Detail"] == {"verdict.$": "$.verdict", "kind": "quick"}
    assert announce["ResultPath"] is None
    assert "Catch" not in announce  # inside a branch: the Parallel catches, not its states
    assert both["Catch"] == [DATA_LIMIT_CATCH, FAILURE_CATCH]
    assert both["ResultPath"] == "$.both"
    assert both["Next"] == "ByLabel"


def test_a_choice_on_a_field_and_an_approval_whose_window_fails_the_run(every_kind: dict[str, Any]) -> None:
    choice = every_kind["ByLabel"]

    assert choice["Choices"] == [
        {"Variable": "$.verdict.label", "StringEquals": "supported", "Next": "Fine"},
        {"Variable": "$.verdict.label", "StringMatches": "not-*", "Next": "AskSomeone"},
    ]
    assert choice["Default"] == "Done"  # no default steps: the sequence goes on
    ask = every_kind["AskSomeone"]
    assert ask["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert ask["TimeoutSeconds"] == 600
    assert ask["Parameters"]["Payload"]["policy_version"] == "quick-1"
    assert ask["Parameters"]["Payload"]["workflow"] == "every-kind"
    assert ask["Catch"][0] == {
        "ErrorEquals": ["States.Timeout"],
        "ResultPath": "$.approval_error",
        "Next": "NobodyAnswered",
    }
    # a window nobody decided in is a failure, recorded like any other
    assert every_kind["NobodyAnswered"]["Result"]["Error"] == "ApprovalTimedOut"
    assert every_kind["NobodyAnswered"]["ResultPath"] == "$.failure"
    assert every_kind["NobodyAnswered"]["Next"] == "HasCause"
    assert every_kind["Fine"]["Next"] == every_kind["AskSomeone"]["Next"] == "Done"


def test_a_workflow_without_a_failure_path_catches_nothing() -> None:
    spec = {**SPEC, "failure": None, "steps": SPEC["steps"][:1]}

    states = compiled(spec)["States"]

    assert states["Check"]["Catch"] == [{"ErrorEquals": ["BadInput"], "ResultPath": "$.bad", "Next": "Refused"}]
    assert "HasCause" not in states


# --- the shipped workflows ------------------------------------------------------------------------------------


def catching_states(scope: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for name, state in scope["States"].items():
        if state.get("Catch"):
            found[name] = state
        if state["Type"] == "Map":
            found |= catching_states(state["ItemProcessor"])
    return found


def test_every_catch_of_a_failure_also_names_the_size_limit_which_states_all_does_not_match(
    synthesized: Synthesized,
) -> None:
    # GIVEN doc-review as deployed
    (lid,) = [lid for lid in synthesized.of_type("AWS::StepFunctions::StateMachine") if lid.startswith("DocReview")]
    asl = synthesized.state_machine_definition(lid)
    states = asl["States"]

    # THEN every state whose failures go to the failure path sends an oversized state there too, by name, with
    # the original error name and cause at $.failure, before the catch-all
    failing = {n: s for n, s in catching_states(asl).items() if FAILURE_CATCH in s["Catch"]}
    assert set(failing) == {
        "Intake",
        "SummarizeDocument",
        "SummarizeOnCpu",
        "VerifyClaims",
        "ScoreRisk",
        "RequestApproval",
        "RecordDecision",
    }
    for name, state in failing.items():
        catches = state["Catch"]
        assert catches.index(DATA_LIMIT_CATCH) == catches.index(FAILURE_CATCH) - 1, name
        assert UNCAUGHT_BY_ALL == ["States.DataLimitExceeded"]
    # AND the recorder cannot push the state past the limit itself: its result is discarded
    assert states["RecordFailure"]["ResultPath"] is None
