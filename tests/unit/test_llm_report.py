"""What a run's llm agents did, read from its decision records: only turn records count."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.llm_report import lines, summarize, turns

pytestmark = pytest.mark.unit

MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"


def turn_record(step: str, n: int, *, tools: list[str], tokens: tuple[int, int]) -> dict[str, Any]:
    turn = {
        "model_id": MODEL,
        "usage": {"input_tokens": tokens[0], "output_tokens": tokens[1]},
        "cost_usd": 0.001,
        "tool_calls": [{"name": name, "input_sha256": "0" * 64} for name in tools],
        "served_by": "local stand-in",
    }
    return {
        "agent": "fact-checker-llm",
        "step_key": f"run/{step}/turn/{n}",
        "actor": f"model:{MODEL}",
        "output_json": json.dumps(turn),
    }


RECORDS = [
    {"agent": "fact-checker-llm", "step_key": "run/VerifyClaim/0", "actor": "fact-checker-llm", "output_json": "{}"},
    turn_record("VerifyClaim/0", 1, tools=["confidence-scoring"], tokens=(1000, 100)),
    turn_record("VerifyClaim/0", 2, tools=["final_answer"], tokens=(1200, 80)),
    turn_record("VerifyClaim/1", 1, tools=["final_answer"], tokens=(900, 70)),
]


def test_only_turn_records_are_turns() -> None:
    assert [record["step_key"] for record, _ in turns(RECORDS)] == [r["step_key"] for r in RECORDS[1:]]


def test_an_agents_turns_tool_calls_and_tokens_are_summed_over_its_steps() -> None:
    [agent] = summarize(RECORDS).values()

    assert (agent.agent, agent.steps) == ("fact-checker-llm", {"run/VerifyClaim/0", "run/VerifyClaim/1"})
    assert (agent.turns, agent.tool_calls) == (3, 1)  # the final answer is not a tool call
    assert (agent.input_tokens, agent.output_tokens) == (3100, 250)
    assert agent.cost_usd == pytest.approx(0.003)
    [line] = lines(summarize(RECORDS))
    assert "2 step(s), 3 turns, 1 tool calls, 3,100 input + 250 output tokens" in line
    assert line.endswith("answered by the local stand-in")
