"""A runtime: sagemaker contract in the template: image, model, endpoint, warm floor, scaling, who may invoke."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.capability import SageMakerRuntime
from contracts.loader import load_contracts
from infra.components.sagemaker_endpoint import (
    FALLBACK_ERRORS,
    SCALING_SERVICE_LINKED_ROLE,
    VARIANT,
    has_local_storage,
    is_gpu,
    within,
)
from infra.conventions import CONTAINER_METADATA
from tests.infra.assembly import DATA_KEY, Synthesized, lambda_function_lid

pytestmark = pytest.mark.infra

CONTRACT = load_contracts()["summarizer"]
RUNTIME = CONTRACT.runtime
assert isinstance(RUNTIME, SageMakerRuntime)


def one(synthesized: Synthesized, kind: str) -> tuple[str, dict[str, Any]]:
    (found,) = synthesized.of_type(kind).items()
    return found


def test_the_model_runs_the_contracts_container_image_with_its_batching(synthesized: Synthesized) -> None:
    _, model = one(synthesized, "AWS::SageMaker::Model")
    props = model["Properties"]
    assert model["Metadata"][CONTAINER_METADATA] == RUNTIME.container
    # the image is the asset CDK publishes to the bootstrap repository at deploy (no Docker at synth)
    image = props["PrimaryContainer"]["Image"]["Fn::Sub"]
    assert ".dkr.ecr.${AWS::Region}.${AWS::URLSuffix}/cdk-" in image
    assert CONTRACT.batching is not None
    assert props["PrimaryContainer"]["Environment"] == {
        "AGENTPLANE_MAX_BATCH": str(CONTRACT.batching.max_batch),
        "AGENTPLANE_MAX_WAIT_MS": str(CONTRACT.batching.max_wait_ms),
    }
    assert props["EnableNetworkIsolation"] is True


def test_the_image_asset_is_built_from_the_staged_context_with_the_gpu_dockerfile(synthesized: Synthesized) -> None:
    manifest = next(synthesized.outdir.glob("*.assets.json")).read_text()
    assert f"containers/{RUNTIME.container}/cuda.Dockerfile" in manifest  # ml.g5: a GPU instance
    assert '"platform": "linux/amd64"' in manifest


def test_the_endpoint_config_follows_the_contract(synthesized: Synthesized) -> None:
    model_lid, _ = one(synthesized, "AWS::SageMaker::Model")
    config_lid, config = one(synthesized, "AWS::SageMaker::EndpointConfig")
    (variant,) = config["Properties"]["ProductionVariants"]
    assert variant["InstanceType"] == RUNTIME.instance_type
    assert variant["InitialInstanceCount"] == RUNTIME.min_instances  # warm from the start
    assert variant["VariantName"] == VARIANT
    assert variant["ModelName"] == {"Fn::GetAtt": [model_lid, "ModelName"]}
    _, endpoint = one(synthesized, "AWS::SageMaker::Endpoint")
    assert endpoint["Properties"]["EndpointConfigName"] == {"Fn::GetAtt": [config_lid, "EndpointConfigName"]}
    # ml.g5 has local NVMe storage, which SageMaker encrypts itself and refuses a KmsKeyId for
    assert has_local_storage(RUNTIME.instance_type)
    assert "KmsKeyId" not in config["Properties"]


@pytest.mark.parametrize(
    ("instance_type", "local", "gpu"),
    [
        ("ml.g5.xlarge", True, True),
        ("ml.g4dn.xlarge", True, True),
        ("ml.p3.2xlarge", False, True),
        ("ml.c6i.xlarge", False, False),
        ("ml.m5d.large", True, False),
        ("ml.inf2.xlarge", True, False),
    ],
)
def test_kms_and_image_choice_by_instance_family(instance_type: str, local: bool, gpu: bool) -> None:
    assert (has_local_storage(instance_type), is_gpu(instance_type)) == (local, gpu)


@pytest.mark.parametrize(
    ("version", "max_version", "ok"),
    [
        ("1.4.2", "1.x", True),
        ("2.0.0", "1.x", False),
        ("1.2.9", "1.2.x", True),
        ("1.20.0", "1.2.x", False),
        ("1.1.5", "1.2.x", True),
        ("1.2.3", "1.2.3", True),
        ("1.2.4", "1.2.3", False),
    ],
)
def test_fallback_version_ranges(version: str, max_version: str, ok: bool) -> None:
    assert within(version, max_version) is ok


def test_the_warm_minimum_is_the_scaling_floor_with_target_tracking(synthesized: Synthesized) -> None:
    endpoint_lid, _ = one(synthesized, "AWS::SageMaker::Endpoint")
    target_lid, target = one(synthesized, "AWS::ApplicationAutoScaling::ScalableTarget")
    props = target["Properties"]
    assert (props["MinCapacity"], props["MaxCapacity"]) == (RUNTIME.min_instances, RUNTIME.max_instances)
    assert props["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert props["ResourceId"] == {
        "Fn::Join": ["", ["endpoint/", {"Fn::GetAtt": [endpoint_lid, "EndpointName"]}, f"/variant/{VARIANT}"]]
    }
    assert SCALING_SERVICE_LINKED_ROLE in str(props["RoleARN"])
    assert endpoint_lid in target["DependsOn"]
    _, policy = one(synthesized, "AWS::ApplicationAutoScaling::ScalingPolicy")
    tracking = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    assert policy["Properties"]["ScalingTargetId"] == {"Ref": target_lid}
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"
    assert tracking["TargetValue"] == RUNTIME.target_invocations_per_minute


def test_only_the_invoker_may_invoke_the_endpoint(synthesized: Synthesized) -> None:
    endpoint_lid, _ = one(synthesized, "AWS::SageMaker::Endpoint")
    granted = [
        (lid, statement)
        for lid, statement in synthesized.all_policy_statements()
        if "sagemaker:InvokeEndpoint" in str(statement.get("Action")) or "sagemaker:*" in str(statement.get("Action"))
    ]
    assert len(granted) == 1
    policy_lid, statement = granted[0]
    assert statement["Action"] == "sagemaker:InvokeEndpoint"
    assert statement["Resource"] == {"Ref": endpoint_lid}
    invoker = synthesized.agent_functions()[CONTRACT.name]
    (role,) = synthesized.resources[policy_lid]["Properties"]["Roles"]
    assert role == {"Ref": synthesized.role_of(invoker)}


def test_the_invoker_runs_as_the_contract_and_knows_its_endpoint(synthesized: Synthesized) -> None:
    endpoint_lid, _ = one(synthesized, "AWS::SageMaker::Endpoint")
    function = synthesized.resources[synthesized.agent_functions()[CONTRACT.name]]["Properties"]
    variables = function["Environment"]["Variables"]
    assert function["Handler"] == "functions.endpoint_invoker.handler.lambda_handler"
    assert (variables["AGENT_NAME"], variables["AGENT_VERSION"]) == (CONTRACT.name, CONTRACT.version)
    assert (variables["AGENT_INPUT_MODEL"], variables["AGENT_OUTPUT_MODEL"]) == (CONTRACT.io.input, CONTRACT.io.output)
    assert variables["ENDPOINT_NAME"] == {"Fn::GetAtt": [endpoint_lid, "EndpointName"]}
    assert variables["ENDPOINT_STATEFUL"] == str(RUNTIME.stateful).lower()
    assert int(variables["ENDPOINT_TIMEOUT_S"]) < function["Timeout"]  # time left to record the decision


def test_the_execution_role_pulls_only_the_asset_repository(synthesized: Synthesized) -> None:
    _, model = one(synthesized, "AWS::SageMaker::Model")
    role_lid = model["Properties"]["ExecutionRoleArn"]["Fn::GetAtt"][0]
    statements = synthesized.role_statements(role_lid)
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert "sagemaker:InvokeEndpoint" not in actions
    assert "ecr:BatchGetImage" in actions
    wildcard = [s for s in statements if s["Resource"] == "*"]
    assert [s["Action"] for s in wildcard] == ["ecr:GetAuthorizationToken"]
    assert DATA_KEY not in str(statements)


def test_doc_review_summarizes_on_the_endpoint_and_falls_back_to_the_cpu_lambda(
    synthesized: Synthesized, doc_review_asl: dict[str, Any]
) -> None:
    states = doc_review_asl["States"]
    agents = {lid: name for name, lid in synthesized.agent_functions().items()}
    primary, fallback = states["SummarizeDocument"], states["SummarizeOnCpu"]
    assert states["Intake"]["Next"] == "SummarizeDocument"
    assert agents[lambda_function_lid(primary["Resource"])] == "summarizer"
    assert agents[lambda_function_lid(fallback["Resource"])] == "summarizer-cpu"
    # errors and throttling follow the contract's fallback; anything else (stale, malformed) is recorded as failed
    to_fallback = next(c for c in primary["Catch"] if c["Next"] == "SummarizeOnCpu")
    assert to_fallback["ErrorEquals"] == FALLBACK_ERRORS
    assert not {"DeadlineExceeded", "BadInput", "States.ALL"} & set(to_fallback["ErrorEquals"])
    assert primary["Catch"].index(to_fallback) == 0  # before the catch-all
    # both go on to the claims, the fallback noting that the summary was degraded
    assert states[primary["Next"]]["Next"] == states[fallback["Next"]]["Next"] == "VerifyClaims"
    assert "SummarizeOnCpu" in states[fallback["Next"]]["Parameters"]["steps.$"]
    assert primary["ResultPath"] == fallback["ResultPath"] == "$.summary"
    assert states["VerifyClaims"]["ItemsPath"] == "$.summary.claims"


@pytest.fixture(scope="module")
def doc_review_asl(synthesized: Synthesized) -> dict[str, Any]:
    (lid,) = [lid for lid in synthesized.of_type("AWS::StepFunctions::StateMachine") if lid.startswith("DocReview")]
    return synthesized.state_machine_definition(lid)
