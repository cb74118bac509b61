"""The local Bedrock Runtime in-process: validation, the tool-use protocol, stop reasons, tokens, quotas, faults."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from infra.local.bedrock import (
    FINAL_ANSWER,
    BedrockError,
    ConverseRequest,
    LocalBedrock,
    LocalGuardrail,
    ModelTurn,
    Quota,
    ScriptedModel,
    count_tokens,
    resolve_model_id,
    task_error,
)

pytestmark = pytest.mark.unit

MODEL = "anthropic.claude-sonnet-4-5"
SEARCH = {
    "type": "object",
    "properties": {"query": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "maximum": 9}},
    "required": ["query", "limit"],
}
VERDICT = {
    "type": "object",
    "properties": {
        "claim_id": {"type": "string"},
        "verdict": {"enum": ["supported", "refuted", "not-enough-info"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "evidence": {"type": "array", "items": {"type": "string"}},
        "note": {"type": "string"},
    },
    "required": ["claim_id", "verdict", "confidence", "evidence"],
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"text": text}]}


def tool(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"toolSpec": {"name": name, "description": f"the {name} tool", "inputSchema": {"json": schema}}}


def request(*messages: dict[str, Any], model: str = MODEL, **fields: Any) -> dict[str, Any]:
    return {"modelId": model, "messages": list(messages) or [user("hello")], **fields}


def agent_request(text: str = '{"claim_id": "c-7", "query": "revenue grew"}', **fields: Any) -> dict[str, Any]:
    tools = {"tools": [tool("search", SEARCH), tool(FINAL_ANSWER, VERDICT)], "toolChoice": {"any": {}}}
    return request(user(text), toolConfig=tools, **fields)


def refused(bedrock: LocalBedrock, body: dict[str, Any]) -> BedrockError:
    with pytest.raises(BedrockError) as caught:
        bedrock.converse(body)
    return caught.value


def run_loop(bedrock: LocalBedrock, body: dict[str, Any], tool_output: Any, max_turns: int = 8) -> list[dict[str, Any]]:
    """Drive a tool-use loop as an agent runtime would, answering every tool but final_answer with tool_output."""
    responses = []
    messages = list(body["messages"])
    for _ in range(max_turns):
        response = bedrock.converse({**body, "messages": messages})
        responses.append(response)
        message = response["output"]["message"]
        messages.append(message)
        uses = [block["toolUse"] for block in message["content"] if "toolUse" in block]
        if response["stopReason"] != "tool_use" or any(use["name"] == FINAL_ANSWER for use in uses):
            return responses
        results = [{"toolResult": {"toolUseId": use["toolUseId"], "content": [{"json": tool_output}]}} for use in uses]
        messages.append({"role": "user", "content": results})
    raise AssertionError(f"no final answer in {max_turns} turns")


# --- model ids ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "foundation", "profile"),
    [
        ("anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic.claude-sonnet-4-5-20250929-v1:0", None),
        ("us.anthropic.claude-sonnet-4-5", "anthropic.claude-sonnet-4-5", "us.anthropic.claude-sonnet-4-5"),
        ("global.amazon.nova-lite-v1:0", "amazon.nova-lite-v1:0", "global.amazon.nova-lite-v1:0"),
        ("arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0", "amazon.nova-lite-v1:0", None),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.meta.llama3-2-1b-instruct-v1:0",
            "meta.llama3-2-1b-instruct-v1:0",
            "eu.meta.llama3-2-1b-instruct-v1:0",
        ),
    ],
)
def test_model_ids_name_a_foundation_model_directly_or_through_an_inference_profile(
    model_id: str, foundation: str, profile: str | None
) -> None:
    ref = resolve_model_id(model_id)
    assert ref is not None
    assert (ref.foundation, ref.profile) == (foundation, profile)


def test_inference_profiles_need_the_profile_and_the_foundation_model_arn() -> None:
    ref = resolve_model_id("us.anthropic.claude-sonnet-4-5")
    assert ref is not None
    assert ref.resources("us-east-1", "123456789012") == [
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5",
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-5",
    ]


@pytest.mark.parametrize(
    "model_id", ["claude", "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc123def456", "Anthropic.Claude"]
)
def test_a_model_id_that_names_no_model_is_invalid(model_id: str) -> None:
    error = refused(LocalBedrock(), request(model=model_id))
    assert (error.code, error.status) == ("ValidationException", 400)
    assert error.message == "The provided model identifier is invalid."


def test_without_a_default_model_only_registered_models_answer() -> None:
    bedrock = LocalBedrock([ScriptedModel("amazon.nova-lite-v1:0")], default_model=None)
    assert bedrock.converse(request(model="us.amazon.nova-lite-v1:0"))["stopReason"] == "end_turn"
    assert refused(bedrock, request()).message == "The provided model identifier is invalid."


# --- the request's shape -------------------------------------------------------------------------------


def test_constraints_of_the_service_model_are_refused_as_bedrock_words_them() -> None:
    body = request(inferenceConfig={"maxTokens": 0, "temperature": 1.5})
    error = refused(LocalBedrock(), body)
    assert error.code == "ValidationException"
    assert error.message == (
        "2 validation errors detected: "
        "Value '0' at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have value greater than "
        "or equal to 1; "
        "Value '1.5' at 'inferenceConfig.temperature' failed to satisfy constraint: Member must have value less "
        "than or equal to 1"
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            request({"role": "robot", "content": [{"text": "hi"}]}),
            "at 'messages.0.role' failed to satisfy constraint: ",
        ),
        (
            request({"role": "user"}),
            "Value null at 'messages.0.content' failed to satisfy constraint: Member must not be null",
        ),
        (
            request({"role": "user", "content": [{"text": "a", "toolUse": {}}]}),
            "Member must have exactly one of the members set",
        ),
        (request(user("hi"), inferenceConfig={"maxTokens": "ten"}), "Member must be an integer"),
        (request(user("hi"), Messages=[]), "Unknown parameter 'Messages', must be one of: modelId, messages"),
        (
            request(user("hi"), toolConfig={"tools": [tool("bad name!", {"type": "object"})]}),
            "at 'toolConfig.tools.0.toolSpec.name' failed to satisfy constraint: Member must satisfy regular "
            "expression pattern: [a-zA-Z0-9_-]+",
        ),
    ],
)
def test_a_request_the_service_model_refuses_is_a_validation_exception(body: dict[str, Any], expected: str) -> None:
    error = refused(LocalBedrock(), body)
    assert error.code == "ValidationException"
    assert expected in error.message


# --- the conversation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([], "A conversation must start with a user message."),
        ([{"role": "assistant", "content": [{"text": "hi"}]}], "A conversation must start with a user message."),
        ([user("a"), user("b")], "A conversation must alternate between user and assistant roles."),
        ([{"role": "user", "content": []}], "The content field in the Message object at messages.0 is empty."),
        ([user("  ")], "The text field in the ContentBlock object at messages.0.content.0 is blank."),
    ],
)
def test_roles_and_content_follow_bedrocks_rules(messages: list[dict[str, Any]], expected: str) -> None:
    error = refused(LocalBedrock(), {"modelId": MODEL, "messages": messages})
    assert error.message.startswith(expected)


def tool_turns(answered: list[dict[str, Any]], *, with_tools: bool = True) -> dict[str, Any]:
    asked = {
        "role": "assistant",
        "content": [
            {"toolUse": {"toolUseId": "tooluse_a", "name": "search", "input": {}}},
            {"toolUse": {"toolUseId": "tooluse_b", "name": "search", "input": {}}},
        ],
    }
    body = request(user("go"), asked, {"role": "user", "content": answered})
    if with_tools:
        body["toolConfig"] = {"tools": [tool("search", SEARCH)]}
    return body


def result(tool_use_id: str, **fields: Any) -> dict[str, Any]:
    return {"toolResult": {"toolUseId": tool_use_id, "content": [{"text": "ok"}], **fields}}


@pytest.mark.parametrize(
    ("answered", "expected"),
    [
        (
            [result("tooluse_a"), result("tooluse_x")],
            "The toolUseId tooluse_x at messages.2.content.1.toolResult does not match any toolUse block of the "
            "previous turn.",
        ),
        ([result("tooluse_a")], "Expected toolResult blocks at messages.2.content for the following Ids: tooluse_b"),
        (
            [result("tooluse_a"), result("tooluse_b"), result("tooluse_a")],
            "The number of toolResult blocks at messages.2.content exceeds the number of toolUse blocks of "
            "previous turn.",
        ),
        (
            [result("tooluse_a"), {"toolResult": {"toolUseId": "tooluse_b", "content": [], "status": "error"}}],
            "The content field at messages.2.content.1.toolResult cannot be empty when status value is error.",
        ),
    ],
)
def test_tool_results_answer_the_previous_turns_tool_uses_by_id(answered: list[dict[str, Any]], expected: str) -> None:
    error = refused(LocalBedrock(), tool_turns(answered))
    assert (error.code, error.message) == ("ValidationException", expected)


def test_tool_blocks_need_a_tool_config() -> None:
    error = refused(LocalBedrock(), tool_turns([result("tooluse_a"), result("tooluse_b")], with_tools=False))
    assert error.message == "The toolConfig field must be defined when using toolUse and toolResult content blocks."


def test_answered_tool_uses_are_accepted() -> None:
    response = LocalBedrock().converse(tool_turns([result("tooluse_b"), result("tooluse_a")]))
    assert response["stopReason"] == "end_turn"  # the one tool was used; no final_answer tool to call


@pytest.mark.parametrize(
    ("tool_config", "expected"),
    [
        ({"tools": [tool("search", {"type": "string"})]}, "toolConfig.tools.0.toolSpec.inputSchema.json.type must be"),
        ({"tools": [tool("search", SEARCH), tool("search", SEARCH)]}, "tool names must be unique"),
        ({"tools": [tool("search", {"type": "object", "required": 3})]}, "inputSchema.json is invalid"),
        ({"tools": [tool("search", SEARCH)], "toolChoice": {"tool": {"name": "other"}}}, "toolChoice.tool"),
    ],
)
def test_tool_definitions_are_checked(tool_config: dict[str, Any], expected: str) -> None:
    assert expected in refused(LocalBedrock(), request(user("hi"), toolConfig=tool_config)).message


# --- the answer ---------------------------------------------------------------------------------------


def test_an_answer_says_it_comes_from_a_local_stand_in() -> None:
    response = LocalBedrock().converse(request(model="us.anthropic.claude-sonnet-4-5"))
    marker = response["additionalModelResponseFields"]["agentplane"]
    assert marker["localStandIn"] is True
    assert marker["model"] == MODEL
    assert "stand-in" in marker["description"]
    assert "not a language model" in marker["description"]
    assert response["output"]["message"]["role"] == "assistant"
    assert "Scripted local stand-in" in response["output"]["message"]["content"][0]["text"]


def test_token_usage_is_the_documented_approximation() -> None:
    body = request(user("x" * 41), system=[{"text": "y" * 8}])
    response = LocalBedrock().converse(body)
    text = response["output"]["message"]["content"][0]["text"]
    assert response["usage"] == {
        "inputTokens": 11 + 2,  # ceil(41 / 4) + ceil(8 / 4)
        "outputTokens": count_tokens(text),
        "totalTokens": 13 + count_tokens(text),
    }
    assert response["metrics"]["latencyMs"] >= 0


def test_max_tokens_cuts_the_answer_and_says_max_tokens() -> None:
    bedrock = LocalBedrock([ScriptedModel(MODEL, script=[ModelTurn.text("word " * 400)])])
    response = bedrock.converse(request(inferenceConfig={"maxTokens": 10}))
    assert response["stopReason"] == "max_tokens"
    assert response["usage"]["outputTokens"] == 10
    assert response["output"]["message"]["content"] == [{"text": ("word " * 8)}]


def test_a_tool_call_that_does_not_fit_in_max_tokens_is_not_sent() -> None:
    turn = ModelTurn.tool_uses([("search", {"query": "short"}), ("search", {"query": "q" * 200})])
    bedrock = LocalBedrock([ScriptedModel(MODEL, script=[turn])])
    response = bedrock.converse(agent_request(inferenceConfig={"maxTokens": 20}))
    assert response["stopReason"] == "max_tokens"
    assert [block["toolUse"]["input"] for block in response["output"]["message"]["content"]] == [{"query": "short"}]
    assert response["usage"]["outputTokens"] == 20


def test_a_stop_sequence_ends_the_answer_before_it() -> None:
    bedrock = LocalBedrock([ScriptedModel(MODEL, script=[ModelTurn.text("one two STOP three")])])
    response = bedrock.converse(request(inferenceConfig={"stopSequences": ["STOP", "three"]}))
    assert response["stopReason"] == "stop_sequence"
    assert response["output"]["message"]["content"] == [{"text": "one two "}]


@pytest.mark.parametrize("reason", ["content_filtered", "guardrail_intervened"])
def test_a_model_may_stop_for_its_own_reasons(reason: Any) -> None:
    bedrock = LocalBedrock([ScriptedModel(MODEL, script=[ModelTurn.text("withheld", stop_reason=reason)])])
    assert bedrock.converse(request())["stopReason"] == reason


def test_a_failing_or_malformed_model_is_a_model_error() -> None:
    def broken(_: ConverseRequest) -> ModelTurn:
        raise RuntimeError("weights missing")

    bedrock = LocalBedrock(
        [
            ScriptedModel(MODEL, policy=broken),
            ScriptedModel("amazon.nova-lite-v1:0", script=[ModelTurn(({"toolUse": {"name": "x y", "input": {}}},))]),
        ]
    )
    error = refused(bedrock, request())
    assert (error.code, error.status) == ("ModelErrorException", 424)
    assert "weights missing" in error.message
    malformed = refused(bedrock, request(model="amazon.nova-lite-v1:0"))
    assert malformed.code == "ModelErrorException"
    assert "output.message.content.0.toolUse.name" in malformed.message


# --- the scripted model ----------------------------------------------------------------------------------


def test_the_default_policy_calls_each_tool_once_then_answers_from_the_input_and_the_tool_results() -> None:
    responses = run_loop(LocalBedrock(), agent_request(), {"evidence": ["10-K page 4"], "confidence": 0.8})
    calls = [block["toolUse"] for r in responses for block in r["output"]["message"]["content"]]
    assert [call["name"] for call in calls] == ["search", FINAL_ANSWER]
    assert calls[0]["input"] == {"query": "revenue grew", "limit": 5}  # from the user's JSON; the middle of 1..9
    answer = calls[1]["input"]
    jsonschema.validate(answer, VERDICT)
    assert answer == {"claim_id": "c-7", "verdict": "supported", "confidence": 0.8, "evidence": ["10-K page 4"]}
    assert [r["stopReason"] for r in responses] == ["tool_use", "tool_use"]


def test_the_default_policy_is_deterministic_and_tool_use_ids_unique_per_turn() -> None:
    first = run_loop(LocalBedrock(), agent_request(), {"evidence": []})
    again = run_loop(LocalBedrock(), agent_request(), {"evidence": []})
    assert [r["output"] for r in first] == [r["output"] for r in again]
    ids = [b["toolUse"]["toolUseId"] for r in first for b in r["output"]["message"]["content"]]
    assert len(set(ids)) == len(ids)
    other = LocalBedrock().converse(agent_request('{"claim_id": "c-8", "query": "revenue fell"}'))
    assert other["output"]["message"]["content"][0]["toolUse"]["toolUseId"] not in ids


def test_parallel_tool_calls_use_every_tool_in_one_turn() -> None:
    bedrock = LocalBedrock([ScriptedModel(MODEL, parallel_tool_calls=True)])
    body = agent_request()
    body["toolConfig"]["tools"].insert(1, tool("tag", {"type": "object", "properties": {"text": {"type": "string"}}}))
    responses = run_loop(bedrock, body, {"evidence": ["x"]})
    names = [[b["toolUse"]["name"] for b in r["output"]["message"]["content"]] for r in responses]
    assert names == [["search", "tag"], [FINAL_ANSWER]]


def test_a_named_tool_choice_is_called() -> None:
    body = agent_request()
    body["toolConfig"]["toolChoice"] = {"tool": {"name": FINAL_ANSWER}}
    use = LocalBedrock().converse(body)["output"]["message"]["content"][0]["toolUse"]
    assert use["name"] == FINAL_ANSWER
    jsonschema.validate(use["input"], VERDICT)


def test_without_tools_an_output_schema_gets_json_text() -> None:
    schema = {"type": "object", "properties": {"label": {"enum": ["a", "b"]}}, "required": ["label"]}
    body = request(
        outputConfig={
            "textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": json.dumps(schema)}}}
        }
    )
    text = LocalBedrock().converse(body)["output"]["message"]["content"][0]["text"]
    assert json.loads(text) == {"label": "a"}


def test_a_script_plays_turns_by_turn_number_and_repeats_its_last() -> None:
    endless = ScriptedModel(MODEL, script=[ModelTurn.tool_use("search", {"query": "again", "limit": 1})])
    bedrock = LocalBedrock([endless])
    with pytest.raises(AssertionError, match="no final answer in 4 turns"):
        run_loop(bedrock, agent_request(), {"evidence": []}, max_turns=4)


def test_a_script_can_hand_over_to_the_default_policy() -> None:
    scripted = ScriptedModel(MODEL, script=[ModelTurn.text("thinking out loud")], after="default")
    bedrock = LocalBedrock([scripted])
    first = bedrock.converse(agent_request())
    assert first["stopReason"] == "end_turn"
    body = agent_request()
    body["messages"] += [first["output"]["message"], user("use a tool")]
    second = bedrock.converse(body)
    assert second["output"]["message"]["content"][0]["toolUse"]["name"] == "search"


def test_an_invalid_final_answer_is_sent_as_scripted() -> None:
    bedrock = LocalBedrock([ScriptedModel(MODEL, script=[ModelTurn.final_answer({"verdict": "maybe"})])])
    use = bedrock.converse(agent_request())["output"]["message"]["content"][0]["toolUse"]
    assert use["name"] == FINAL_ANSWER
    assert not jsonschema.Draft202012Validator(VERDICT).is_valid(use["input"])


def test_a_per_model_policy_sees_the_parsed_request() -> None:
    seen: list[ConverseRequest] = []

    def policy(parsed: ConverseRequest) -> ModelTurn:
        seen.append(parsed)
        return ModelTurn.text(f"{len(parsed.tools)} tools, choice {parsed.tool_choice}")

    bedrock = LocalBedrock()
    bedrock.add_model(ScriptedModel("us.anthropic.claude-sonnet-4-5", policy=policy))
    body = agent_request(model="us.anthropic.claude-sonnet-4-5", system=[{"text": "be brief"}])
    assert bedrock.converse(body)["output"]["message"]["content"] == [{"text": "2 tools, choice any"}]
    assert bedrock.converse(agent_request())["stopReason"] == "tool_use"  # the foundation id: the default model
    assert seen[0].system == ["be brief"]
    assert seen[0].first_user_json() == {"claim_id": "c-7", "query": "revenue grew"}
    bedrock.remove_model("us.anthropic.claude-sonnet-4-5")
    assert bedrock.converse(body)["stopReason"] == "tool_use"


# --- quotas, faults, usage ---------------------------------------------------------------------------------


def test_requests_per_minute_throttle_until_the_window_moves_on() -> None:
    clock = Clock()
    bedrock = LocalBedrock(quotas={MODEL: Quota(requests_per_minute=2)}, clock=clock)
    bedrock.converse(request())
    clock.now += 30
    bedrock.converse(request(model="us.anthropic.claude-sonnet-4-5"))  # a profile of the model shares its quota
    error = refused(bedrock, request())
    assert (error.code, error.status, error.message) == (
        "ThrottlingException",
        429,
        "Too many requests, please wait before trying again.",
    )
    clock.now += 30.5  # the first request left the window
    bedrock.converse(request())
    assert bedrock.converse(request(model="amazon.nova-lite-v1:0"))  # another model: its own quota (none)


def test_tokens_per_minute_count_what_requests_read_and_produced() -> None:
    clock = Clock()
    bedrock = LocalBedrock([ScriptedModel(MODEL, script=[ModelTurn.text("z" * 200)])], clock=clock)
    bedrock.set_quota(MODEL, Quota(tokens_per_minute=100))
    bedrock.converse(request(user("x" * 40)))  # 10 in, 50 out
    bedrock.converse(request(user("x" * 40)))  # 120 in the window now
    error = refused(bedrock, request(user("x")))
    assert error.message == "Too many tokens, please wait before trying again."
    clock.now += 61
    bedrock.converse(request(user("x" * 40)))
    bedrock.set_quota(MODEL, None)
    for _ in range(3):
        bedrock.converse(request())


def test_injected_faults_answer_as_bedrock_for_as_many_calls_as_asked() -> None:
    bedrock = LocalBedrock()
    bedrock.inject(MODEL, "ModelTimeoutException", times=2)
    for _ in range(2):
        error = refused(bedrock, request())
        assert (error.code, error.status, error.injected) == ("ModelTimeoutException", 408, True)
        assert error.response["Error"]["Code"] == "ModelTimeoutException"
    assert bedrock.converse(request())["stopReason"] == "end_turn"
    bedrock.inject("*", "ServiceUnavailableException")
    assert refused(bedrock, request(model="amazon.nova-lite-v1:0")).status == 503
    bedrock.clear_faults()
    assert bedrock.converse(request(model="amazon.nova-lite-v1:0"))


def test_a_fault_rate_is_seeded() -> None:
    def hits(seed: int) -> list[bool]:
        bedrock = LocalBedrock(seed=seed)
        bedrock.inject(MODEL, "ThrottlingException", rate=0.5)
        outcomes = []
        for _ in range(20):
            try:
                bedrock.converse(request())
                outcomes.append(False)
            except BedrockError:
                outcomes.append(True)
        return outcomes

    assert hits(3) == hits(3)
    assert 0 < sum(hits(3)) < 20


@pytest.mark.parametrize(
    ("code", "options"), [("Timeout", {}), ("ThrottlingException", {"times": 0}), ("ThrottlingException", {"rate": 2})]
)
def test_a_fault_bedrock_could_not_answer_is_refused(code: str, options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        LocalBedrock().inject(MODEL, code, **options)


def test_usage_totals_per_model_id_as_called() -> None:
    bedrock = LocalBedrock()
    first = bedrock.converse(request())
    second = bedrock.converse(request(user("a longer question than before")))
    bedrock.inject(MODEL, "ThrottlingException", times=1)
    refused(bedrock, request())
    refused(bedrock, request(user("a"), user("b")))
    usage = bedrock.usage()[MODEL]
    assert usage.requests == 2
    assert usage.input_tokens == first["usage"]["inputTokens"] + second["usage"]["inputTokens"]
    assert usage.total_tokens == first["usage"]["totalTokens"] + second["usage"]["totalTokens"]
    assert usage.errors == {"ThrottlingException": 1, "ValidationException": 1}
    bedrock.usage()[MODEL].requests = 99  # a copy
    assert bedrock.usage()[MODEL].requests == 2


# --- a Step Functions SDK integration task ----------------------------------------------------------------


def test_a_state_machine_task_speaks_pascal_case_and_documents_keep_their_keys() -> None:
    parameters = {
        "ModelId": MODEL,
        "Messages": [{"Role": "user", "Content": [{"Text": '{"claim_id": "c-1", "query": "q"}'}]}],
        "ToolConfig": {
            "Tools": [{"ToolSpec": {"Name": "search", "InputSchema": {"Json": SEARCH}}}],
            "ToolChoice": {"Any": {}},
        },
        "InferenceConfig": {"MaxTokens": 100},
    }
    result = LocalBedrock().converse_task(parameters)
    assert result["StopReason"] == "tool_use"
    use = result["Output"]["Message"]["Content"][0]["ToolUse"]
    assert use["Name"] == "search"
    assert use["Input"] == {"query": "q", "limit": 5}  # a document: its keys are the tool's, not renamed
    assert set(result["Usage"]) == {"InputTokens", "OutputTokens", "TotalTokens"}
    assert result["AdditionalModelResponseFields"]["agentplane"]["localStandIn"] is True


def test_a_state_machine_task_error_is_named_for_the_service() -> None:
    bedrock = LocalBedrock()
    bedrock.inject(MODEL, "ThrottlingException")
    with pytest.raises(BedrockError) as caught:
        bedrock.converse_task({"ModelId": MODEL, "Messages": [{"Role": "user", "Content": [{"Text": "hi"}]}]})
    assert task_error(caught.value) == (
        "BedrockRuntime.ThrottlingException",
        "Too many requests, please wait before trying again.",
    )
    unknown = refused(bedrock, {"modelId": MODEL, "messages": [user("hi")], "Bogus": 1})
    assert "Unknown parameter 'Bogus'" in unknown.message


# --- guardrails ----------------------------------------------------------------------------------------


def guarded(*messages: dict[str, Any], version: str = "1") -> dict[str, Any]:
    return request(*messages, guardrailConfig={"guardrailIdentifier": "grwords", "guardrailVersion": version})


def test_a_guardrail_blocks_an_input_with_its_words_before_the_model_sees_it() -> None:
    seen: list[ConverseRequest] = []

    def policy(parsed: ConverseRequest) -> ModelTurn:
        seen.append(parsed)
        return ModelTurn.text("fine")

    bedrock = LocalBedrock([ScriptedModel(MODEL, policy=policy)])
    bedrock.add_guardrail(LocalGuardrail("grwords", "1", blocked_words=("wire transfer",), blocked_input_message="No."))
    response = bedrock.converse(guarded(user("Please make a Wire Transfer now")))
    assert response["stopReason"] == "guardrail_intervened"
    assert response["output"]["message"]["content"] == [{"text": "No."}]
    assert seen == []
    assert bedrock.converse(guarded(user("wire the transfer")))["stopReason"] == "end_turn"  # words, not letters


def test_a_guardrail_replaces_an_answer_with_its_words() -> None:
    leaky = ScriptedModel(MODEL, script=[ModelTurn.final_answer({"note": "the password is hunter2"})])
    bedrock = LocalBedrock([leaky])
    bedrock.add_guardrail(LocalGuardrail("grwords", "1", blocked_words=("hunter2",)))
    body = guarded(user("what is it?"))
    body["toolConfig"] = {"tools": [tool(FINAL_ANSWER, {"type": "object"})]}
    response = bedrock.converse(body)
    assert response["stopReason"] == "guardrail_intervened"
    assert response["output"]["message"]["content"] == [{"text": "Sorry, the model cannot answer this question."}]


def test_only_guard_content_is_evaluated_when_the_user_marks_some() -> None:
    bedrock = LocalBedrock()
    bedrock.add_guardrail(LocalGuardrail("grwords", "1", blocked_words=("secret",)))
    marked = {"role": "user", "content": [{"text": "a secret"}, {"guardContent": {"text": {"text": "harmless"}}}]}
    assert bedrock.converse(guarded(marked))["stopReason"] == "end_turn"


def test_a_registered_guardrail_needs_its_version_and_others_are_not_evaluated() -> None:
    bedrock = LocalBedrock()
    bedrock.add_guardrail(LocalGuardrail("grwords", "1", blocked_words=("x",)))
    error = refused(bedrock, guarded(user("hi"), version="2"))
    assert error.message == "The guardrail identifier or version provided in the request does not exist."
    other = request(user("x"), guardrailConfig={"guardrailIdentifier": "grother", "guardrailVersion": "1"})
    assert bedrock.converse(other)["stopReason"] == "end_turn"


def test_importing_the_package_starts_nothing() -> None:
    import subprocess
    import sys

    code = "import threading, infra.local.bedrock; print(threading.active_count())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "1"


def test_cache_points_are_accepted_and_no_cache_tokens_are_reported() -> None:
    """Prompt caching is not emulated: a request marking cache points answers as one without them."""
    bedrock = LocalBedrock()
    request = {
        "modelId": "anthropic.claude-haiku-4-5-20251001-v1:0",
        "system": [{"text": "Answer."}, {"cachePoint": {"type": "default"}}],
        "messages": [{"role": "user", "content": [{"text": "hello"}]}],
    }

    usage = bedrock.converse(request)["usage"]

    assert "cacheReadInputTokens" not in usage
    assert "cacheWriteInputTokens" not in usage
