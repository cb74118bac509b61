"""Reaching a SageMaker endpoint for one agent step: trace ids, the deadline, sticky sessions, typed errors.

Pure: the runtime client is passed in (boto3's ``sagemaker-runtime`` in the handler, a fake in tests). The
error names are what the workflow's Catch matches to follow the contract's fallback: ``EndpointThrottled``,
``ModelError`` and ``EndpointUnavailable`` fall back; ``DeadlineExceeded`` and ``BadInput`` do not.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from contracts.envelope import Envelope
from functions.runtime.errors import AgentError, DeadlineExceeded

CONTENT_TYPE = "application/json"
NEW_SESSION = "NEW_SESSION"
MAX_ATTRIBUTES = 1024  # SageMaker's limit on CustomAttributes
THROTTLED_CODES = frozenset({"ThrottlingException"})
UNAVAILABLE_CODES = frozenset(
    {
        "ServiceUnavailable",
        "InternalFailure",
        "InternalDependencyException",
        "ModelNotReadyException",
        "ValidationError",
    }
)


class EndpointThrottled(AgentError):
    """The endpoint (or the container's queue) refused the request for load: the fallback serves it."""


class ModelError(AgentError):
    """The container answered with an error, or with something that is not the contract's output."""


class EndpointUnavailable(AgentError):
    """The endpoint could not be reached, was not ready, or did not answer in time."""


class RuntimeClient(Protocol):
    def invoke_endpoint(self, **params: Any) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Endpoint:
    name: str
    stateful: bool = False
    timeout_s: float = 60.0
    """The most an invocation may take whatever the deadline says (SageMaker's own limit is 60 s)."""


@dataclass
class Sessions:
    """Sticky sessions: the session id a run's first call got back, reused by the run's later calls here."""

    limit: int = 1024
    _ids: OrderedDict[str, str] = field(default_factory=OrderedDict)

    def for_run(self, correlation_id: str) -> str:
        return self._ids.get(correlation_id, NEW_SESSION)

    def remember(self, correlation_id: str, response: Mapping[str, Any]) -> None:
        new = response.get("NewSessionId")
        if isinstance(new, str) and new:
            self._ids[correlation_id] = new.split(";", 1)[0].strip()
            self._ids.move_to_end(correlation_id)
            while len(self._ids) > self.limit:
                self._ids.popitem(last=False)


def custom_attributes(envelope: Envelope) -> str:
    """``key=value;...`` for the container: trace ids (logged with its batches) and the deadline (epoch ms)."""
    parts = [
        f"trace_id={envelope.trace_id}",
        f"deadline={int(envelope.deadline.timestamp() * 1000)}",
        f"correlation_id={envelope.correlation_id}",
        f"causation_id={envelope.causation_id}",
    ]
    if envelope.traceparent:
        parts.insert(1, f"traceparent={envelope.traceparent}")
    text = ""
    for part in parts:  # the trace id and the deadline always fit; what does not fit is left out whole
        candidate = f"{text};{part}" if text else part
        if len(candidate) > MAX_ATTRIBUTES or not candidate.isascii():
            continue
        text = candidate
    return text


def timeout_s(envelope: Envelope, endpoint: Endpoint, now: datetime) -> float:
    """Seconds this call may take: what is left of the deadline, never more than the endpoint's limit."""
    remaining = (envelope.deadline - now).total_seconds()
    if remaining <= 0:
        raise DeadlineExceeded(f"deadline {envelope.deadline.isoformat()} passed before the endpoint was called")
    return min(remaining, endpoint.timeout_s)


def classify(code: str, message: str, original_status: int | None = None) -> AgentError:
    """A typed error from SageMaker's error code (and, for ModelError, the container's own status)."""
    if code in THROTTLED_CODES or original_status == 429:
        return EndpointThrottled(f"{code}: {message}")
    if code == "ModelError" and original_status == 504:
        return DeadlineExceeded(f"the endpoint refused stale work: {message}")
    if code == "ModelError":
        return ModelError(f"container answered {original_status}: {message}")
    if code in UNAVAILABLE_CODES:
        return EndpointUnavailable(f"{code}: {message}")
    return EndpointUnavailable(f"{code or 'error'}: {message}")


def invoke(
    client_for: Callable[[float], RuntimeClient],
    endpoint: Endpoint,
    request: BaseModel,
    output_model: type[BaseModel],
    envelope: Envelope,
    *,
    now: datetime,
    sessions: Sessions | None = None,
) -> BaseModel:
    """Call the endpoint with the request as JSON; return its answer parsed as the contract's output.

    ``client_for(seconds)`` gives a client whose read timeout is that budget (see :func:`timeout_s`).
    Errors raised by the client must already be typed (the handler maps boto3's with :func:`classify`).
    """
    budget = timeout_s(envelope, endpoint, now)
    params: dict[str, Any] = {
        "EndpointName": endpoint.name,
        "ContentType": CONTENT_TYPE,
        "Accept": CONTENT_TYPE,
        "Body": request.model_dump_json().encode(),
        "CustomAttributes": custom_attributes(envelope),
    }
    if endpoint.stateful and sessions is not None:
        params["SessionId"] = sessions.for_run(envelope.correlation_id)
    response = client_for(budget).invoke_endpoint(**params)
    if endpoint.stateful and sessions is not None:
        sessions.remember(envelope.correlation_id, response)
    body = response["Body"]
    raw = body.read() if hasattr(body, "read") else body
    try:
        return output_model.model_validate_json(raw)
    except ValidationError as exc:
        raise ModelError(f"the endpoint's answer is not a {output_model.__name__}: {exc.errors()[0]['msg']}") from None


def client_timeout_bucket(seconds: float) -> int:
    """Whole seconds, rounded up: clients are cached per bucket so a warm invoker builds only a few."""
    return max(1, math.ceil(seconds))
