"""Runs: start one (asynchronously, or inside the request for a synchronous workflow) and report it."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.api import adapters
from functions.api.http import (
    caller,
    headers_of,
    json_response,
    new_router,
    request_span,
    requested_trace,
    trace_id_from,
)
from functions.api.invoke import invoke
from functions.api.service import (
    Workflow,
    describe,
    give_back_trace,
    own_trace,
    require_json,
    submit,
    wait_seconds,
)
from functions.runtime import tracing

WAIT_MARGIN_S = 5.0  # what a held status read keeps of its invocation's time to read the steps and answer


def router(workflows: Mapping[str, Workflow], persona_roles: Mapping[str, str]) -> APIGatewayRouter:
    routes = new_router()

    @routes.post("/v1/workflows/<name>/executions")
    def start_execution(name: str) -> Response[str]:
        event = routes.current_event
        headers = headers_of(event)
        submitter = caller(event, persona_roles)
        require_json(headers.get("content-type"))
        executions = adapters.executions()
        execution_id = str(uuid.uuid4())
        requested = requested_trace(headers)
        trace_id = own_trace(
            requested, execution_id=execution_id, executions=executions, new_trace=tracing.new_trace_id
        )
        with request_span(event, "/v1/workflows/{name}/executions", name, headers, trace_id) as span:
            if requested is not None and requested != trace_id:
                span.set_attribute(
                    "agentplane.requested_trace_id", requested
                )  # another run's trace: linked, not joined
            traceparent = tracing.current_traceparent()
            try:
                submitted = submit(
                    name,
                    event.body,
                    idempotency_key=headers.get("idempotency-key"),
                    trace_id=trace_id,
                    workflows=workflows,
                    engine=adapters.StepFunctionsEngine(),
                    executions=executions,
                    now=datetime.now(UTC),
                    new_id=lambda: execution_id,
                    caller=submitter,
                    traceparent=traceparent,
                    requests=adapters.requests(),
                    admission=adapters.admission(),
                )
            except Exception:
                give_back_trace(requested, trace_id, executions=executions)
                raise
            if submitted.replayed:
                give_back_trace(requested, trace_id, executions=executions)
            span.set_attribute("agentplane.execution_id", submitted.execution_id)
        extra = {"Idempotent-Replayed": "true"} if submitted.replayed else {}
        if traceparent:
            extra["traceparent"] = traceparent
        return json_response(202, submitted.body(), Location=f"/v1/executions/{submitted.execution_id}", **extra)

    @routes.post("/v1/workflows/<name>/invoke")
    def invoke_workflow(name: str) -> Response[str]:
        event = routes.current_event
        headers = headers_of(event)
        require_json(headers.get("content-type"))
        trace_id = trace_id_from(headers)
        with request_span(event, "/v1/workflows/{name}/invoke", name, headers, trace_id):
            traceparent = tracing.current_traceparent()
            body = invoke(
                name,
                event.body,
                trace_id=trace_id,
                workflows=workflows,
                engine=adapters.StepFunctionsEngine(),
                now=datetime.now(UTC),
                new_id=lambda: str(uuid.uuid4()),
                traceparent=traceparent,
            )
        return json_response(200, body, **({"traceparent": traceparent} if traceparent else {}))

    @routes.get("/v1/executions/<execution_id>")
    def get_execution(execution_id: str) -> Response[str]:
        wait_s = wait_seconds((routes.current_event.query_string_parameters or {}).get("wait"))
        if wait_s:  # answer before this invocation's own timeout, whatever the function's timeout is
            left_s = routes.lambda_context.get_remaining_time_in_millis() / 1000 - WAIT_MARGIN_S
            wait_s = max(0.0, min(wait_s, left_s))
        body = describe(
            execution_id,
            engine=adapters.StepFunctionsEngine(),
            executions=adapters.executions(),
            decisions=adapters.decisions(),
            reader=caller(routes.current_event, persona_roles),
            wait_s=wait_s,
        )
        return json_response(200, body)

    return routes
