"""An llm agent's loop function: one per ``kind: llm`` contract, configured by the ``agent.json`` synth stages.

Thin: each turn through the model's adapter (Bedrock Converse, or a self-hosted model's SageMaker endpoint:
``adapters.py``), tools through the dispatcher function, every turn a decision record and its content in the
documents bucket under the digests the record holds; each turn its own span.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from contracts.capability import THROTTLE_METRIC
from contracts.envelope import Envelope
from contracts.validation import first_error
from functions.llm_agent.adapters import conversations, converse, dispatch
from functions.llm_agent.loop import (
    AgentConfig,
    ApprovalRequired,
    ThrottlingException,
    ToolSpec,
    Turn,
    approve_listed,
    run_loop,
)
from functions.llm_agent.service import (
    LoopRound,
    PendingCall,
    keep_turn,
    pause,
    resume,
    tool_causation,
    turn_record,
    turn_step_key,
)
from functions.runtime import Agent, Step, tracing
from functions.runtime.agent import utcnow
from functions.runtime.decisions import step_name
from functions.runtime.errors import BadInput

# Synth stages agent.json beside this file; LLM_AGENT_CONFIG points elsewhere (tests).
CONFIG_PATH = Path(os.environ.get("LLM_AGENT_CONFIG") or Path(__file__).parent / "agent.json")

config = AgentConfig.model_validate_json(CONFIG_PATH.read_text(encoding="utf-8"))
output_model = config.payload_model(config.output_model)
agent = Agent.from_environment(input_model=config.payload_model(config.input_model), output_model=output_model)


def model_caller(step: Step) -> Any:
    """Converse, each turn its own span (X-Ray shows every turn: model, tokens, stop reason)."""
    envelope = step.envelope
    name = step_name(envelope.causation_id, envelope.correlation_id)
    turns = itertools.count(1)

    def call(request: dict[str, Any]) -> dict[str, Any]:
        attributes = tracing.hop_attributes(
            "model",
            step=turn_step_key(name, next(turns)),
            agent=config.name,
            version=config.version,
            capability=envelope.capability,
            trace_id=envelope.trace_id,
            execution_id=envelope.correlation_id,
            other={"agentplane.model": config.model_id},
        )
        with tracing.span(f"converse {config.model_id}", attributes, trace_id=envelope.trace_id) as span:
            response = converse(config, request)
            usage = response.get("usage") or {}
            span.set_attribute("agentplane.stop_reason", str(response.get("stopReason", "")))
            span.set_attribute("agentplane.input_tokens", int(usage.get("inputTokens", 0)))
            span.set_attribute("agentplane.output_tokens", int(usage.get("outputTokens", 0)))
        return response

    return call


def tool_caller(envelope: Envelope) -> Any:
    def call(spec: ToolSpec, arguments: dict[str, Any], call_id: str) -> dict[str, Any]:
        child = envelope.child(
            causation_id=tool_causation(envelope.causation_id, call_id),
            capability=spec.name,
            capability_version=spec.capability_version,
            payload=arguments,
        )
        traceparent = tracing.current_traceparent()
        if traceparent is not None:  # the tool's dispatch and its work hang under this step in the trace
            child = child.model_copy(update={"traceparent": traceparent})
        return dispatch(spec, child)

    return call


def record(step: Step, turn: Turn) -> None:
    """The turn's content in the documents bucket, then its record on the ledger (which holds the digests)."""
    keep_turn(conversations(), turn)
    agent.store.put(turn_record(config, step, turn, finished=utcnow()))


def service_for(loop: LoopRound | None, pending: list[PendingCall]) -> Any:
    """The loop as a step's service: a dispatched call (``loop`` None) cannot pause, so an external action it asks
    for fails the step; an agent step's round pauses instead (``pending`` gets the waiting call)."""

    def service(request: Any, step: Step) -> Any:
        paused, decisions, asked = (None, [], 0) if loop is None else resume(config, loop, conversations())
        may_ask = loop is None or asked < loop.max_approvals
        try:
            answer, usage = run_loop(
                config,
                output_model,
                request.model_dump(mode="json"),
                converse=model_caller(step),
                call_tool=tool_caller(step.envelope),
                record_turn=lambda turn: record(step, turn),
                approve=approve_listed(decisions, may_ask=may_ask),
                resume=paused,
            )
        except ApprovalRequired as waiting:
            if loop is not None:
                pending.append(pause(config, waiting, decisions, asked + 1, conversations()))
            raise
        measured.update(usage.metrics())
        return answer

    return service


measured: dict[str, float] = {}


@agent.logger.inject_lambda_context
@agent.metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """A dispatched call answers the output; an agent step's round (``loop`` in the event) answers
    ``{"answer": ...}`` or ``{"pending": ...}``: a call for a person to decide, and the checkpoint to resume."""
    measured.clear()
    try:
        return handle(event)
    except ThrottlingException:
        # The model's quota, not the agent, refused the step: its own alarm tells the two apart.
        agent.metrics.add_metric(name=THROTTLE_METRIC, unit=MetricUnit.Count, value=1)
        raise


def handle(event: dict[str, Any]) -> dict[str, Any]:
    if "loop" not in event:
        return agent.run(event, service_for(None, []), lambda _answer: dict(measured))
    event = dict(event)
    try:
        loop = LoopRound.model_validate(event.pop("loop"))
    except ValidationError as exc:
        raise BadInput(f"loop {first_error(exc)}") from None
    pending: list[PendingCall] = []
    try:
        answer = agent.run(event, service_for(loop, pending), lambda _answer: dict(measured))
    except ApprovalRequired:
        if not pending:
            raise
        return {"pending": pending[0].model_dump(mode="json")}
    return {"answer": answer}
