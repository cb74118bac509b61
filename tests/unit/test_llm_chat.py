"""The loop's turns asked of a self-hosted model: Converse <-> chat completions (functions/llm_agent/chat.py), the
local stand-in for a serving image (infra/local/llm_serving.py), and the whole loop over both."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from contracts.models import ChatCompletion, ChatRequest, Verdict
from functions.llm_agent.chat import ChatTranslationError, chat_request, converse_response
from functions.llm_agent.loop import ApprovalRequired, ToolCall, ToolSpec, run_loop
from infra.local.bedrock import ModelTurn, ScriptedModel
from infra.local.llm_serving import ServingStandIn, converse_request
from tests.unit.test_llm_loop import CLAIM, VERDICT, config

pytestmark = pytest.mark.unit

MODEL = "Qwen/Qwen2.5-7B-Instruct"
SPEC = {"name": "confidence-scoring", "description": "evidence", "inputSchema": {"json": {"type": "object"}}}


def conversation() -> dict[str, Any]:
    """A Converse request as the loop builds it, two turns in, with prompt caching on."""
    return {
        "modelId": MODEL,
        "system": [{"text": "Check the claim."}, {"cachePoint": {"type": "default"}}],
        "messages": [
            {"role": "user", "content": [{"text": json.dumps(CLAIM)}]},
            {
                "role": "assistant",
                "content": [
                    {"text": "Looking it up."},
                    {"toolUse": {"toolUseId": "t1", "name": "confidence-scoring", "input": {"claim_id": "c-001"}}},
                    {"toolUse": {"toolUseId": "t2", "name": "confidence-scoring", "input": {"claim_id": "c-002"}}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"toolResult": {"toolUseId": "t1", "content": [{"json": {"label": "supported"}}]}},
                    {"toolResult": {"toolUseId": "t2", "status": "error", "content": [{"text": "down"}]}},
                ],
            },
        ],
        "inferenceConfig": {"maxTokens": 300, "temperature": 0, "topP": 1},
        "toolConfig": {"tools": [{"toolSpec": SPEC}, {"cachePoint": {"type": "default"}}], "toolChoice": {"any": {}}},
    }


def completion(message: dict[str, Any], finish: str | None = "stop", **extra: Any) -> ChatCompletion:
    return ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
            **extra,
        }
    )


def call(name: str, arguments: str, call_id: str = "call-1") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_a_converse_conversation_becomes_the_messages_a_serving_image_reads() -> None:
    chat = chat_request(conversation(), MODEL)

    assert chat.model == MODEL
    roles = [(m.role, m.tool_call_id) for m in chat.messages]
    # tool results right after the calls they answer, one message each; cache points are Bedrock's own
    assert roles == [("system", None), ("user", None), ("assistant", None), ("tool", "t1"), ("tool", "t2")]
    assert chat.messages[0].content == "Check the claim."
    assistant = chat.messages[2]
    assert assistant.content == "Looking it up."
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in assistant.tool_calls or []] == [
        ("t1", "confidence-scoring", {"claim_id": "c-001"}),
        ("t2", "confidence-scoring", {"claim_id": "c-002"}),
    ]
    assert json.loads(chat.messages[3].content or "") == {"label": "supported"}
    assert chat.messages[4].content == "error: down"  # the model reads that the call failed
    assert [t.function.name for t in chat.tools] == ["confidence-scoring"]
    assert (chat.tool_choice, chat.max_tokens, chat.temperature, chat.top_p) == ("required", 300, 0, 1)


def test_a_request_the_messages_api_cannot_carry_is_refused() -> None:
    guarded = {**conversation(), "guardrailConfig": {"guardrailIdentifier": "g1", "guardrailVersion": "1"}}
    with pytest.raises(ChatTranslationError, match="guardrails are applied by Bedrock"):
        chat_request(guarded, MODEL)
    named = conversation()
    named["toolConfig"]["toolChoice"] = {"tool": {"name": "confidence-scoring"}}
    with pytest.raises(ChatTranslationError, match="toolChoice 'tool'"):
        chat_request(named, MODEL)


def test_tool_calls_come_back_as_a_tool_use_turn_whatever_the_finish_reason_says() -> None:
    answer = completion({"content": None, "tool_calls": [call("final_answer", json.dumps(VERDICT))]}, "stop")

    response = converse_response(answer, 41.6)

    assert response["stopReason"] == "tool_use"
    assert response["output"]["message"]["content"] == [
        {"toolUse": {"toolUseId": "call-1", "name": "final_answer", "input": VERDICT}}
    ]
    assert response["usage"] == {"inputTokens": 120, "outputTokens": 30, "totalTokens": 150}
    assert response["metrics"] == {"latencyMs": 42}
    assert "additionalModelResponseFields" not in response  # a real container says nothing of itself


@pytest.mark.parametrize(
    ("finish", "stop"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "content_filtered"), (None, "end_turn")],
)
def test_finish_reasons_are_converse_stop_reasons(finish: str | None, stop: str) -> None:
    assert converse_response(completion({"content": "text"}, finish), 1)["stopReason"] == stop


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ({"tool_calls": [call("final_answer", "{not json")]}, "arguments are not JSON"),
        ({"tool_calls": [call("final_answer", "[1, 2]")]}, "arguments are not a JSON object"),
        ({"content": ""}, "neither text nor tool calls"),
    ],
)
def test_an_answer_that_is_not_a_turn_is_refused(message: dict[str, Any], problem: str) -> None:
    with pytest.raises(ChatTranslationError, match=problem):
        converse_response(completion(message), 1)


def test_fields_a_newer_server_adds_are_ignored_and_the_stand_ins_marker_is_kept() -> None:
    answer = completion(
        {"content": "hi", "reasoning_content": "...", "refusal": None},
        system_fingerprint="fp",
        agentplane={"localStandIn": True, "model": MODEL},
    )
    response = converse_response(answer, 1)
    assert response["additionalModelResponseFields"] == {"agentplane": {"localStandIn": True, "model": MODEL}}


def test_the_stand_in_plays_the_image_with_a_local_model() -> None:
    stand_in = ServingStandIn("vllm", lambda: ScriptedModel(MODEL))
    body = chat_request(conversation(), MODEL).model_dump_json(exclude_none=True).encode()

    status, answer = stand_in.answer(body)

    assert status == 200, answer
    served = ChatCompletion.model_validate(answer)
    assert served.model == MODEL
    # the default policy has used its one tool: it answers with the only tool left to call, itself
    assert served.choices[0].finish_reason == "tool_calls"
    assert served.usage.prompt_tokens > 0
    assert served.agentplane is not None
    assert served.agentplane["localStandIn"] is True
    assert served.agentplane["model"] == f"{MODEL} (playing the vllm serving image)"


def test_the_stand_in_reads_tool_and_user_messages_as_one_converse_turn() -> None:
    chat = ChatRequest.model_validate(
        {
            "model": MODEL,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Check c-001."},
                {"role": "assistant", "tool_calls": [call("lookup", '{"id": "c-001"}', "t1")]},
                {"role": "tool", "tool_call_id": "t1", "content": '{"found": true}'},
                {"role": "user", "content": "And now?"},
            ],
            "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
            "tool_choice": "required",
            "stop": ["END"],
        }
    )

    converse = converse_request(chat)

    assert converse["system"] == [{"text": "Be brief."}]
    assert [m["role"] for m in converse["messages"]] == ["user", "assistant", "user"]
    assert converse["messages"][2]["content"] == [
        {"toolResult": {"toolUseId": "t1", "content": [{"text": '{"found": true}'}]}},
        {"text": "And now?"},
    ]
    assert converse["toolConfig"]["toolChoice"] == {"any": {}}
    assert converse["inferenceConfig"]["stopSequences"] == ["END"]


def test_the_stand_in_answers_errors_as_the_server_does() -> None:
    def broken() -> ScriptedModel:
        return ScriptedModel(MODEL, policy=lambda request: 1 / 0)  # type: ignore[arg-type,return-value]

    status, answer = ServingStandIn("tgi", lambda: ScriptedModel(MODEL)).answer(b'{"model": "m", "messages": []}')
    assert (status, answer["object"]) == (400, "error")
    assert "messages" in answer["message"]
    body = chat_request(conversation(), MODEL).model_dump_json().encode()
    status, answer = ServingStandIn("tgi", broken).answer(body)
    assert status == 500
    assert "ZeroDivisionError" in answer["message"]


def test_the_stand_in_serves_ping_and_invocations_over_asgi() -> None:
    stand_in = ServingStandIn("djl-lmi", lambda: ScriptedModel(MODEL, script=[ModelTurn.text("hello")]))

    def http(method: str, path: str, body: bytes = b"") -> tuple[int, dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        asyncio.run(stand_in({"type": "http", "method": method, "path": path}, receive, send))
        return sent[0]["status"], json.loads(sent[1]["body"])

    assert http("GET", "/ping")[0] == 200
    request = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    status, answer = http("POST", "/invocations", json.dumps(request).encode())
    assert status == 200
    assert answer["choices"][0]["message"]["content"] == "hello"
    assert http("GET", "/v1/models")[0] == 404


def test_the_loop_runs_unchanged_over_chat_completions() -> None:
    """The same loop, budgets and ledger turns, with each turn translated to the stand-in and back."""
    stand_in = ServingStandIn("vllm", lambda: ScriptedModel(MODEL))
    asked: list[ChatRequest] = []

    def converse(request: dict[str, Any]) -> dict[str, Any]:
        chat = chat_request(request, MODEL)
        asked.append(chat)
        status, answer = stand_in.answer(chat.model_dump_json(exclude_none=True).encode())
        assert status == 200, answer
        return converse_response(ChatCompletion.model_validate(answer), 3.0)

    def tools(spec: ToolSpec, arguments: dict[str, Any], call_id: str) -> dict[str, Any]:
        return {"label": "supported", "evidence": []}

    def refuse(spec: ToolSpec, call: ToolCall) -> None:
        raise ApprovalRequired(spec, call)

    recorded: list[Any] = []
    answer, usage = run_loop(
        config().model_copy(update={"model_id": MODEL, "tools": config().tools[:1]}),
        Verdict,
        CLAIM,
        converse=converse,
        call_tool=tools,
        record_turn=recorded.append,
        approve=refuse,
    )

    assert isinstance(answer, Verdict)
    assert [[c.name for c in t.tool_calls] for t in recorded] == [["confidence-scoring"], ["final_answer"]]
    assert all(t.served_by == f"local stand-in {MODEL} (playing the vllm serving image)" for t in recorded)
    assert usage.turns == 2
    # the second turn carried the tool's result back as a tool message answering the first turn's call
    second = asked[1].messages
    assert second[-1].role == "tool"
    assert second[-1].tool_call_id == recorded[0].tool_calls[0].tool_use_id


def test_the_sample_chat_request_is_one_a_serving_image_answers() -> None:
    sample = (Path(__file__).parents[2] / "events" / "payloads" / "ChatRequest.json").read_bytes()

    status, answer = ServingStandIn("vllm", lambda: ScriptedModel(MODEL)).answer(sample)

    assert status == 200, answer
    calls = ChatCompletion.model_validate(answer).choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["final_answer"]
