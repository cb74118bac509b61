"""An llm agent's turns on the ledger: one decision record per model turn, beside the step's own record."""

from __future__ import annotations

from datetime import datetime, timedelta

from functions.llm_agent.loop import AgentConfig, Turn
from functions.runtime import Step
from functions.runtime.agent import executed_version
from functions.runtime.canonical import canonical_json, sha256_hex
from functions.runtime.decisions import DecisionRecord


def turn_step_key(causation_id: str, number: int) -> str:
    """Under the step's own key (``VerifyClaim/0/turn/1``): the turns list with their step, never colliding."""
    return f"{causation_id}/turn/{number}"


def tool_causation(causation_id: str, call_id: str) -> str:
    """The causation of a tool call (``VerifyClaim/0/tool/1.0``: turn 1, first call), its decision's step key."""
    return f"{causation_id}/tool/{call_id}"


def turn_record(config: AgentConfig, step: Step, turn: Turn, *, finished: datetime) -> DecisionRecord:
    """Who decided is the model (``model:<id>``), so a turn never counts as a call of the implementation.

    Content is hashed: the record holds the digests of what the model was sent and answered, not the text.
    """
    envelope = step.envelope
    input_json = canonical_json(
        {"turn": turn.number, "prompt_sha256": turn.prompt_sha256, "messages_sha256": turn.request_sha256}
    )
    output_json = canonical_json(turn.summary())
    return DecisionRecord(
        correlation_id=envelope.correlation_id,
        step_key=turn_step_key(envelope.causation_id, turn.number),
        trace_id=envelope.trace_id,
        causation_id=envelope.causation_id,
        agent=config.name,
        agent_version=config.version,
        capability=envelope.capability,
        capability_version=envelope.capability_version,
        status="SUCCEEDED",
        actor=f"model:{turn.model_id}",
        input_json=input_json,
        input_sha256=sha256_hex(input_json.encode()),
        output_json=output_json,
        output_sha256=sha256_hex(output_json.encode()),
        route_json=None,
        function_version=executed_version(),
        started_at=finished - timedelta(milliseconds=turn.latency_ms),
        finished_at=finished,
        duration_ms=turn.latency_ms,
    )
