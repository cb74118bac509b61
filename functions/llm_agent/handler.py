"""An llm agent's loop function: one per ``kind: llm`` contract, configured by the ``agent.json`` synth stages.

Thin: Converse through boto3's ``bedrock-runtime`` client (``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` points it at
the local plane's stand-in), or the same turn as a chat completion from a self-hosted model's SageMaker endpoint
(``chat.py`` translates), tools through the dispatcher function, every turn a decision record and its content
in the documents bucket under the digests the record holds.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from contracts.capability import MODEL_ENDPOINT_ENV, THROTTLE_METRIC
from contracts.envelope import Envelope
from contracts.models import ChatCompletion
from contracts.validation import first_error
from functions.llm_agent.chat import ChatTranslationError, chat_request, converse_response
from functions.llm_agent.loop import (
    AgentConfig,
    ApprovalRequired,
    ModelError,
    ThrottlingException,
    ToolFailed,
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
from functions.runtime.adapters import client
from functions.runtime.agent import utcnow
from functions.runtime.decisions import step_name
from functions.runtime.documents import DocumentStore
from functions.runtime.errors import BadInput

# Synth stages agent.json beside this file; LLM_AGENT_CONFIG points elsewhere (tests).
CONFIG_PATH = Path(os.environ.get("LLM_AGENT_CONFIG") or Path(__file__).parent / "agent.json")
# Bedrock's and SageMaker's answers that mean "not now": another implementation should take the step.
THROTTLED = frozenset(
    {"ThrottlingException", "ServiceUnavailableException", "ServiceUnavailable", "ModelNotReadyException"}
)

config = AgentConfig.model_validate_json(CONFIG_PATH.read_text(encoding="utf-8"))
output_model = config.payload_model(config.output_model)
agent = Agent.from_environment(input_model=config.payload_model(config.input_model), output_model=output_model)


@cache
def bedrock() -> Any:
    return client("bedrock-runtime")


@cache
def sagemaker() -> Any:
    return client("sagemaker-runtime")


def converse(request: dict[str, Any]) -> dict[str, Any]:
    """One turn: Bedrock Converse, or the same turn asked of the self-hosted model's endpoint."""
    if config.provider == "sagemaker":
        return invoke_endpoint(request)
    with model_errors():
        response: dict[str, Any] = bedrock().converse(**request)
    response.pop("ResponseMetadata", None)
    return response


def invoke_endpoint(request: dict[str, Any]) -> dict[str, Any]:
    try:
        body = chat_request(request, config.model_id).model_dump_json(exclude_none=True)
    except ChatTranslationError as error:
        raise ModelError(f"the request cannot be asked of {config.model_id}: {error}") from None
    started = time.perf_counter()
    with model_errors():
        answer = sagemaker().invoke_endpoint(
            EndpointName=os.environ[MODEL_ENDPOINT_ENV],
            ContentType="application/json",
            Accept="application/json",
            Body=body,
        )
        raw = answer["Body"].read()
    latency_ms = (time.perf_counter() - started) * 1000
    try:
        return converse_response(ChatCompletion.model_validate_json(raw), latency_ms)
    except ValidationError as error:
        raise ModelError(f"{config.model_id} answered no chat completion: {first_error(error)}"[:500]) from None
    except ChatTranslationError as error:
        raise ModelError(f"{config.model_id} answered a malformed turn: {error}"[:500]) from None


@contextmanager
def model_errors() -> Iterator[None]:
    """A refused or failed model call as the loop's error: throttled (another implementation should take the
    step) or the model's fault."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as error:
        code = str(error.response["Error"]["Code"])
        message = f"{code}: {error.response['Error'].get('Message', '')}"[:500]
        raise (ThrottlingException if code in THROTTLED else ModelError)(message) from None
    except BotoCoreError as error:
        raise ModelError(f"{type(error).__name__}: {error}"[:500]) from None


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
            response = converse(request)
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
        event = {"accept": spec.accept, "envelope": child.model_dump(mode="json")}
        response = client("lambda").invoke(FunctionName=os.environ["DISPATCHER_FUNCTION"], Payload=json.dumps(event))
        payload = json.loads(response["Payload"].read() or b"null")
        if "FunctionError" in response or not isinstance(payload, dict):
            body = payload if isinstance(payload, dict) else {}
            raise ToolFailed(f"{spec.name}: {body.get('errorType', 'Unhandled')}: {body.get('errorMessage', '')}")
        return payload

    return call


@cache
def conversations() -> DocumentStore:
    from functions.runtime.adapters import S3DocumentStore

    return S3DocumentStore(os.environ["DOCUMENTS_BUCKET"])


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
