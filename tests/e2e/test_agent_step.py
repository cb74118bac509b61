"""An ``agent`` workflow step on the local plane: the llm loop pauses on an external-action tool call, a person
decides on exactly that call, and the loop resumes with the decision; every round and turn is on the ledger.

The project is the scaffold's plus an assistant whose one tool messages the customer (tests/e2e/agent_step_project);
the model is the local plane's deterministic stand-in, which calls each offered tool once, then answers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from functions.runtime.canonical import canonical_bytes, sha256_hex
from infra import cli
from infra.client import expect, finished, pending_approvals, request, served_endpoint, settle
from infra.local.plane import LocalPlane, PlaneOptions
from infra.synth import plane_assembly
from tests.e2e.agent_step_project import agent_step_project

pytestmark = pytest.mark.e2e

WORKFLOW = "tickets-assist"
TICKET = {"ticket_id": "T-007", "subject": "Checkout is down", "body": "Every checkout answers error 500."}


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlane]:
    project = agent_step_project(tmp_path_factory.mktemp("project") / "tickets")
    state = tmp_path_factory.mktemp("plane")
    assembly = plane_assembly(state, context={"agentplane:project": str(project)})
    with LocalPlane(PlaneOptions(assembly_dir=assembly, state_dir=state, schedule_scale=0)) as running:
        yield running


def start(plane: LocalPlane) -> str:
    answer = request(plane.url, "POST", f"/v1/workflows/{WORKFLOW}/executions", TICKET, {})
    assert answer.status == 202, answer.body
    return str(answer.body["execution_id"])


def waiting(plane: LocalPlane, execution_id: str, timeout: float = 120) -> dict[str, Any]:
    """The run's pending approval, once the loop paused on its tool call."""
    approver = served_endpoint(plane.url, "approver")
    assert approver is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = pending_approvals(approver, execution_id)
        if found:
            return found[0]
        run = expect(request(plane.url, "GET", f"/v1/executions/{execution_id}"), 200)
        assert run["status"] == "RUNNING", f"the run ended without asking for an approval: {run}"
        time.sleep(0.5)
    raise AssertionError(f"no approval for {execution_id} within {timeout} s")


def decide(plane: LocalPlane, approval: dict[str, Any], decision: str) -> dict[str, Any]:
    approver = served_endpoint(plane.url, "approver")
    assert approver is not None
    settle(approver, approval["approval_id"], decision, f"e2e: {decision}", approval["args_sha256"])
    return finished(plane.url, approval["execution_id"], timeout=120)


def steps(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["step"]: s for s in run["steps"]}


def test_an_external_action_waits_for_a_person_and_runs_once_approved(plane: LocalPlane) -> None:
    execution_id = start(plane)
    approval = waiting(plane, execution_id)

    # the person reviews exactly the call: the agent, the tool, its arguments and their digest
    subject = approval["subject"]
    assert (subject["agent"], subject["tool"]) == ("tickets-assistant", "tickets-notify")
    assert subject["arguments"]["ticket_id"] == "T-007"
    assert subject["arguments_sha256"] == sha256_hex(canonical_bytes(subject["arguments"]))
    assert approval["args_sha256"] == sha256_hex(canonical_bytes(subject))
    # nothing was sent yet: the tool's step is not on the ledger while the call waits; the round that asked is
    admin = served_endpoint(plane.url, "admin")
    assert admin is not None
    before = expect(request(plane.url, "GET", f"/v1/executions/{execution_id}"), 200)
    assert "Assist/tool/1.0" not in steps(before)
    assert [s["status"] for s in before["steps"] if s["step"] == "Assist"] == ["ESCALATED"]

    run = decide(plane, approval, "approve")

    assert run["status"] == "SUCCEEDED", run
    recorded = steps(run)
    tool = recorded["Assist/tool/1.0"]
    assert (tool["agent"], tool["capability"], tool["status"]) == ("tickets-notifier", "tickets-notify", "SUCCEEDED")
    # one step on the ledger however many rounds: turn 1 asked for the tool, turn 2 (after the pause) answered
    assert recorded["Assist"]["agent"] == "tickets-assistant"
    assert sorted(k for k in recorded if k.startswith("Assist/turn/")) == ["Assist/turn/1", "Assist/turn/2"]
    assert run["output"]["reply"]["ticket_id"] == "T-007"


def test_a_rejected_call_never_runs_and_the_model_answers_without_it(plane: LocalPlane) -> None:
    execution_id = start(plane)
    approval = waiting(plane, execution_id)

    run = decide(plane, approval, "reject")

    assert run["status"] == "SUCCEEDED", run
    recorded = steps(run)
    assert not [k for k in recorded if "/tool/" in k]  # the notifier never ran
    assert "Assist/turn/2" in recorded  # the model read the refusal and answered
    assert run["output"]["reply"]["ticket_id"] == "T-007"


def test_the_paused_conversation_is_stored_under_its_digest(plane: LocalPlane) -> None:
    execution_id = start(plane)
    approval = waiting(plane, execution_id)
    bucket = plane.physical("DataDocuments", "AWS::S3::Bucket")

    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="conversations/").get("Contents", [])]
    assert keys
    stored = []
    for key in keys:  # content-addressed: each object's sha256 is its name
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert key == f"conversations/{sha256_hex(body)}.json"
        stored.append(json.loads(body))
    # the paused conversation: the request, then the model's turn asking for the call that waits
    paused = [c for c in stored if c and c[0].get("role") == "user" and c[-1].get("role") == "assistant"]
    assert any(b["toolUse"]["name"] == "tickets-notify" for c in paused for b in c[-1]["content"] if "toolUse" in b)
    decide(plane, approval, "reject")


def test_a_decision_on_other_arguments_is_refused(plane: LocalPlane) -> None:
    execution_id = start(plane)
    approval = waiting(plane, execution_id)
    approver = served_endpoint(plane.url, "approver")
    assert approver is not None

    tampered = {"decision": "approve", "reason": "e2e", "args_sha256": "0" * 64}
    answer = request(plane.url, "POST", f"/v1/approvals/{approval['approval_id']}", tampered, {}, persona="approver")

    assert answer.status == 409, answer.body
    assert pending_approvals(approver, execution_id)  # still waiting for a real decision
    decide(plane, approval, "reject")


def test_the_template_pauses_the_loop_at_the_gate_and_grants_only_the_paused_conversations(plane: LocalPlane) -> None:
    template = json.loads((plane.options.assembly_dir / "agentplane.template.json").read_text())
    resources = template["Resources"]
    [machine] = [
        r for r in resources.values() if r.get("Metadata", {}).get("agentplane:workflow", "").endswith(WORKFLOW)
    ]
    definition = json.loads(
        "".join(p if isinstance(p, str) else "ARN" for p in machine["Properties"]["DefinitionString"]["Fn::Join"][1])
    )
    states = definition["States"]
    # a round, a pause test, the gate (its window nobody answered is a refusal), the round that resumes
    assert states["Assist"]["Next"] == states["AssistResumes"]["Next"] == "AssistPaused"
    assert states["AssistPaused"]["Choices"][0] == {
        "Variable": "$.loops.Assist.pending",
        "IsPresent": True,
        "Next": "AssistApproval",
    }
    assert states["AssistApproval"]["Resource"].endswith(":states:::lambda:invoke.waitForTaskToken")
    assert states["AssistApproval"]["Parameters"]["Payload"]["subject.$"] == "$.loops.Assist.pending.subject"
    assert states["AssistApproval"]["Catch"][0]["ErrorEquals"] == ["States.Timeout"]
    assert states["AssistUnanswered"]["Next"] == states["AssistApproval"]["Next"] == "AssistResumes"
    assert states["AssistResumes"]["Parameters"]["loop"]["approval.$"] == "$.loops.Assist.approval"
    # the loop's role may keep and read paused conversations, and no other object of the documents bucket
    [role] = [
        lid
        for lid, r in resources.items()
        if r["Type"] == "AWS::IAM::Role" and "tickets-assistant" in r["Properties"].get("Description", "")
    ]
    statements = [
        s
        for p in resources.values()
        if p["Type"] == "AWS::IAM::Policy" and {"Ref": role} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    s3 = [s for s in statements if any(str(a).startswith("s3:") for a in _list(s["Action"]))]
    assert len(s3) == 1
    assert sorted(_list(s3[0]["Action"])) == ["s3:GetObject", "s3:PutObject"]
    assert json.dumps(s3[0]["Resource"]).endswith('"/conversations/*"]]}')


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_each_turns_content_is_stored_for_the_auditor_and_explain_shows_the_conversation(
    plane: LocalPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    execution_id = start(plane)
    run = decide(plane, waiting(plane, execution_id), "approve")
    lineage = expect(request(plane.url, "GET", f"/v1/audit/traces/{run['trace_id']}", persona="auditor"), 200)
    turns = [s for s in lineage["steps"] if "turn" in s]
    assert [s["step"] for s in turns] == ["Assist/turn/1", "Assist/turn/2"]

    # what each turn sent and answered, under the digests its record holds; the auditor reads it, others do not
    for turn in turns:
        for digest in (turn["turn"]["request_sha256"], turn["turn"]["content_sha256"]):
            stored = expect(request(plane.url, "GET", f"/v1/audit/content/{digest}", persona="auditor"), 200)
            assert sha256_hex(canonical_bytes(stored["content"])) == digest
    refused = request(plane.url, "GET", f"/v1/audit/content/{digest}", persona="submitter")
    assert refused.status == 403, refused.body

    assert plane.settle()  # every record of the run is on the ledger
    assert cli.main(["audit", "digest", "--api-url", plane.url]) == 0  # and signed into a digest
    capsys.readouterr()
    code = cli.main(["audit", "explain", run["trace_id"], "--content", "--api-url", plane.url])

    shown = capsys.readouterr().out
    assert code == 0, shown
    assert "Assist/turn/1" in shown
    assert "calls tickets-notify(" in shown
    assert "Assist/turn/2" in shown
    assert "calls final_answer(" in shown
    assert '"sent": true' in shown  # the approved call's result, as turn 2 was sent it


def test_a_round_event_that_is_not_a_round_is_bad_input(plane: LocalPlane) -> None:
    function = plane.physical("AgentTicketsAssistantFunction", "AWS::Lambda::Function")

    answer, failed, _ = plane.lambdas.invoke(function, {"loop": {"max_approvals": "many"}})

    assert failed
    error = json.loads(answer)
    assert error["errorType"] == "BadInput", error
    assert error["errorMessage"].startswith("loop "), error
