"""Dispatcher: a step that asks for a capability gets a healthy, compatible implementation (or its fallback)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from functions.dispatcher.service import ImplementationFailed, dispatch, parse
from functions.runtime import tracing
from functions.runtime.aws import client, table
from functions.runtime.decisions import DynamoDecisionStore
from functions.runtime.registry import DynamoRegistry
from functions.runtime.routing import Breaker

logger = Logger(service="dispatcher")
breaker = Breaker(
    consecutive_failures=int(os.environ.get("CIRCUIT_CONSECUTIVE_FAILURES", "3")),
    error_rate=float(os.environ.get("CIRCUIT_ERROR_RATE", "0.5")),
    min_samples=int(os.environ.get("CIRCUIT_MIN_SAMPLES", "10")),
    cool_down_s=float(os.environ.get("CIRCUIT_COOL_DOWN_S", "30")),
)


@cache  # made on the first claim, not at import (boto3 is most of a cold start); kept while warm
def registry() -> DynamoRegistry:
    return DynamoRegistry(table(os.environ["REGISTRY_TABLE"]))


@cache
def decisions() -> DynamoDecisionStore:
    return DynamoDecisionStore(table(os.environ["DECISIONS_TABLE"]))


def utcnow() -> datetime:
    return datetime.now(UTC)


def invoke(target: str, event: dict[str, Any]) -> dict[str, Any]:
    """One synchronous call; an error answer, a throttle or a timeout is the implementation's failure."""
    traceparent = tracing.current_traceparent()
    if traceparent is not None:  # the implementation's work hangs under this dispatch in the trace
        event = {**event, "traceparent": traceparent}
    try:
        response = client("lambda").invoke(FunctionName=target, Payload=json.dumps(event).encode())
    except (ClientError, BotoCoreError) as error:
        code = error.response["Error"]["Code"] if isinstance(error, ClientError) else type(error).__name__
        raise ImplementationFailed(code, str(error)) from None
    payload = json.loads(response["Payload"].read() or b"null")
    if "FunctionError" in response:
        body = payload if isinstance(payload, dict) else {}
        raise ImplementationFailed(str(body.get("errorType", "Unhandled")), str(body.get("errorMessage", ""))[:500])
    if not isinstance(payload, dict):
        raise ImplementationFailed("BadOutput", f"{target} answered {type(payload).__name__}, not an object")
    return payload


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse(event)
    logger.append_keys(
        trace_id=request.envelope.trace_id,
        correlation_id=request.envelope.correlation_id,
        causation_id=request.envelope.causation_id,
        capability=request.envelope.capability,
    )
    envelope = request.envelope
    attributes = tracing.hop_attributes(
        "dispatch",
        capability=envelope.capability,
        trace_id=envelope.trace_id,
        execution_id=envelope.correlation_id,
        causation_id=envelope.causation_id,
    )
    with tracing.span(f"dispatch {envelope.capability} {request.accept}", attributes, trace_id=envelope.trace_id):
        return dispatch(
            request, registry=registry(), invoke=invoke, decisions=decisions(), clock=utcnow, breaker=breaker
        )
