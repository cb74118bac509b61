"""The tracing seam: X-Ray-compatible ids, where a span hangs, propagation helpers, export to an OTLP receiver."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from contracts.envelope import TRACE_ID_PATTERN
from functions.runtime import tracing
from infra.local.otlp import OtlpReceiver, SpanStore

pytestmark = pytest.mark.unit

TRACE_ID = "1-6745a1b2-5e0c3d9a7b1f42e68c0d9a31"
TRACEPARENT = "00-6745a1b25e0c3d9a7b1f42e68c0d9a31-00f067aa0ba902b7-01"


def test_xray_and_w3c_trace_ids_are_the_same_128_bits() -> None:
    assert tracing.xray_trace_id(tracing.otel_trace_id(TRACE_ID)) == TRACE_ID
    assert tracing.trace_id_from_traceparent(TRACEPARENT) == TRACE_ID
    assert tracing.trace_id_from_traceparent("00-zz-00f067aa0ba902b7-01") is None
    assert tracing.trace_id_from_traceparent("00-" + "0" * 32 + "-00f067aa0ba902b7-01") is None
    with pytest.raises(ValueError, match="not an X-Ray trace id"):
        tracing.otel_trace_id("abc")


def parent_of(context: object) -> SpanContext:
    span = trace.get_current_span(context)  # type: ignore[arg-type]
    return span.get_span_context()


def test_a_span_hangs_under_the_lambda_segment_of_its_trace_else_the_callers_traceparent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN Lambda's segment header for the same trace
    monkeypatch.setenv(tracing.LAMBDA_TRACE_ENV, f"Root={TRACE_ID};Parent=1111111111111111;Sampled=1")
    assert parent_of(tracing.parent_context(trace_id=TRACE_ID, traceparent=TRACEPARENT)).span_id == 0x1111111111111111

    # WHEN the segment belongs to another trace, the envelope's traceparent wins
    monkeypatch.setenv(tracing.LAMBDA_TRACE_ENV, "Root=1-00000000-000000000000000000000001;Parent=1111111111111111")
    assert parent_of(tracing.parent_context(trace_id=TRACE_ID, traceparent=TRACEPARENT)).span_id == 0x00F067AA0BA902B7

    # AND with neither, the span still joins the trace
    monkeypatch.delenv(tracing.LAMBDA_TRACE_ENV)
    orphan = parent_of(tracing.parent_context(trace_id=TRACE_ID))
    assert tracing.xray_trace_id(orphan.trace_id) == TRACE_ID


def test_sagemaker_custom_attributes_carry_the_traceparent_both_ways() -> None:
    context = SpanContext(tracing.otel_trace_id(TRACE_ID), 0x1234, is_remote=False, trace_flags=TraceFlags(1))
    with trace.use_span(NonRecordingSpan(context)):
        value = tracing.sagemaker_custom_attributes("tenant=a;traceparent=00-old")
        headers = tracing.current_headers()

    assert value is not None
    assert value.startswith("tenant=a;traceparent=00-6745a1b2")
    assert tracing.traceparent_from_custom_attributes(value) == headers["traceparent"]
    assert headers["X-Amzn-Trace-Id"] == f"Root={TRACE_ID};Parent=0000000000001234;Sampled=1"
    assert tracing.traceparent_from_custom_attributes("tenant=a") is None


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    running = OtlpReceiver(SpanStore()).start()
    try:
        yield running
    finally:
        tracing.shutdown()
        running.stop()


def test_spans_reach_the_otlp_receiver_with_x_ray_ids_parents_and_annotations(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the exporter endpoint set as the local plane (or the ADOT layer) sets it
    monkeypatch.setenv(tracing.ENDPOINT_ENV, receiver.endpoint)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "risk-scorer")

    # WHEN a step's span runs under the caller's traceparent and fails
    with (
        pytest.raises(KeyError),
        tracing.span(
            "ScoreRisk", {"agentplane.capability": "risk-scoring"}, trace_id=TRACE_ID, traceparent=TRACEPARENT
        ),
    ):
        raise KeyError("policy")

    # THEN the receiver holds it in the same trace, under the caller, with its status and indexed attributes
    [span] = receiver.store.trace(TRACE_ID)
    assert span["parent_id"] == "00f067aa0ba902b7"
    assert (span["name"], span["service"], span["status"]) == ("ScoreRisk", "risk-scorer", "error")
    assert span["attributes"]["agentplane.error_type"] == "KeyError"
    assert span["attributes"]["aws.xray.annotations"] == ["agentplane.capability"]
    assert int(span["span_id"], 16) != 0


def test_without_an_endpoint_spans_cost_nothing_and_export_nothing(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(tracing.ENDPOINT_ENV, raising=False)
    with tracing.span("quiet", {}, trace_id=TRACE_ID) as span:
        assert not span.is_recording()
    assert receiver.store.trace(TRACE_ID) == []


def test_spans_are_exported_together_once_the_outermost_span_ends(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(tracing.ENDPOINT_ENV, receiver.endpoint)
    exports: list[int] = []
    add = receiver.store.add
    monkeypatch.setattr(receiver.store, "add", lambda spans: (exports.append(len(spans)), add(spans))[1])

    # WHEN a step's span holds two ended children
    with tracing.span("step", {}, trace_id=TRACE_ID):
        for child in ("read", "write"):
            with tracing.span(child, {}, trace_id=TRACE_ID):
                pass
        # THEN nothing has been sent while the step still runs
        assert receiver.store.trace(TRACE_ID) == []

    # AND all three reach the receiver in one export, before control comes back
    assert exports == [3]
    assert sorted(s["name"] for s in receiver.store.trace(TRACE_ID)) == ["read", "step", "write"]


def test_new_trace_ids_are_x_ray_ids_of_their_second_and_traceparents_join_them() -> None:
    # GIVEN a moment
    now = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)

    # WHEN two trace ids are minted in it
    first, second = tracing.new_trace_id(now), tracing.new_trace_id(now)

    # THEN both are X-Ray ids stamped with that second, and they differ in their random part
    assert re.fullmatch(TRACE_ID_PATTERN, first)
    assert first.startswith(f"1-{int(now.timestamp()):08x}-")
    assert first != second
    # AND a new traceparent for a trace is a valid, sampled context in that trace
    traceparent = tracing.new_traceparent(first)
    assert tracing.trace_id_from_traceparent(traceparent) == first
    assert traceparent.endswith("-01")


def test_hop_attributes_name_the_hop_and_leave_out_what_is_unknown() -> None:
    # WHEN a hop knows some ids and not others, and carries an OpenTelemetry attribute
    attributes = tracing.hop_attributes("api", workflow="doc-review", step=None, other={"http.route": "/v1/x"})

    # THEN only the known ones are there, under agentplane.*, beside the other one
    assert attributes == {"agentplane.hop": "api", "agentplane.workflow": "doc-review", "http.route": "/v1/x"}
