"""An llm agent on a self-hosted model: a ``sagemaker`` contract names a standard vLLM serving image (weights from
S3), an llm agent names that endpoint as its model, and the same loop runs through chat completions.

The project is the scaffold's plus the model host, the drafter and its workflow (tests/e2e/self_hosted_project).
On the local plane the endpoint is served by the stand-in for the serving image, played by the deterministic model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint

from contracts.capability import MODEL_ENDPOINT_ENV
from infra.client import finished, request
from infra.llm_images import load, repository_arn
from infra.local.bedrock import ModelTurn, ScriptedModel
from infra.local.faults import Fault
from infra.local.plane import LocalPlane, PlaneOptions
from infra.synth import plane_assembly
from tests.e2e.self_hosted_project import MODEL_DATA, MODEL_DATA_KEY, SERVED_MODEL, self_hosted_project

pytestmark = pytest.mark.e2e

WORKFLOW = "helpdesk-draft"
TICKET = {"ticket_id": "T-042", "subject": "Refund", "body": "I was billed twice for my plan this month."}


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = self_hosted_project(tmp_path_factory.mktemp("project") / "helpdesk")
    return plane_assembly(tmp_path_factory.mktemp("state"), context={"agentplane:project": str(project)})


@pytest.fixture(scope="module")
def plane(assembly: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlane]:
    state = tmp_path_factory.mktemp("plane")
    with LocalPlane(PlaneOptions(assembly_dir=assembly, state_dir=state, schedule_scale=0)) as running:
        yield running


@pytest.fixture(autouse=True)
def default_model(plane: LocalPlane) -> Iterator[None]:
    yield
    plane.endpoints.serving_models.pop(SERVED_MODEL, None)
    plane.endpoints.clear_faults()
    plane.options.faults.faults.clear()


def template(assembly: Path) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((assembly / "agentplane.template.json").read_text())
    return body


def resource(body: dict[str, Any], kind: str, prefix: str) -> tuple[str, dict[str, Any]]:
    found = [(lid, r) for lid, r in body["Resources"].items() if r["Type"] == kind and lid.startswith(prefix)]
    assert len(found) == 1, [lid for lid, _ in found]
    return found[0]


def statements(body: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    return [
        statement
        for r in body["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in r["Properties"]["Roles"]
        for statement in r["Properties"]["PolicyDocument"]["Statement"]
    ]


def draft(plane: LocalPlane) -> dict[str, Any]:
    answer = request(plane.url, "POST", f"/v1/workflows/{WORKFLOW}/executions", TICKET, {})
    assert answer.status == 202, answer.body
    return finished(plane.url, answer.body["execution_id"], timeout=120)


def test_the_endpoint_serves_the_standard_image_with_the_weights_from_s3(assembly: Path) -> None:
    body = template(assembly)
    _, model = resource(body, "AWS::SageMaker::Model", "EndpointHelpdeskLlmHost")
    container = model["Properties"]["PrimaryContainer"]
    # an environment-agnostic stack: the image for the region it deploys to, from the SDK-resolved lock
    name, region, field = container["Image"]["Fn::FindInMap"]
    assert (region, field) == ({"Ref": "AWS::Region"}, "uri")
    images = body["Mappings"][name]
    assert images["us-east-1"]["uri"] == load()["vllm:0.30.0"]["us-east-1"]
    assert images["us-east-1"]["uri"].split("/", 1)[1].startswith("vllm:0.30.0-")
    assert len(images) > 20  # every region the SDK knows the image in
    assert container["ModelDataSource"]["S3DataSource"] == {
        "S3Uri": MODEL_DATA,
        "S3DataType": "S3Prefix",
        "CompressionType": "None",
    }
    assert container["Environment"]["SM_VLLM_SERVED_MODEL_NAME"] == SERVED_MODEL
    assert container["Environment"]["SM_VLLM_TOOL_CALL_PARSER"] == "hermes"
    assert model["Properties"]["EnableNetworkIsolation"] is True
    # the endpoint's role pulls that image and reads those weights, nothing wider
    role = model["Properties"]["ExecutionRoleArn"]["Fn::GetAtt"][0]
    granted = statements(body, role)
    pulls = [s for s in granted if "ecr:BatchGetImage" in s["Action"]]
    assert [p["Resource"] for p in pulls] == [{"Fn::FindInMap": [name, {"Ref": "AWS::Region"}, "repository"]}]
    assert images["us-east-1"]["repository"] == repository_arn(images["us-east-1"]["uri"])
    reads = [s for s in granted if s["Action"] == "s3:GetObject"]
    decrypts = [s for s in granted if s["Action"] == "kms:Decrypt"]
    assert [(d["Resource"], list(d["Condition"]["StringEquals"])) for d in decrypts] == [
        (MODEL_DATA_KEY, ["kms:ViaService"])
    ]
    weights = ":s3:::helpdesk-models/qwen2.5-7b-instruct/*"
    assert [r["Resource"] for r in reads] == [{"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, weights]]}]


def test_cloudformation_would_take_the_template_in_any_region(assembly: Path) -> None:
    # W3005: CDK's redundant DependsOn from a function to its role (see tests/infra/test_cfn_lint.py)
    regions = ["us-east-1", "eu-west-1", "ap-southeast-2"]
    linted = lint(json.dumps(template(assembly)), config=ManualArgs(regions=regions))
    found = [m for m in linted if m.rule.id != "W3005"]
    assert not found, [f"{m.rule.id} {'/'.join(map(str, m.path))}: {m.message}" for m in found]


def test_the_loop_may_invoke_exactly_that_endpoint_and_no_bedrock_model(assembly: Path) -> None:
    body = template(assembly)
    _, function = resource(body, "AWS::Lambda::Function", "AgentHelpdeskDrafterFunction")
    environment = function["Properties"]["Environment"]["Variables"]
    endpoint_id, _ = resource(body, "AWS::SageMaker::Endpoint", "EndpointHelpdeskLlmHost")
    assert environment[MODEL_ENDPOINT_ENV] == {"Fn::GetAtt": [endpoint_id, "EndpointName"]}
    assert "LLM_MODEL_ID" not in environment
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    granted = statements(body, role)
    invokes = [s for s in granted if s["Action"] == "sagemaker:InvokeEndpoint"]
    assert [s["Resource"] for s in invokes] == [{"Ref": endpoint_id}]
    assert not [s for s in granted if "bedrock" in json.dumps(s["Action"])]


def test_the_drafter_runs_its_loop_on_the_self_hosted_model(plane: LocalPlane) -> None:
    run = draft(plane)

    assert run["status"] == "SUCCEEDED", run
    steps = {s["step"]: s for s in run["steps"]}
    # turn 1 asked for the triage tool (dispatched through the registry), turn 2 answered
    tool = steps["Draft/tool/1.0"]
    assert (tool["agent"], tool["capability"], tool["status"]) == ("helpdesk-triage", "helpdesk-triage", "SUCCEEDED")
    turns = sorted(k for k in steps if k.startswith("Draft/turn/"))
    assert turns == ["Draft/turn/1", "Draft/turn/2"]
    assert run["output"]["draft"]["ticket_id"] == "T-042"


def test_each_turn_records_the_served_model_and_that_a_stand_in_played_it(plane: LocalPlane) -> None:
    run = draft(plane)
    items = plane.client("dynamodb").query(
        TableName=plane.physical("DataDecisions", "AWS::DynamoDB::Table"),
        KeyConditionExpression="correlation_id = :c",
        ExpressionAttributeValues={":c": {"S": run["execution_id"]}},
    )["Items"]
    turns = [json.loads(i["output_json"]["S"]) for i in items if "/turn/" in i["step_key"]["S"]]

    assert [t["stop_reason"] for t in turns] == ["tool_use", "tool_use"]  # triage, then final_answer
    for turn in turns:
        assert (turn["model_id"], turn["provider"]) == (SERVED_MODEL, "sagemaker")
        assert turn["served_by"] == f"local stand-in {SERVED_MODEL} (playing the vllm serving image)"
        assert turn["usage"]["input_tokens"] > 0
        assert turn["usage"]["output_tokens"] > 0
        assert turn["cost_usd"] == 0  # a self-hosted model costs its endpoint's hours, not tokens
    assert [c["name"] for t in turns for c in t["tool_calls"]] == ["helpdesk-triage", "final_answer"]


def test_a_model_answer_outside_the_contract_is_retried_then_a_model_error(plane: LocalPlane) -> None:
    plane.endpoints.add_serving_model(
        ScriptedModel(SERVED_MODEL, script=[ModelTurn.final_answer({"ticket_id": "T-042", "draft": 7})])
    )

    run = draft(plane)

    assert run["status"] != "SUCCEEDED", run
    step = next(s for s in run["steps"] if s["step"] == "Draft")
    assert step["error"]["type"] == "ModelError", step
    assert "final_answer does not match HelpdeskDraft" in step["error"]["message"]


def test_a_throttled_endpoint_is_the_loops_throttling(plane: LocalPlane) -> None:
    plane.options.faults.faults["helpdesk-drafter"] = Fault(error="ThrottlingException")
    plane._fault_models()  # what `--fault helpdesk-drafter=ThrottlingException` does at start

    run = draft(plane)

    assert "helpdesk-drafter" not in plane.options.faults.faults  # the endpoint is faulted, not the function

    assert run["status"] != "SUCCEEDED", run
    step = next(s for s in run["steps"] if s["step"] == "Draft")
    assert step["error"]["type"] == "ThrottlingException", step
    assert "injected fault" in step["error"]["message"]
