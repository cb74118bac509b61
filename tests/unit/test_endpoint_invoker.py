"""The endpoint invoker's service: what it sends (trace ids, deadline, sessions) and how errors are named."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts.envelope import Envelope
from contracts.models import Claim, SummarizeRequest, Summary
from functions.endpoint_invoker.service import (
    NEW_SESSION,
    Endpoint,
    EndpointThrottled,
    EndpointUnavailable,
    ModelError,
    Sessions,
    classify,
    client_timeout_bucket,
    custom_attributes,
    invoke,
)
from functions.runtime.errors import DeadlineExceeded

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
TRACE = "1-5f84c7a1-0123456789abcdef01234567"
REQUEST = SummarizeRequest(title="memo", claims=[Claim(claim_id="c-001", text="A claim here.", sentence_index=0)])
ANSWER = Summary(summary="A claim here.", claims=REQUEST.claims, salience=[], model="lexrank.onnx@0")


def envelope(deadline_in: timedelta = timedelta(seconds=30), **extra: Any) -> Envelope:
    return Envelope(
        trace_id=TRACE,
        causation_id="run-1/SummarizeDocument",
        correlation_id="run-1",
        capability="summarization",
        capability_version="1.0.0",
        payload=REQUEST.model_dump(mode="json"),
        deadline=NOW + deadline_in,
        **extra,
    )


class FakeRuntime:
    def __init__(self, answer: dict[str, Any] | Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.timeouts: list[float] = []
        self.answer = answer

    def client_for(self, seconds: float) -> FakeRuntime:
        self.timeouts.append(seconds)
        return self

    def invoke_endpoint(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer or {"Body": io.BytesIO(ANSWER.model_dump_json().encode())}


def test_the_request_carries_the_body_trace_ids_and_deadline() -> None:
    runtime = FakeRuntime()
    result = invoke(runtime.client_for, Endpoint("summarizer-ep"), REQUEST, Summary, envelope(), now=NOW)
    assert result == ANSWER
    (call,) = runtime.calls
    assert call["EndpointName"] == "summarizer-ep"
    assert call["ContentType"] == call["Accept"] == "application/json"
    assert SummarizeRequest.model_validate_json(call["Body"]) == REQUEST
    attributes = dict(part.split("=", 1) for part in call["CustomAttributes"].split(";"))
    assert attributes["trace_id"] == TRACE
    assert attributes["correlation_id"] == "run-1"
    assert int(attributes["deadline"]) == int((NOW + timedelta(seconds=30)).timestamp() * 1000)
    assert "SessionId" not in call  # not a stateful agent


def test_the_call_gets_what_is_left_of_the_deadline_but_never_more_than_the_endpoint_limit() -> None:
    runtime = FakeRuntime()
    endpoint = Endpoint("ep", timeout_s=2.0)
    invoke(runtime.client_for, endpoint, REQUEST, Summary, envelope(timedelta(seconds=30)), now=NOW)
    invoke(runtime.client_for, endpoint, REQUEST, Summary, envelope(timedelta(seconds=0.5)), now=NOW)
    assert runtime.timeouts == [2.0, 0.5]
    assert client_timeout_bucket(0.5) == 1
    assert client_timeout_bucket(2.01) == 3


def test_a_passed_deadline_is_refused_before_calling() -> None:
    runtime = FakeRuntime()
    with pytest.raises(DeadlineExceeded):
        invoke(runtime.client_for, Endpoint("ep"), REQUEST, Summary, envelope(timedelta(seconds=-1)), now=NOW)
    assert runtime.calls == []


def test_stateful_agents_stick_to_their_session_within_a_run() -> None:
    runtime = FakeRuntime(
        {"Body": ANSWER.model_dump_json().encode(), "NewSessionId": "abc123; Expires=2026-11-24T13:00:00Z"}
    )
    sessions = Sessions()
    endpoint = Endpoint("ep", stateful=True)
    invoke(runtime.client_for, endpoint, REQUEST, Summary, envelope(), now=NOW, sessions=sessions)
    runtime.answer = {"Body": ANSWER.model_dump_json().encode()}
    invoke(runtime.client_for, endpoint, REQUEST, Summary, envelope(), now=NOW, sessions=sessions)
    assert [call["SessionId"] for call in runtime.calls] == [NEW_SESSION, "abc123"]
    assert sessions.for_run("another-run") == NEW_SESSION


def test_an_answer_that_is_not_the_contract_output_is_a_model_error() -> None:
    runtime = FakeRuntime({"Body": b'{"summary": "no claims"}'})
    with pytest.raises(ModelError, match="not a Summary"):
        invoke(runtime.client_for, Endpoint("ep"), REQUEST, Summary, envelope(), now=NOW)


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ThrottlingException", None, EndpointThrottled),
        ("ModelError", 429, EndpointThrottled),
        ("ModelError", 500, ModelError),
        ("ModelError", 504, DeadlineExceeded),
        ("ModelNotReadyException", None, EndpointUnavailable),
        ("ValidationError", None, EndpointUnavailable),
        ("ReadTimeoutError", None, EndpointUnavailable),
    ],
)
def test_errors_are_named_for_the_workflow_catch(code: str, status: int | None, expected: type[Exception]) -> None:
    error = classify(code, "message", status)
    assert type(error) is expected


def test_custom_attributes_stay_within_sagemaker_limits() -> None:
    long = envelope(traceparent="00-0123456789abcdef0123456789abcdef-0123456789abcdef-01")
    text = custom_attributes(long.model_copy(update={"causation_id": "x" * 2000}))
    assert len(text) <= 1024
    assert text.startswith(f"trace_id={TRACE};traceparent=00-")
    assert "causation_id" not in text  # what does not fit is left out whole
