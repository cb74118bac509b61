"""Approvals: what waits for a person, and a person's decision on one."""

from __future__ import annotations

from datetime import UTC, datetime

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.api import adapters
from functions.api.approvals import decide_approval, list_approvals
from functions.api.http import headers_of, identity_of, json_response, new_router
from functions.api.service import require_json
from functions.runtime import tracing


def router() -> APIGatewayRouter:
    routes = new_router()

    @routes.get("/v1/approvals")
    def get_approvals() -> Response[str]:
        status = (routes.current_event.query_string_parameters or {}).get("status")
        return json_response(200, list_approvals(status, store=adapters.approvals()))

    @routes.post("/v1/approvals/<approval_id>")
    def post_approval(approval_id: str) -> Response[str]:
        event = routes.current_event
        identity = identity_of(event) or {}
        require_json(headers_of(event).get("content-type"))
        store = adapters.approvals()
        pending = store.get(approval_id)  # its run's trace: the decision is a hop of that trace
        attributes = tracing.hop_attributes(
            "approval", step="Approval", execution_id=pending.execution_id if pending else None
        )
        with tracing.span("approval decided", attributes, trace_id=pending.trace_id if pending else None) as span:
            body = decide_approval(
                approval_id,
                event.body,
                caller_arn=identity.get("userArn"),
                store=store,
                runs=adapters.StepFunctionsCallbacks(),
                decisions=adapters.decisions(),
                now=datetime.now(UTC),
            )
            span.set_attribute("agentplane.outcome", str(body["status"]))
        return json_response(200, body)

    return routes
