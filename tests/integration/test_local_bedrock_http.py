"""The local Bedrock over HTTP, through a real boto3 ``bedrock-runtime`` client; IAM decided from moto's roles."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from infra.local.bedrock import FINAL_ANSWER, LocalBedrock, ModelTurn, MotoAuthorizer, Quota, ScriptedModel

pytestmark = pytest.mark.integration

REGION = "us-east-1"
MODEL = "anthropic.claude-sonnet-4-5"
PROFILE = f"us.{MODEL}"
FOUNDATION_ARN = f"arn:aws:bedrock:{REGION}::foundation-model/{MODEL}"
PROFILE_ARN = f"arn:aws:bedrock:{REGION}:123456789012:inference-profile/{PROFILE}"
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
ANSWER = {
    "type": "object",
    "properties": {"label": {"enum": ["ok", "not-ok"]}, "source": {"type": "string"}},
    "required": ["label", "source"],
}
LOOKUP = {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.fixture
def bedrock(credentials: None) -> Iterator[LocalBedrock]:
    with LocalBedrock() as served:
        yield served


def client(bedrock: LocalBedrock, **options: Any) -> Any:
    return boto3.client(
        "bedrock-runtime", region_name=REGION, endpoint_url=bedrock.endpoint_url, config=NO_RETRIES, **options
    )


def messages(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]


def tools() -> dict[str, Any]:
    specs = [("lookup", LOOKUP), (FINAL_ANSWER, ANSWER)]
    return {
        "tools": [{"toolSpec": {"name": name, "inputSchema": {"json": schema}}} for name, schema in specs],
        "toolChoice": {"any": {}},
    }


def error_of(call: Any, **params: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        call(**params)
    return caught.value.response


def test_a_tool_use_loop_over_http(bedrock: LocalBedrock) -> None:
    runtime = client(bedrock)
    conversation = messages('Classify {"key": "k-1"}')
    first = runtime.converse(modelId=PROFILE, messages=conversation, toolConfig=tools())
    assert first["stopReason"] == "tool_use"
    use = first["output"]["message"]["content"][0]["toolUse"]
    assert (use["name"], use["input"]) == ("lookup", {"key": "k-1"})
    assert first["ResponseMetadata"]["HTTPHeaders"]["x-agentplane-local-model"] == f"{MODEL} (local stand-in)"
    conversation += [
        first["output"]["message"],
        {
            "role": "user",
            "content": [{"toolResult": {"toolUseId": use["toolUseId"], "content": [{"json": {"source": "kb-3"}}]}}],
        },
    ]
    second = runtime.converse(modelId=PROFILE, messages=conversation, toolConfig=tools())
    answer = second["output"]["message"]["content"][0]["toolUse"]
    assert (answer["name"], answer["input"]) == (FINAL_ANSWER, {"label": "ok", "source": "kb-3"})
    assert second["usage"]["totalTokens"] == second["usage"]["inputTokens"] + second["usage"]["outputTokens"]
    assert second["additionalModelResponseFields"]["agentplane"]["localStandIn"] is True
    assert bedrock.usage()[PROFILE].requests == 2


def test_the_service_specific_endpoint_variable_reaches_it(
    bedrock: LocalBedrock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", bedrock.endpoint_url)
    runtime = boto3.client("bedrock-runtime", region_name=REGION)
    response = runtime.converse(
        modelId="amazon.nova-lite-v1:0", messages=messages("hi"), inferenceConfig={"maxTokens": 3}
    )
    assert response["stopReason"] == "max_tokens"
    assert response["usage"]["outputTokens"] == 3


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ThrottlingException", 429),
        ("ModelTimeoutException", 408),
        ("ServiceUnavailableException", 503),
        ("InternalServerException", 500),
        ("ModelNotReadyException", 429),
        ("AccessDeniedException", 403),
        ("ResourceNotFoundException", 404),
    ],
)
def test_injected_faults_raise_the_client_error_bedrock_would(bedrock: LocalBedrock, code: str, status: int) -> None:
    bedrock.inject(MODEL, code, times=1)
    runtime = client(bedrock)
    response = error_of(runtime.converse, modelId=MODEL, messages=messages("hi"))
    assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == (code, status)
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-agentplane-fault"] == "injected by the local plane"
    assert runtime.converse(modelId=MODEL, messages=messages("hi"))["stopReason"] == "end_turn"


def test_a_throttled_client_retries_as_boto3_does(bedrock: LocalBedrock) -> None:
    bedrock.inject(MODEL, "ThrottlingException", times=2)
    runtime = boto3.client(
        "bedrock-runtime",
        region_name=REGION,
        endpoint_url=bedrock.endpoint_url,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}),
    )
    response = runtime.converse(modelId=MODEL, messages=messages("hi"))
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert bedrock.usage()[MODEL].errors == {"ThrottlingException": 2}


def test_quotas_throttle_over_http(bedrock: LocalBedrock) -> None:
    bedrock.set_quota(MODEL, Quota(requests_per_minute=1))
    runtime = client(bedrock)
    runtime.converse(modelId=MODEL, messages=messages("hi"))
    response = error_of(runtime.converse, modelId=MODEL, messages=messages("hi"))
    assert response["Error"] == {
        "Code": "ThrottlingException",
        "Message": "Too many requests, please wait before trying again.",
    }


def test_validation_errors_over_http_name_the_field(bedrock: LocalBedrock) -> None:
    runtime = client(bedrock)
    response = error_of(runtime.converse, modelId=MODEL, messages=messages("hi"), inferenceConfig={"topP": 2.0})
    assert response["Error"]["Code"] == "ValidationException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "at 'inferenceConfig.topP' failed to satisfy constraint" in response["Error"]["Message"]
    unknown = error_of(runtime.converse, modelId="not-a-model", messages=messages("hi"))
    assert unknown["Error"]["Message"] == "The provided model identifier is invalid."
    arn = error_of(
        runtime.converse, modelId="arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc", messages=messages("x")
    )
    assert arn["Error"]["Code"] == "ValidationException"


def test_a_scripted_model_is_served_for_its_id(bedrock: LocalBedrock) -> None:
    bedrock.add_model(ScriptedModel(MODEL, script=[ModelTurn.text("first"), ModelTurn.text("and again")]))
    runtime = client(bedrock)
    first = runtime.converse(modelId=FOUNDATION_ARN, messages=messages("hi"))
    assert first["output"]["message"]["content"] == [{"text": "first"}]
    conversation = [*messages("hi"), first["output"]["message"], *messages("more")]
    assert runtime.converse(modelId=PROFILE, messages=conversation)["output"]["message"]["content"] == [
        {"text": "and again"}
    ]


def test_operations_it_does_not_emulate_say_so(bedrock: LocalBedrock) -> None:
    runtime = client(bedrock)
    response = error_of(runtime.count_tokens, modelId=MODEL, input={"converse": {"messages": messages("hi")}})
    assert response["Error"]["Code"] == "UnknownOperationException"
    assert "count-tokens is not emulated" in response["Error"]["Message"]


def test_a_raw_body_that_is_not_json_is_malformed(bedrock: LocalBedrock) -> None:
    import urllib.error
    import urllib.request

    raw = urllib.request.Request(f"{bedrock.endpoint_url}/model/{MODEL}/converse", data=b"{nope", method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(raw, timeout=10)
    assert caught.value.code == 400
    assert caught.value.headers["x-amzn-errortype"] == "ValidationException"
    assert json.loads(caught.value.read())["message"].startswith("Malformed input request")


def test_stop_closes_the_port(credentials: None) -> None:
    served = LocalBedrock()
    served.start()
    url = served.endpoint_url
    served.stop()
    with pytest.raises(RuntimeError):
        _ = served.endpoint_url
    runtime = boto3.client(
        "bedrock-runtime",
        region_name=REGION,
        endpoint_url=url,
        config=Config(retries={"max_attempts": 1}, connect_timeout=2),
    )
    with pytest.raises(Exception, match="Could not connect"):
        runtime.converse(modelId=MODEL, messages=messages("hi"))


# --- IAM ---------------------------------------------------------------------------------------------


def role(name: str, resources: list[str]) -> dict[str, str]:
    """A role allowed bedrock:InvokeModel on exactly ``resources``, and a session's credentials of it."""
    iam = boto3.client("iam", region_name=REGION)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "bedrock:InvokeModel", "Resource": resources}],
    }
    iam.put_role_policy(RoleName=name, PolicyName="invoke", PolicyDocument=json.dumps(policy))
    issued = boto3.client("sts", region_name=REGION).assume_role(RoleArn=arn, RoleSessionName=f"{name}-fn")[
        "Credentials"
    ]
    return {
        "role_arn": arn,
        "aws_access_key_id": issued["AccessKeyId"],
        "aws_secret_access_key": issued["SecretAccessKey"],
        "aws_session_token": issued["SessionToken"],
    }


@pytest.fixture
def guarded(credentials: None) -> Iterator[LocalBedrock]:
    with mock_aws(), LocalBedrock(authorizer=MotoAuthorizer()) as served:
        yield served


def test_a_role_may_call_exactly_the_models_its_policy_names(guarded: LocalBedrock) -> None:
    keys = role("fact-checker", [FOUNDATION_ARN, PROFILE_ARN])
    del keys["role_arn"]
    runtime = client(guarded, **keys)
    assert runtime.converse(modelId=MODEL, messages=messages("hi"))["stopReason"] == "end_turn"
    assert runtime.converse(modelId=PROFILE, messages=messages("hi"))["stopReason"] == "end_turn"
    response = error_of(runtime.converse, modelId="amazon.nova-lite-v1:0", messages=messages("hi"))
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert response["Error"]["Code"] == "AccessDeniedException"
    assert response["Error"]["Message"] == (
        "User: arn:aws:sts::123456789012:assumed-role/fact-checker/fact-checker-fn is not authorized to perform: "
        "bedrock:InvokeModel on resource: arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0 "
        "because no identity-based policy allows the bedrock:InvokeModel action"
    )
    assert guarded.denied == [
        (
            "arn:aws:sts::123456789012:assumed-role/fact-checker/fact-checker-fn",
            "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0",
        )
    ]


def test_an_inference_profile_needs_the_profile_too(guarded: LocalBedrock) -> None:
    keys = role("model-only", [FOUNDATION_ARN])
    del keys["role_arn"]
    runtime = client(guarded, **keys)
    assert runtime.converse(modelId=MODEL, messages=messages("hi"))
    response = error_of(runtime.converse, modelId=PROFILE, messages=messages("hi"))
    assert response["Error"]["Code"] == "AccessDeniedException"
    assert PROFILE_ARN in response["Error"]["Message"]


def test_in_process_callers_are_decided_by_their_role_arn(guarded: LocalBedrock) -> None:
    allowed = role("state-machine", [f"arn:aws:bedrock:{REGION}::foundation-model/*"])["role_arn"]
    body = {"modelId": MODEL, "messages": messages("hi")}
    assert guarded.converse(body, caller_arn=allowed)["stopReason"] == "end_turn"
    assert guarded.converse(body)["stopReason"] == "end_turn"  # the plane itself: not evaluated
    for caller in (
        role("no-models", ["arn:aws:bedrock:us-east-1::foundation-model/amazon.*"])["role_arn"],
        "arn:aws:iam::123456789012:role/missing",
    ):
        with pytest.raises(ClientError) as caught:
            guarded.converse(body, caller_arn=caller)
        assert caught.value.response["Error"]["Code"] == "AccessDeniedException"


def test_callers_moto_never_issued_keys_to_are_not_evaluated(guarded: LocalBedrock) -> None:
    assert client(guarded).converse(modelId=MODEL, messages=messages("hi"))["stopReason"] == "end_turn"
