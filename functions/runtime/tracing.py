"""The one tracing seam: our spans go through OpenTelemetry, with X-Ray-compatible ids and headers.

Lambda's active tracing gives X-Ray the service segments; these spans add capability, version and
outcome. Spans are exported over OTLP/HTTP only when ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set
(the ADOT collector layer on AWS, the local plane's receiver on 127.0.0.1); otherwise the API is a
no-op and the SDK is never imported, so an untraced cold start pays nothing. Ended spans are queued and
exported together when the outermost span of the invocation ends (before the handler returns: Lambda may
freeze the instance right after), so a step pays one export, not one per span. Swapping the backend
touches this file only.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags

ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
LAMBDA_TRACE_ENV = "_X_AMZN_TRACE_ID"
XRAY_HEADER = "X-Amzn-Trace-Id"
TRACEPARENT = "traceparent"
# Attributes X-Ray indexes as annotations (usable in filter expressions; X-Ray turns "." into "_").
ANNOTATED = (
    "agentplane.capability",
    "agentplane.version",
    "agentplane.outcome",
    "agentplane.trace_id",
    "agentplane.execution_id",
    "agentplane.step",
)

AttributeValue = str | int | float | bool
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
FLUSH_TIMEOUT_MS = 2000  # as long as one export may take: an unreachable collector must not hold a step

# How many of our spans are open in this context: the one that closes the last is the invocation's end.
_open_spans: ContextVar[int] = ContextVar("agentplane_open_spans", default=0)

_providers: dict[tuple[str, str], Any] = {}
_providers_lock = threading.Lock()


# --- ids ------------------------------------------------------------------------------------------


def new_trace_id(now: datetime | None = None) -> str:
    """A new X-Ray trace id: ``1-<epoch seconds, 8 hex digits>-<96 random bits>``."""
    return f"1-{int((now or datetime.now(UTC)).timestamp()):08x}-{secrets.token_hex(12)}"


def _new_span_id() -> int:
    return int(secrets.token_hex(8), 16) or 1


def new_traceparent(trace_id: str) -> str:
    """A sampled W3C ``traceparent`` in the X-Ray trace ``trace_id``, under a new span id."""
    return traceparent_of(SpanContext(otel_trace_id(trace_id), _new_span_id(), is_remote=True, trace_flags=_SAMPLED))


def otel_trace_id(xray_trace_id: str) -> int:
    """``1-5f84c7a1-0123456789abcdef01234567`` -> the same 128 bits as an OpenTelemetry trace id."""
    parts = xray_trace_id.split("-")
    try:
        if len(parts) != 3 or parts[0] != "1" or len(parts[1]) != 8 or len(parts[2]) != 24:
            raise ValueError
        return int(parts[1] + parts[2], 16)
    except ValueError:
        raise ValueError(f"not an X-Ray trace id: {xray_trace_id!r}") from None


def xray_trace_id(trace_id: int) -> str:
    hex_id = f"{trace_id:032x}"
    return f"1-{hex_id[:8]}-{hex_id[8:]}"


def trace_id_from_traceparent(traceparent: str) -> str | None:
    """The X-Ray form of a valid W3C traceparent's trace id, else None."""
    context = _from_traceparent(traceparent)
    return xray_trace_id(context.trace_id) if context is not None else None


def traceparent_of(context: SpanContext) -> str:
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def xray_header_of(context: SpanContext) -> str:
    sampled = int(context.trace_flags.sampled)
    return f"Root={xray_trace_id(context.trace_id)};Parent={context.span_id:016x};Sampled={sampled}"


def _from_traceparent(traceparent: str) -> SpanContext | None:
    parts = traceparent.strip().split("-")
    if len(parts) != 4 or parts[0] != "00" or len(parts[1]) != 32 or len(parts[2]) != 16 or len(parts[3]) != 2:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags & 1))


def _from_xray_header(header: str) -> SpanContext | None:
    fields = dict(part.strip().partition("=")[::2] for part in header.split(";") if "=" in part)
    try:
        trace_id = otel_trace_id(fields["Root"])
        span_id = int(fields["Parent"], 16)
    except (KeyError, ValueError):
        return None
    sampled = TraceFlags.SAMPLED if fields.get("Sampled", "1") == "1" else TraceFlags.DEFAULT
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(sampled)) if span_id else None


def parent_context(*, trace_id: str | None = None, traceparent: str | None = None) -> Context | None:
    """Where a span hangs: the Lambda segment of this trace (AWS), else the caller's traceparent, else the trace."""
    candidates = [_from_xray_header(os.environ.get(LAMBDA_TRACE_ENV, ""))]
    if traceparent:
        candidates.append(_from_traceparent(traceparent))
    wanted = otel_trace_id(trace_id) if trace_id else None
    for candidate in candidates:
        if candidate is not None and (wanted is None or candidate.trace_id == wanted):
            return trace.set_span_in_context(NonRecordingSpan(candidate))
    if wanted is None:
        return None
    # Only the trace is known: join it under a parent nobody exports (the trace's root in a waterfall).
    orphan = SpanContext(wanted, _new_span_id(), is_remote=True, trace_flags=_SAMPLED)
    return trace.set_span_in_context(NonRecordingSpan(orphan))


# --- export ---------------------------------------------------------------------------------------


def _service() -> str:
    env = os.environ
    return env.get("OTEL_SERVICE_NAME") or env.get("POWERTOOLS_SERVICE_NAME") or env.get("AGENT_NAME") or "agentplane"


def _tracer(endpoint: str | None = None, service: str | None = None) -> trace.Tracer:
    endpoint = endpoint or os.environ.get(ENDPOINT_ENV)
    if not endpoint:
        return trace.get_tracer("agentplane")
    key = (endpoint, service or _service())
    with _providers_lock:
        provider = _providers.get(key)
        if provider is None:
            provider = _providers[key] = _provider(endpoint, key[1])
    tracer: trace.Tracer = provider.get_tracer("agentplane")
    return tracer


def _provider(endpoint: str, service: str) -> Any:
    # Imported here: only a traced function pays for the SDK (see bench/runtime.py).
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.extension.aws.trace import AwsXRayIdGenerator
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "cloud.provider": "aws"}),
        id_generator=AwsXRayIdGenerator(),
    )
    # Queued, exported by flush() at the invocation's end (the worker's own timer only backs it up).
    exporter = OTLPSpanExporter(endpoint=endpoint, timeout=FLUSH_TIMEOUT_MS / 1000)
    provider.add_span_processor(BatchSpanProcessor(exporter, export_timeout_millis=FLUSH_TIMEOUT_MS))
    return provider


def flush() -> None:
    """Export every queued span now (``span`` calls this when the outermost one ends)."""
    with _providers_lock:
        providers = list(_providers.values())
    for provider in providers:
        provider.force_flush(timeout_millis=FLUSH_TIMEOUT_MS)


def shutdown() -> None:
    """Flush and drop every provider (the local plane calls this when it stops)."""
    with _providers_lock:
        providers = list(_providers.values())
        _providers.clear()
    for provider in providers:
        provider.shutdown()


# --- spans ----------------------------------------------------------------------------------------


def hop_attributes(
    hop: str,
    *,
    capability: str | None = None,
    version: str | None = None,
    agent: str | None = None,
    workflow: str | None = None,
    trace_id: str | None = None,
    execution_id: str | None = None,
    causation_id: str | None = None,
    step: str | None = None,
    event: str | None = None,
    other: Mapping[str, AttributeValue] | None = None,
) -> dict[str, AttributeValue]:
    """A span's attributes: which hop of a run it is and the ``agentplane.*`` ids it knows (None: left out),
    then ``other`` (OpenTelemetry's own names, e.g. ``http.route``)."""
    named = {
        "capability": capability,
        "version": version,
        "agent": agent,
        "workflow": workflow,
        "trace_id": trace_id,
        "execution_id": execution_id,
        "causation_id": causation_id,
        "step": step,
        "event": event,
    }
    found: dict[str, AttributeValue] = {"agentplane.hop": hop}
    found.update({f"agentplane.{key}": value for key, value in named.items() if value is not None})
    return {**found, **(other or {})}


@contextmanager
def span(
    name: str,
    attributes: Mapping[str, AttributeValue],
    *,
    trace_id: str | None = None,
    traceparent: str | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    service: str | None = None,
    endpoint: str | None = None,
) -> Iterator[Span]:
    """A span in ``trace_id`` (X-Ray form), under ``traceparent`` or the Lambda segment when they belong to it.

    ``service`` and ``endpoint`` name whose span it is and where it goes when that is not this process's own
    environment (the local plane emitting Lambda's segment of a function it runs). When the outermost span
    ends, everything queued is exported before control returns to the handler.
    """
    context = parent_context(trace_id=trace_id, traceparent=traceparent)
    indexed = [key for key in ANNOTATED if key in attributes]
    depth = _open_spans.get()
    token = _open_spans.set(depth + 1)
    try:
        with _tracer(endpoint, service).start_as_current_span(
            name,
            context=context,
            kind=kind,
            attributes={**attributes, "aws.xray.annotations": indexed},
            record_exception=True,
            set_status_on_exception=False,
        ) as current:
            try:
                yield current
            except Exception as exc:
                current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                current.set_attribute("agentplane.error_type", type(exc).__name__)
                raise
    finally:
        _open_spans.reset(token)
        if depth == 0:
            flush()


def current_headers() -> dict[str, str]:
    """The current span's context as W3C and X-Ray headers (empty outside a recorded span)."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {TRACEPARENT: traceparent_of(context), XRAY_HEADER: xray_header_of(context)}


def current_traceparent() -> str | None:
    return current_headers().get(TRACEPARENT)


def sagemaker_custom_attributes(existing: str | None = None) -> str | None:
    """``CustomAttributes`` for ``sagemaker-runtime.invoke_endpoint``: the caller's own plus ``traceparent=...``.

    InvokeEndpoint has no trace header; the container reads the context back with
    :func:`traceparent_from_custom_attributes` (``X-Amzn-SageMaker-Custom-Attributes``).
    """
    traceparent = current_traceparent()
    parts = [p for p in (existing or "").split(";") if p.strip() and not p.strip().startswith(f"{TRACEPARENT}=")]
    if traceparent:
        parts.append(f"{TRACEPARENT}={traceparent}")
    value = ";".join(parts)
    return value[:1024] or None


def traceparent_from_custom_attributes(value: str | None) -> str | None:
    for part in (value or "").split(";"):
        key, _, found = part.strip().partition("=")
        if key == TRACEPARENT and _from_traceparent(found) is not None:
            return found
    return None
