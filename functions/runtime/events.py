"""Choreography: turn an EventBridge event into the envelope an event-driven agent step runs on."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from functions.runtime.errors import BadInput


def envelope_from_event(
    event: Mapping[str, Any], *, capability: str, version: str, ttl_ms: int, now: datetime
) -> dict[str, Any]:
    """The event's detail is the payload; the run it came from stays the correlation id."""
    detail = event.get("detail")
    if not isinstance(detail, Mapping) or "trace_id" not in detail or "execution_id" not in detail:
        raise BadInput("event detail must be an object carrying trace_id and execution_id")
    return {
        "trace_id": detail["trace_id"],
        "correlation_id": detail["execution_id"],
        # One step per capability and event; the step's name is the part before "#".
        "causation_id": f"{detail['execution_id']}/{capability}#{event.get('id', 'unknown-event')}",
        "capability": capability,
        "capability_version": version,
        "deadline": (now + timedelta(milliseconds=ttl_ms)).isoformat(),
        "payload": dict(detail),
        **({"traceparent": detail["traceparent"]} if isinstance(detail.get("traceparent"), str) else {}),
    }
