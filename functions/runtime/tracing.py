"""The one tracing seam: our spans go through the OpenTelemetry API.

Lambda's active tracing gives X-Ray the service segments; these spans add capability, version and
outcome. Without an SDK configured the API is a no-op, so the seam costs nothing until an exporter
(ADOT layer or X-Ray's OTLP endpoint) is wired in. Swapping the backend touches this file only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

_tracer = trace.get_tracer("agentplane")

AttributeValue = str | int | float | bool


@contextmanager
def span(name: str, attributes: dict[str, AttributeValue]) -> Iterator[Span]:
    with _tracer.start_as_current_span(name, attributes=attributes, record_exception=True) as current:
        try:
            yield current
        except Exception as exc:
            current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
