"""The public API behind API Gateway (and behind the local plane's HTTP server): routes in, problems out."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext
from opentelemetry.trace import Span, SpanKind

from contracts.capability import CapabilityContract
from contracts.loader import load_contracts
from functions.api.admission import DynamoAdmissionCounter, max_in_flight_cap
from functions.api.approvals import decide_approval, list_approvals
from functions.api.audit import export, lineage
from functions.api.invoke import SyncRun, invoke
from functions.api.rollouts import rollouts
from functions.api.service import (
    AtCapacityError,
    ProblemError,
    RunStatus,
    caller_from,
    capabilities,
    describe,
    load_persona_roles,
    load_workflows,
    own_trace,
    require_json,
    submit,
    xray_root,
)
from functions.runtime import tracing
from functions.runtime.approvals import DynamoApprovalStore
from functions.runtime.aws import S3DocumentStore, client, table
from functions.runtime.clock import wait_scale
from functions.runtime.decisions import DynamoDecisionStore
from functions.runtime.executions import DynamoExecutionStore
from functions.runtime.ledger_aws import KmsSigner, S3DigestArchive
from functions.runtime.ledger_store import DynamoLedgerStore
from functions.runtime.registry import DynamoRegistry

PROBLEM_JSON = "application/problem+json"

logger = Logger(service="agentplane-api")
app = APIGatewayRestResolver()
workflows = load_workflows(os.environ["WORKFLOWS"], wait_scale=wait_scale(), max_in_flight_cap=max_in_flight_cap())


@cache
def shipped_contracts() -> dict[str, CapabilityContract]:
    """Read on the first capabilities request, not at cold start (YAML for every contract)."""
    return load_contracts()


@cache
def registry() -> DynamoRegistry:
    return DynamoRegistry(table(os.environ["REGISTRY_TABLE"]), cache_s=0)  # callers see circuits as they are


class StepFunctionsEngine:
    def start(self, *, state_machine_arn: str, name: str, payload: str, trace_id: str) -> str:
        started = client("stepfunctions").start_execution(
            stateMachineArn=state_machine_arn, name=name, input=payload, traceHeader=f"Root={trace_id}"
        )
        arn: str = started["executionArn"]
        return arn

    def describe(self, execution_arn: str) -> RunStatus:
        run = client("stepfunctions").describe_execution(executionArn=execution_arn)
        return RunStatus(
            status=run["status"],
            output=run.get("output"),
            error=run.get("error"),
            cause=run.get("cause"),
            started_at=run["startDate"],
            stopped_at=run.get("stopDate"),
        )


def requested_trace(headers: dict[str, str]) -> str | None:
    """The caller's W3C ``traceparent`` trace, else the X-Ray root from API Gateway's header, if any.

    Malformed headers are ignored (W3C Trace Context: an invalid traceparent starts a new trace).
    """
    from_caller = tracing.trace_id_from_traceparent(headers.get("traceparent", ""))
    return from_caller or xray_root(headers.get("x-amzn-trace-id", ""))


def trace_id_from(headers: dict[str, str]) -> str:
    """The trace a request is served in: the one it asks for, else a new one."""
    return requested_trace(headers) or tracing.new_trace_id()


def json_response(status: int, body: dict[str, Any], **headers: str) -> Response[str]:
    return Response(status_code=status, content_type="application/json", body=json.dumps(body), headers=headers)


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


@app.get("/v1/health")
def health() -> Response[str]:
    return json_response(200, {"status": "ok", "workflows": sorted(workflows)})


@contextmanager
def request_span(route: str, workflow: str, headers: dict[str, str], trace_id: str) -> Iterator[Span]:
    """The API's span: a child of the caller's ``traceparent`` when it sent one, the parent of every step."""
    attributes = tracing.hop_attributes(
        "api",
        workflow=workflow,
        trace_id=trace_id,
        other={"http.request.method": app.current_event.http_method, "http.route": route},
    )
    with tracing.span(
        f"{app.current_event.http_method} {route}",
        attributes,
        trace_id=trace_id,
        traceparent=headers.get("traceparent"),
        kind=SpanKind.SERVER,
    ) as span:
        yield span


@app.post("/v1/workflows/<name>/executions")
def start_execution(name: str) -> Response[str]:
    headers = {k.lower(): v for k, v in (app.current_event.headers or {}).items()}
    identity = app.current_event.raw_event.get("requestContext", {}).get("identity")
    caller = caller_from(identity, persona_roles=load_persona_roles(os.environ.get("PERSONA_ROLES")))
    require_json(headers.get("content-type"))
    executions = DynamoExecutionStore(table(os.environ["EXECUTIONS_TABLE"]))
    execution_id = str(uuid.uuid4())
    requested = requested_trace(headers)
    trace_id = own_trace(requested, execution_id=execution_id, executions=executions, new_trace=tracing.new_trace_id)
    with request_span("/v1/workflows/{name}/executions", name, headers, trace_id) as span:
        if requested is not None and requested != trace_id:
            span.set_attribute("agentplane.requested_trace_id", requested)  # another run's trace: linked, not joined
        traceparent = tracing.current_traceparent()
        submitted = submit(
            name,
            app.current_event.body,
            idempotency_key=headers.get("idempotency-key"),
            trace_id=trace_id,
            workflows=workflows,
            engine=StepFunctionsEngine(),
            executions=executions,
            now=datetime.now(UTC),
            new_id=lambda: execution_id,
            caller=caller,
            traceparent=traceparent,
            requests=S3DocumentStore(os.environ["DOCUMENTS_BUCKET"]) if "DOCUMENTS_BUCKET" in os.environ else None,
            admission=DynamoAdmissionCounter(table(os.environ["EXECUTIONS_TABLE"])),
        )
        span.set_attribute("agentplane.execution_id", submitted.execution_id)
    extra = {"Idempotent-Replayed": "true"} if submitted.replayed else {}
    if traceparent:
        extra["traceparent"] = traceparent
    return json_response(202, submitted.body(), Location=f"/v1/executions/{submitted.execution_id}", **extra)


class StepFunctionsSyncEngine:
    def run_sync(self, *, state_machine_arn: str, name: str, payload: str, trace_id: str) -> SyncRun:
        run = client("stepfunctions").start_sync_execution(
            stateMachineArn=state_machine_arn, name=name, input=payload, traceHeader=f"Root={trace_id}"
        )
        return SyncRun(
            execution_arn=run["executionArn"],
            status=run["status"],
            output=run.get("output"),
            error=run.get("error"),
            cause=run.get("cause"),
        )


@app.post("/v1/workflows/<name>/invoke")
def invoke_workflow(name: str) -> Response[str]:
    headers = {k.lower(): v for k, v in (app.current_event.headers or {}).items()}
    require_json(headers.get("content-type"))
    trace_id = trace_id_from(headers)
    with request_span("/v1/workflows/{name}/invoke", name, headers, trace_id):
        traceparent = tracing.current_traceparent()
        body = invoke(
            name,
            app.current_event.body,
            trace_id=trace_id,
            workflows=workflows,
            engine=StepFunctionsSyncEngine(),
            now=datetime.now(UTC),
            new_id=lambda: str(uuid.uuid4()),
            traceparent=traceparent,
        )
    return json_response(200, body, **({"traceparent": traceparent} if traceparent else {}))


@app.get("/v1/executions/<execution_id>")
def get_execution(execution_id: str) -> Response[str]:
    identity = app.current_event.raw_event.get("requestContext", {}).get("identity")
    body = describe(
        execution_id,
        engine=StepFunctionsEngine(),
        executions=DynamoExecutionStore(table(os.environ["EXECUTIONS_TABLE"])),
        decisions=DynamoDecisionStore(table(os.environ["DECISIONS_TABLE"])),
        reader=caller_from(identity, persona_roles=load_persona_roles(os.environ.get("PERSONA_ROLES"))),
    )
    return json_response(200, body)


@app.get("/v1/audit/traces/<trace_id>")
def audit_trace(trace_id: str) -> Response[str]:
    signer = KmsSigner(os.environ["SIGNING_KEY_ID"])
    body = lineage(
        trace_id,
        store=DynamoLedgerStore(table(os.environ["LEDGER_TABLE"])),
        archive=S3DigestArchive(os.environ["DIGESTS_BUCKET"]),
        public_key_pem=signer.public_key_pem(),
    )
    return json_response(200, body)


@app.get("/v1/audit/export")
def audit_export() -> Response[str]:
    signer = KmsSigner(os.environ["SIGNING_KEY_ID"])
    lines, following = export(
        store=DynamoLedgerStore(table(os.environ["LEDGER_TABLE"])),
        archive=S3DigestArchive(os.environ["DIGESTS_BUCKET"]),
        public_key_pem=signer.public_key_pem(),
        key_id=signer.key_id,
        cursor=(app.current_event.query_string_parameters or {}).get("cursor"),
    )
    headers = {} if following is None else {"X-Next-Cursor": following}
    return Response(status_code=200, content_type="application/x-ndjson", body=lines, headers=headers)


class StepFunctionsCallbacks:
    def resume(self, task_token: str, output: dict[str, Any]) -> bool:
        sfn = client("stepfunctions")
        try:
            sfn.send_task_success(taskToken=task_token, output=json.dumps(output))
        except (sfn.exceptions.TaskTimedOut, sfn.exceptions.TaskDoesNotExist, sfn.exceptions.InvalidToken):
            return False
        return True


@app.get("/v1/approvals")
def get_approvals() -> Response[str]:
    status = (app.current_event.query_string_parameters or {}).get("status")
    return json_response(200, list_approvals(status, store=DynamoApprovalStore(table(os.environ["APPROVALS_TABLE"]))))


@app.post("/v1/approvals/<approval_id>")
def post_approval(approval_id: str) -> Response[str]:
    identity = app.current_event.raw_event.get("requestContext", {}).get("identity") or {}
    require_json({k.lower(): v for k, v in (app.current_event.headers or {}).items()}.get("content-type"))
    store = DynamoApprovalStore(table(os.environ["APPROVALS_TABLE"]))
    pending = store.get(approval_id)  # its run's trace: the decision is a hop of that trace
    attributes = tracing.hop_attributes(
        "approval", step="Approval", execution_id=pending.execution_id if pending else None
    )
    with tracing.span("approval decided", attributes, trace_id=pending.trace_id if pending else None) as span:
        body = decide_approval(
            approval_id,
            app.current_event.body,
            caller_arn=identity.get("userArn"),
            store=store,
            runs=StepFunctionsCallbacks(),
            decisions=DynamoDecisionStore(table(os.environ["DECISIONS_TABLE"])),
            now=datetime.now(UTC),
        )
        span.set_attribute("agentplane.outcome", str(body["status"]))
    return json_response(200, body)


def base_url(event: dict[str, Any]) -> str:
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


@app.get("/v1/capabilities")
def list_capabilities() -> Response[str]:
    return json_response(
        200,
        capabilities(shipped_contracts(), registry().implementations(), base_url=base_url(app.current_event.raw_event)),
    )


class AwsRollouts:
    """What ``GET /v1/rollouts`` reads: Lambda and Step Functions aliases, CodeDeploy deployments."""

    def agent_alias(self, function_name: str, alias: str) -> dict[str, Any]:
        answer: dict[str, Any] = client("lambda").get_alias(FunctionName=function_name, Name=alias)
        return answer

    def workflow_alias(self, alias_arn: str) -> dict[str, Any]:
        answer: dict[str, Any] = client("stepfunctions").describe_state_machine_alias(stateMachineAliasArn=alias_arn)
        return answer

    def latest_deployment(self, application: str, group: str) -> dict[str, Any] | None:
        codedeploy = client("codedeploy")
        ids = codedeploy.list_deployments(applicationName=application, deploymentGroupName=group)["deployments"]
        if not ids:
            return None
        found = codedeploy.batch_get_deployments(deploymentIds=ids[:25])["deploymentsInfo"]
        newest: dict[str, Any] = max(found, key=lambda d: d["createTime"])
        return newest


@app.get("/v1/rollouts")
def list_rollouts() -> Response[str]:
    aliases = {name: w.state_machine_arn for name, w in workflows.items()}
    answer = rollouts(
        registry().implementations(),
        aliases,
        AwsRollouts(),
        application=os.environ.get("CODEDEPLOY_APPLICATION", ""),
    )
    return json_response(200, answer)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
