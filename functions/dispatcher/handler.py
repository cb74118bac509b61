"""Dispatcher: a step that asks for a capability gets a healthy, compatible implementation (or its fallback)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.dispatcher.adapters import decisions, invoke, registry
from functions.dispatcher.service import dispatch, parse
from functions.runtime import tracing
from functions.runtime.routing import Breaker

logger = Logger(service="dispatcher")
breaker = Breaker(
    consecutive_failures=int(os.environ.get("CIRCUIT_CONSECUTIVE_FAILURES", "3")),
    error_rate=float(os.environ.get("CIRCUIT_ERROR_RATE", "0.5")),
    min_samples=int(os.environ.get("CIRCUIT_MIN_SAMPLES", "10")),
    cool_down_s=float(os.environ.get("CIRCUIT_COOL_DOWN_S", "30")),
)


def utcnow() -> datetime:
    return datetime.now(UTC)


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
