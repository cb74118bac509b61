"""What every route reads from an API Gateway proxy event, and how it answers: headers, caller, trace, JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from opentelemetry.trace import Span, SpanKind

from functions.api.service import Caller, caller_from, xray_root
from functions.runtime import tracing


def new_router() -> APIGatewayRouter:
    return APIGatewayRouter()  # type: ignore[no-untyped-call]  # Powertools leaves Router.__init__ unannotated


def json_response(status: int, body: Mapping[str, Any], **headers: str) -> Response[str]:
    return Response(status_code=status, content_type="application/json", body=json.dumps(body), headers=headers)


def headers_of(event: APIGatewayProxyEvent) -> dict[str, str]:
    """The request's headers, by lower-case name (HTTP header names are case-insensitive)."""
    return {k.lower(): v for k, v in (event.headers or {}).items()}


def identity_of(event: APIGatewayProxyEvent) -> dict[str, Any] | None:
    """``requestContext.identity``: who signed the request (API Gateway's IAM authorizer fills it in)."""
    identity: dict[str, Any] | None = event.raw_event.get("requestContext", {}).get("identity")
    return identity


def caller(event: APIGatewayProxyEvent, persona_roles: Mapping[str, str]) -> Caller:
    return caller_from(identity_of(event), persona_roles=persona_roles)


def requested_trace(headers: Mapping[str, str]) -> str | None:
    """The caller's W3C ``traceparent`` trace, else the X-Ray root from API Gateway's header, if any.

    Malformed headers are ignored (W3C Trace Context: an invalid traceparent starts a new trace).
    """
    from_caller = tracing.trace_id_from_traceparent(headers.get("traceparent", ""))
    return from_caller or xray_root(headers.get("x-amzn-trace-id", ""))


def trace_id_from(headers: Mapping[str, str]) -> str:
    """The trace a request is served in: the one it asks for, else a new one."""
    return requested_trace(headers) or tracing.new_trace_id()


@contextmanager
def request_span(
    event: APIGatewayProxyEvent, route: str, workflow: str, headers: Mapping[str, str], trace_id: str
) -> Iterator[Span]:
    """The API's span: a child of the caller's ``traceparent`` when it sent one, the parent of every step."""
    attributes = tracing.hop_attributes(
        "api",
        workflow=workflow,
        trace_id=trace_id,
        other={"http.request.method": event.http_method, "http.route": route},
    )
    with tracing.span(
        f"{event.http_method} {route}",
        attributes,
        trace_id=trace_id,
        traceparent=headers.get("traceparent"),
        kind=SpanKind.SERVER,
    ) as span:
        yield span


def base_url(event: Mapping[str, Any]) -> str:
    """Where the caller reached this API (what an Agent Card's url names): https://<domain>/<stage>, or the
    local plane's loopback address."""
    context = event.get("requestContext") or {}
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    host = context.get("domainName") or headers.get("host")
    if not host:
        return ""
    if str(host).startswith(("127.0.0.1", "localhost")):
        return f"http://{host}"
    stage = context.get("stage")
    return f"https://{host}/{stage}" if stage else f"https://{host}"
