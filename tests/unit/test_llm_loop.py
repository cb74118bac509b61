"""The llm agent's loop with a scripted Converse: tool calls, final answers, budgets, the ledger's turns."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.capability import Inference, LlmLimits
from contracts.envelope import Envelope
from contracts.models import Verdict
from functions.llm_agent.loop import (
    AgentConfig,
    ApprovalRequired,
    BudgetExceeded,
    Checkpoint,
    ModelError,
    TokenPrice,
    ToolCall,
    ToolDecision,
    ToolFailed,
    ToolSpec,
    Turn,
    approve_listed,
    run_loop,
)
from functions.llm_agent.service import turn_record
from functions.runtime import Step

pytestmark = pytest.mark.unit

CLAIM = {"claim": {"claim_id": "c-001", "text": "Northwind was founded in 2012.", "sentence_index": 0}}
VERDICT = {"claim_id": "c-001", "label": "supported", "confidence": 0.9, "evidence": [], "rationale": "nw-001 says so."}


SEND = ToolSpec(
    name="send-email",
    description="mails someone",
    input_schema={"type": "object"},
    accept="1.x",
    capability_version="1.0.0",
    side_effects="external-action",
)


def config(**limits: Any) -> AgentConfig:
    return AgentConfig(
        name="fact-checker-llm",
        version="1.0.0",
        model_id="us.anthropic.claude-haiku-4-5-20251001-v1:0",
        prompt="Check the claim.",
        prompt_sha256="0" * 64,
        tools=[
            ToolSpec(
                name="confidence-scoring",
                description="evidence",
                input_schema={"type": "object"},
                accept="1.x",
                capability_version="1.2.0",
                side_effects="read-only",
            ),
            SEND,
        ],
        input_model="ClaimCheck",
        output_model="Verdict",
        output_schema=Verdict.model_json_schema(),
        limits=LlmLimits(
            **{"max_turns": 4, "max_input_tokens": 10_000, "max_output_tokens": 1_000, "max_cost_usd": 0.05, **limits}
        ),
        inference=Inference(max_tokens=300),
        price=TokenPrice(input_per_1k_tokens=0.001, output_per_1k_tokens=0.005),
    )


def tool_use(name: str, arguments: dict[str, Any], use_id: str = "t1") -> dict[str, Any]:
    return {"toolUse": {"toolUseId": use_id, "name": name, "input": arguments}}


def turn(*content: dict[str, Any], stop: str = "tool_use", tokens: tuple[int, int] = (100, 20)) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": list(content)}},
        "stopReason": stop,
        "usage": {"inputTokens": tokens[0], "outputTokens": tokens[1], "totalTokens": sum(tokens)},
        "metrics": {"latencyMs": 7},
    }


class Script:
    """Converse answered from a list of turns; every request is kept."""

    def __init__(self, *turns: dict[str, Any]) -> None:
        self.turns: Iterator[dict[str, Any]] = iter(turns)
        self.requests: list[dict[str, Any]] = []

    def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(request)
        return next(self.turns)


class Tools:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, dict[str, Any], str]] = []
        self.fail = fail

    def __call__(self, spec: ToolSpec, arguments: dict[str, Any], call_id: str) -> dict[str, Any]:
        self.calls.append((spec.name, arguments, call_id))
        if self.fail:
            raise ToolFailed("confidence-scoring: KnowledgeBaseUnavailable: down")
        return {"label": "supported", "evidence": []}


def run(
    script: Script, tools: Tools | None = None, recorded: list[Turn] | None = None, **limits: Any
) -> tuple[Any, Any, list[Turn]]:
    recorded = [] if recorded is None else recorded

    def refuse(spec: ToolSpec, call: ToolCall) -> None:
        raise ApprovalRequired(spec, call)

    answer, usage = run_loop(
        config(**limits),
        Verdict,
        CLAIM,
        converse=script,
        call_tool=tools or Tools(),
        record_turn=recorded.append,
        approve=refuse,
    )
    return answer, usage, recorded


def test_a_tool_call_then_a_final_answer() -> None:
    script = Script(turn(tool_use("confidence-scoring", CLAIM)), turn(tool_use("final_answer", VERDICT, "t2")))
    tools = Tools()

    answer, usage, turns = run(script, tools)

    assert answer == Verdict.model_validate(VERDICT)
    assert tools.calls == [("confidence-scoring", CLAIM, "1.0")]
    assert (usage.turns, usage.input_tokens, usage.output_tokens, usage.tool_calls) == (2, 200, 40, 1)
    assert usage.cost_usd == pytest.approx(2 * (0.1 * 0.001 + 0.02 * 0.005))
    # the model is offered the tools plus final_answer (the output schema) and must call one
    first = script.requests[0]
    names = [t["toolSpec"]["name"] for t in first["toolConfig"]["tools"]]
    assert names == ["confidence-scoring", "send-email", "final_answer"]
    assert first["toolConfig"]["toolChoice"] == {"any": {}}
    assert first["toolConfig"]["tools"][-1]["toolSpec"]["inputSchema"]["json"] == Verdict.model_json_schema()
    assert first["inferenceConfig"] == {"maxTokens": 300, "temperature": 0.0, "topP": 1.0}
    # the second request carries the tool's result for the model's tool use
    result = script.requests[1]["messages"][-1]["content"][0]["toolResult"]
    assert result == {"toolUseId": "t1", "content": [{"json": {"label": "supported", "evidence": []}}]}
    assert [(t.number, t.stop_reason, [c.name for c in t.tool_calls]) for t in turns] == [
        (1, "tool_use", ["confidence-scoring"]),
        (2, "tool_use", ["final_answer"]),
    ]


def test_endless_tool_calls_end_at_max_turns() -> None:
    script = Script(*(turn(tool_use("confidence-scoring", CLAIM, f"t{i}")) for i in range(10)))

    with pytest.raises(BudgetExceeded, match="max_turns 4"):
        run(script)
    assert len(script.requests) == 4


def test_output_tokens_past_the_budget_end_the_loop_and_the_turn_is_recorded() -> None:
    script = Script(turn(tool_use("confidence-scoring", CLAIM), tokens=(100, 1200)))

    recorded: list[Turn] = []

    with pytest.raises(BudgetExceeded, match="output tokens 1200 > max_output_tokens 1000"):
        run(script, recorded=recorded)
    assert [t.output_tokens for t in recorded] == [1200]


def test_input_tokens_past_the_budget() -> None:
    script = Script(
        turn(tool_use("confidence-scoring", CLAIM), tokens=(6000, 10)), turn(tool_use("x", {}), tokens=(6000, 10))
    )

    with pytest.raises(BudgetExceeded, match="input tokens 12000 > max_input_tokens 10000"):
        run(script)


def test_cost_past_the_budget() -> None:
    script = Script(turn(tool_use("confidence-scoring", CLAIM), tokens=(9000, 900)))

    with pytest.raises(BudgetExceeded, match=r"cost \$0.013500 > max_cost_usd \$0.01"):
        run(script, max_cost_usd=0.01)


def test_a_turn_asks_for_no_more_output_than_the_budget_has_left() -> None:
    script = Script(
        turn(tool_use("confidence-scoring", CLAIM), tokens=(10, 900)), turn(tool_use("final_answer", VERDICT))
    )

    run(script)

    assert script.requests[1]["inferenceConfig"]["maxTokens"] == 100


def test_an_invalid_final_answer_is_sent_back_then_refused() -> None:
    bad = {**VERDICT, "label": "probably"}
    script = Script(turn(tool_use("final_answer", bad, "a")), turn(tool_use("final_answer", bad, "b")))

    with pytest.raises(ModelError, match="final_answer does not match Verdict: label"):
        run(script)
    # the first invalid answer went back to the model as a tool error
    sent_back = script.requests[1]["messages"][-1]["content"][0]["toolResult"]
    assert sent_back["status"] == "error"
    assert sent_back["toolUseId"] == "a"


def test_an_invalid_answer_corrected_on_retry_is_the_answer() -> None:
    script = Script(turn(tool_use("final_answer", {"claim_id": "c-001"})), turn(tool_use("final_answer", VERDICT)))

    answer, usage, _ = run(script)

    assert answer.label == "supported"
    assert usage.turns == 2


def test_text_instead_of_a_tool_call_is_a_model_error() -> None:
    script = Script(turn({"text": "It is true."}, stop="end_turn"), turn({"text": "Really."}, stop="end_turn"))

    with pytest.raises(ModelError, match="without calling final_answer"):
        run(script)
    assert script.requests[1]["messages"][-1] == {
        "role": "user",
        "content": [{"text": "turn 1 ended (end_turn) without calling final_answer. Call final_answer."}],
    }


def test_a_guardrail_stop_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="guardrail_intervened"):
        run(Script(turn({"text": "blocked"}, stop="guardrail_intervened")))


def test_an_external_action_tool_waits_for_approval_before_it_runs() -> None:
    tools = Tools()
    script = Script(turn(tool_use("send-email", {"to": "x"})))

    with pytest.raises(ApprovalRequired, match="send-email"):
        run(script, tools)
    assert tools.calls == []


def test_only_the_exact_approved_call_passes_the_approval_check() -> None:
    approved = ToolCall("t1", "send-email", {"to": "x"})
    approve = approve_listed([ToolDecision(tool="send-email", args_sha256=approved.input_sha256, decision="approve")])

    assert approve(SEND, approved) is None  # passes: this exact call was approved
    with pytest.raises(ApprovalRequired, match="send-email"):
        approve(SEND, ToolCall("t2", "send-email", {"to": "y"}))  # other arguments: not approved
    with pytest.raises(ApprovalRequired):
        approve_listed([])(SEND, approved)


def test_a_rejected_call_or_one_past_the_approvals_allowed_is_refused_to_the_model() -> None:
    call = ToolCall("t1", "send-email", {"to": "x"})
    rejected = ToolDecision(tool="send-email", args_sha256=call.input_sha256, decision="reject", reason="not now")

    assert "did not approve" in str(approve_listed([rejected])(SEND, call))
    assert "not now" in str(approve_listed([rejected])(SEND, call))
    assert "no more approvals" in str(approve_listed([], may_ask=False)(SEND, call))


def test_a_paused_loop_resumes_where_it_stopped_and_runs_the_approved_call() -> None:
    tools, recorded = Tools(), []
    config_ = config()
    first = Script(turn(tool_use("confidence-scoring", CLAIM, "a"), tool_use("send-email", {"to": "x"}, "b")))
    with pytest.raises(ApprovalRequired) as paused:
        run_loop(
            config_,
            Verdict,
            CLAIM,
            converse=first,
            call_tool=tools,
            record_turn=recorded.append,
            approve=approve_listed([]),
        )
    pause = paused.value.paused
    assert pause is not None
    assert pause.turn == 1
    assert [c.name for c in pause.calls] == ["confidence-scoring", "send-email"]
    assert [c[0] for c in tools.calls] == ["confidence-scoring"]  # the call before the external one ran
    # the checkpoint carries what the loop spent; the conversation goes back in as stored
    checkpoint = Checkpoint.of(pause, [], 1, "0" * 64)
    assert checkpoint.usage.turns == 1
    assert checkpoint.usage.input_tokens == 100
    decided = ToolDecision(tool="send-email", args_sha256=paused.value.call.input_sha256, decision="approve")
    second = Script(turn(tool_use("final_answer", VERDICT)))

    answer, usage = run_loop(
        config_,
        Verdict,
        CLAIM,
        converse=second,
        call_tool=tools,
        record_turn=recorded.append,
        approve=approve_listed([decided]),
        resume=checkpoint.resumed(pause.messages),
    )

    assert answer == Verdict.model_validate(VERDICT)
    assert [c[0] for c in tools.calls] == ["confidence-scoring", "confidence-scoring", "send-email"]
    assert [c[2] for c in tools.calls] == ["1.0", "1.0", "1.1"]  # the same call ids: dispatch answers a replay once
    assert [t.number for t in recorded] == [1, 2]  # turns go on numbering across the pause
    assert (usage.turns, usage.input_tokens) == (2, 200)  # and the budget counts both rounds
    sent = second.requests[0]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert [r["toolResult"]["toolUseId"] for r in sent[-1]["content"]] == ["a", "b"]


def test_a_failed_or_unknown_tool_is_a_tool_error_the_model_sees() -> None:
    script = Script(
        turn(tool_use("confidence-scoring", CLAIM, "a"), tool_use("web-search", {}, "b")),
        turn(tool_use("final_answer", VERDICT)),
    )

    run(script, Tools(fail=True))

    results = [c["toolResult"] for c in script.requests[1]["messages"][-1]["content"]]
    assert [(r["toolUseId"], r["status"]) for r in results] == [("a", "error"), ("b", "error")]
    assert "KnowledgeBaseUnavailable" in results[0]["content"][0]["text"]
    assert "unknown tool 'web-search'" in results[1]["content"][0]["text"]


def test_each_turn_is_a_decision_by_the_model_with_digests_not_content() -> None:
    script = Script(turn(tool_use("confidence-scoring", CLAIM)), turn(tool_use("final_answer", VERDICT)))
    _, _, turns = run(script)
    envelope = Envelope.with_ttl(
        ttl_ms=60_000,
        trace_id="1-00000000-000000000000000000000000",
        causation_id="run-1/VerifyClaim/0",
        correlation_id="run-1",
        capability="fact-check",
        capability_version="1.0.0",
        payload=CLAIM,
    )
    step = Step(envelope=envelope, started=datetime.now(UTC))

    record = turn_record(config(), step, turns[0], finished=datetime.now(UTC))

    assert record.step_key == "run-1/VerifyClaim/0/turn/1"
    assert record.actor == "model:us.anthropic.claude-haiku-4-5-20251001-v1:0"
    summary = record.output()
    assert summary["usage"] == {"input_tokens": 100, "output_tokens": 20}
    assert summary["stop_reason"] == "tool_use"
    assert summary["tool_calls"][0]["name"] == "confidence-scoring"
    assert len(summary["tool_calls"][0]["input_sha256"]) == 64
    assert "Northwind" not in record.output_json + record.input_json  # content is hashed, not stored
    assert summary["prompt_sha256"] == "0" * 64


def test_a_cached_prompt_marks_the_repeated_prefix_and_cache_tokens_are_priced_and_budgeted() -> None:
    cached = config().model_copy(
        update={
            "inference": Inference(max_tokens=300, cache_prompt=True),
            "price": TokenPrice(
                input_per_1k_tokens=0.001,
                output_per_1k_tokens=0.005,
                cache_write_per_1k_tokens=0.00125,
                cache_read_per_1k_tokens=0.0001,
            ),
        }
    )
    answer = turn(tool_use("final_answer", VERDICT), tokens=(100, 20))
    answer["usage"] |= {"cacheReadInputTokens": 4000, "cacheWriteInputTokens": 1000}
    script, recorded = Script(answer), []

    _answer, usage = run_loop(
        cached,
        Verdict,
        CLAIM,
        converse=script,
        call_tool=Tools(),
        record_turn=recorded.append,
        approve=approve_listed([]),
    )

    request = script.requests[0]
    assert request["system"][-1] == {"cachePoint": {"type": "default"}}  # after the prompt
    assert request["toolConfig"]["tools"][-1] == {"cachePoint": {"type": "default"}}  # and after the tools
    [only] = recorded
    # 100 x $0.001 + 20 x $0.005 + 1,000 x $0.00125 + 4,000 x $0.0001 (per 1,000)
    assert only.cost_usd == pytest.approx(0.0001 + 0.0001 + 0.00125 + 0.0004)
    assert only.summary()["usage"] == {
        "input_tokens": 100,
        "output_tokens": 20,
        "cache_read_tokens": 4000,
        "cache_write_tokens": 1000,
    }
    assert usage.metrics()["cache_read_tokens"] == 4000
    # cached input is input the model read: the budget counts it
    assert usage.crossed(cached.limits.model_copy(update={"max_input_tokens": 5000})) == (
        "input tokens 5100 > max_input_tokens 5000"
    )


def test_without_a_cached_prompt_the_request_has_no_cache_point() -> None:
    script = Script(turn(tool_use("final_answer", VERDICT)))
    run(script)

    request = script.requests[0]
    assert all("cachePoint" not in block for block in request["system"])
    assert all("cachePoint" not in tool for tool in request["toolConfig"]["tools"])
