"""The public API behind API Gateway (and behind the local plane's HTTP server): routes in, problems out.

This module only wires: the settings the stack writes, read once per cold start; one router per route group
(functions.api.routes), which parse a request and call a service with its AWS adapters (functions.api.adapters);
and the problems every route answers with.
"""

from __future__ import annotations

import json
import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.api import adapters
from functions.api.admission import max_in_flight_cap
from functions.api.routes import approvals, audit, catalog, runs
from functions.api.service import (
    AtCapacityError,
    ProblemError,
    WorkflowCatalog,
    load_persona_roles,
    load_workflows,
)
from functions.runtime.clock import wait_scale

PROBLEM_JSON = "application/problem+json"

logger = Logger(service="agentplane-api")
app = APIGatewayRestResolver()
_scale, _cap = wait_scale(), max_in_flight_cap()
# Its own stack's workflows, and those projects deployed in stacks of their own (the catalog table).
workflows = WorkflowCatalog(
    load_workflows(os.environ["WORKFLOWS"], wait_scale=_scale, max_in_flight_cap=_cap),
    adapters.catalog(),
    wait_scale=_scale,
    max_in_flight_cap=_cap,
)
persona_roles = load_persona_roles(os.environ.get("PERSONA_ROLES"))


def problem(exc: ProblemError) -> Response[str]:
    return Response(
        status_code=exc.status,
        content_type=PROBLEM_JSON,
        body=json.dumps(exc.body(app.current_event.path)),
        headers={"Retry-After": str(exc.retry_after)} if isinstance(exc, AtCapacityError) else None,
    )


def not_found(_: Exception) -> Response[str]:
    path = app.current_event.path
    return problem(
        ProblemError(404, "Not found", f"no route for {app.current_event.http_method} {path}", kind="not-found")
    )


def internal_error(exc: Exception) -> Response[str]:
    """Anything unexpected is logged with its trace and answered as a 500 problem, never a stack trace."""
    logger.exception("unhandled error")
    return problem(ProblemError(500, "Internal error", "the request could not be completed", kind="internal"))


# Registered as calls, not decorators: the decorators are untyped and would erase these functions' types.
app.exception_handler(ProblemError)(problem)
app.exception_handler(Exception)(internal_error)
app.not_found(not_found)
app.include_router(runs.router(workflows, persona_roles))
app.include_router(approvals.router())
app.include_router(audit.router())
app.include_router(catalog.router(workflows))


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
