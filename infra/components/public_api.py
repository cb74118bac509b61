"""The front door: a REST API, IAM-authorised, traced and access-logged, checking bodies with generated schemas."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contracts.capability import CONVERSATIONS_PREFIX, CapabilityContract, LambdaRuntime
from contracts.catalog import WorkflowEntry
from contracts.models import MODELS
from contracts.payloads import payload_model
from contracts.schema_export import SCHEMAS_DIR, to_draft4
from functions.api.admission import AdmissionLimit
from functions.api.service import INPUTS_FOLDER, REQUESTS_PREFIX
from infra.components.agent_pool import LAMBDA_RUNTIME, LIVE_ALIAS
from infra.components.approval_gate import ApprovalGate
from infra.components.audit_ledger import AuditLedger
from infra.components.data_store import DataStore
from infra.components.nag import XRAY_REASON, acknowledge, logical_id, region_account
from infra.components.retention import log_group
from infra.components.staging import stage
from infra.paths import FUNCTIONS_DIR, FUNCTIONS_PACKAGE, STAGING_DIR, package_folder, plane_handler

STAGE_NAME = "api"
# API Gateway ends a REST integration after 29 s. The API function stops then too: a request it still served after
# would answer nobody. Synchronous workflows it waits on must end within it (preflight checks their budgets).
INTEGRATION_TIMEOUT_S = 29

PROBLEM_JSON = "application/problem+json"
# A body sent with another content type must not skip validation: "$default" catches it.
VALIDATED_CONTENT_TYPES = ("application/json", "$default")


@dataclass(frozen=True)
class ApiWorkflow:
    name: str
    state_machine: sfn.StateMachine
    alias_arn: str  # runs start through the workflow's live alias, so a rollout decides which version serves them
    input_model: str
    ttl_ms: int
    synchronous: bool = False  # an Express workflow answered inside the request (StartSyncExecution)
    claim_check: bool = False  # the request goes to the documents bucket; the run carries its reference
    admission: AdmissionLimit | None = None  # how many runs the API admits per window (admission_limit)


# Lambda's default account concurrency is 1000; an agent without reserved concurrency shares it with every other
# function, so a workflow none of whose agents reserves any still admits no more than this per window.
UNRESERVED_MAX_IN_FLIGHT = 100


def reserved_concurrency(contract: CapabilityContract) -> int | None:
    """A Lambda agent's reserved concurrency; an endpoint scales on its own and reserves none."""
    runtime = contract.runtime
    return runtime.reserved_concurrency if isinstance(runtime, LambdaRuntime) else None


def admission_limit(steps: Iterable[CapabilityContract]) -> AdmissionLimit:
    """What a workflow can finish within its agents' budgets: per window of its steps' p95 run back to back (the
    time a run processes), no more runs than its smallest pool (the lowest reserved concurrency) serves at once."""
    contracts = list(steps)
    reserved = [r for r in (reserved_concurrency(c) for c in contracts) if r]
    return AdmissionLimit(
        max_in_flight=min(reserved, default=UNRESERVED_MAX_IN_FLIGHT),
        window_ms=sum(c.slo.p95_ms for c in contracts),
    )


def through_alias(actions: list[str], workflow: ApiWorkflow) -> iam.PolicyStatement:
    """``actions`` on the workflow's live alias only. Step Functions authorizes a qualified ARN against the state
    machine's own ARN and exposes the alias in ``states:StateMachineQualifier``; both ARNs are named, so the grant
    holds however the request is matched, and the condition keeps it to the alias."""
    return iam.PolicyStatement(
        actions=actions,
        resources=[workflow.state_machine.state_machine_arn, workflow.alias_arn],
        conditions={"StringEquals": {"states:StateMachineQualifier": LIVE_ALIAS}},
    )


def workflow_statements(scope: Construct, workflow: ApiWorkflow) -> list[iam.PolicyStatement]:
    """What the API needs to serve one workflow: start its runs through the live alias and, for a Standard one,
    describe them."""
    start = "states:StartSyncExecution" if workflow.synchronous else "states:StartExecution"
    statements = [through_alias([start], workflow)]
    if not workflow.synchronous:
        runs = Stack.of(scope).format_arn(
            service="states",
            resource="execution",
            resource_name=f"{workflow.state_machine.state_machine_name}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        statements.append(iam.PolicyStatement(actions=["states:DescribeExecution"], resources=[runs]))
    return statements


def acknowledge_workflow(policy: Construct, workflow: ApiWorkflow) -> None:
    if not workflow.synchronous:
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:{region_account(policy)}:execution:"
            f"<{logical_id(workflow.state_machine)}.Name>:*]",
            "DescribeExecution on the runs of this one state machine; run names are made per request",
        )


def catalog_entry(workflow: ApiWorkflow, project: str | None = None) -> WorkflowEntry:
    """The workflow as the API reads it; a project's own input type carries its JSON Schema."""
    own_type = project is not None and workflow.input_model not in MODELS
    return WorkflowEntry(
        name=workflow.name,
        state_machine_arn=workflow.alias_arn,
        input_model=workflow.input_model,
        input_schema=payload_model(workflow.input_model).model_json_schema() if own_type else None,
        ttl_ms=workflow.ttl_ms,
        synchronous=workflow.synchronous,
        claim_check=workflow.claim_check,
        max_in_flight=workflow.admission.max_in_flight if workflow.admission else None,
        admission_window_ms=workflow.admission.window_ms if workflow.admission else None,
        project=project,
    )


def draft4_schema(model_name: str) -> dict[str, Any]:
    """The request model API Gateway validates with: the committed copy for the plane's own bodies, else made from
    the project's type."""
    committed = SCHEMAS_DIR / "apigw" / f"{model_name}.json"
    if committed.is_file():
        schema: dict[str, Any] = json.loads(committed.read_text())
        return schema
    return to_draft4(payload_model(model_name).model_json_schema())


def api_code(workflows: Iterable[ApiWorkflow]) -> Path:
    """The API function's code: ``functions/api``, and the JSON Schema of each workflow input that is a project's
    own type (``functions/api/inputs/<workflow>.json``): the plane's own types ship in its runtime layer."""
    inputs = {
        w.name: payload_model(w.input_model).model_json_schema() for w in workflows if w.input_model not in MODELS
    }
    STAGING_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=STAGING_DIR, prefix=".api-inputs-") as scratch:
        for name, schema in inputs.items():
            (Path(scratch) / f"{name}.json").write_text(json.dumps(schema, sort_keys=True, indent=1), encoding="utf-8")
        api = f"{package_folder(FUNCTIONS_PACKAGE)}/api"
        return stage("fn-api", [(FUNCTIONS_DIR / "api", api), (Path(scratch), f"{api}/{INPUTS_FOLDER}")])


RETRY_AFTER_S = 1


def _problem_template(kind: str, title: str, status: int | None, detail_vtl: str) -> str:
    """A mapping template rendering an RFC 9457 body; detail_vtl must render a JSON string."""
    head = {"type": f"https://agentplane.dev/problems/{kind}", "title": title}
    if status is not None:
        head["status"] = str(status)
    fields = ",".join(f'"{k}":{v if k == "status" else json.dumps(v)}' for k, v in head.items())
    return "{" + fields + ',"detail":' + detail_vtl + "}"


class PublicApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        data: DataStore,
        workflows: list[ApiWorkflow],
        layers: list[lambda_.ILayerVersion],
        ledger: AuditLedger,
        approvals: ApprovalGate,
        account_settings: bool = False,
        catalog: dynamodb.ITable | None = None,
    ) -> None:
        """``catalog``: the table of workflows projects deploy in stacks of their own (contracts.catalog), which
        the API reads at run time; they reach it through ``/v1/workflows/{name}/...``.

        ``account_settings``: also set the account's API Gateway CloudWatch Logs role (one per account and
        region, shared by every API there). Without it, the stage's logging uses the role the account already has."""
        super().__init__(scope, construct_id)
        self.function = self._function(data, workflows, layers, catalog)
        self._grant_audit_reads(ledger, data.documents)
        self.function.add_environment("APPROVALS_TABLE", approvals.table.table_name)
        approvals.grant_decide(
            self.function, [w.state_machine.state_machine_arn for w in workflows if not w.synchronous]
        )
        # An approval is a decision: the API records it (actor, reason, policy version) for the ledger.
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["dynamodb:PutItem"], resources=[data.decisions.table_arn])
        )

        self.access_logs = log_group(self, "AccessLogs", "api-access-logs", removal_policy=RemovalPolicy.RETAIN)
        self.rest_api = apigw.RestApi(
            self,
            "RestApi",
            description="agentplane public API",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=account_settings,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN if account_settings else None,
            deploy_options=apigw.StageOptions(
                stage_name=STAGE_NAME,
                tracing_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                metrics_enabled=True,
                throttling_rate_limit=100,
                throttling_burst_limit=200,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
            ),
            # The API key puts each persona's requests on its usage plan (infra.components.personas).
            default_method_options=apigw.MethodOptions(
                authorization_type=apigw.AuthorizationType.IAM, api_key_required=True
            ),
        )
        self._problem_responses()
        # API Gateway creates its execution log group on first use, kept forever; create it first, retained as declared.
        execution_logs = log_group(
            self,
            "ExecutionLogs",
            "api-execution-logs",
            log_group_name=f"API-Gateway-Execution-Logs_{self.rest_api.rest_api_id}/{STAGE_NAME}",
        )
        self.rest_api.deployment_stage.node.add_dependency(execution_logs)
        acknowledge(
            self.rest_api,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
            "the account-level role API Gateway uses to write its logs; AWS documents this managed policy for it",
        )
        acknowledge(
            self.rest_api,
            "AwsSolutions-APIG3",
            "WAF is an edge decision left to the platform team (web ACL association); the API is IAM-authorised "
            "and throttled at the stage",
        )
        acknowledge(
            self.rest_api,
            "AwsSolutions-COG4",
            "callers authenticate with IAM (SigV4) and one role per persona, not Cognito user pools",
        )
        self.validator = self.rest_api.add_request_validator(
            "BodyValidator", validate_request_body=True, validate_request_parameters=True
        )
        integration = apigw.LambdaIntegration(self.function)

        v1 = self.rest_api.root.add_resource("v1")
        health = v1.add_resource("health").add_method(
            "GET", integration, authorization_type=apigw.AuthorizationType.NONE, api_key_required=False
        )
        acknowledge(health, "AwsSolutions-APIG4", "readiness probe: answers with liveness and workflow names only")
        v1.add_resource("capabilities").add_method("GET", integration)
        v1.add_resource("rollouts").add_method("GET", integration)
        approvals_resource = v1.add_resource("approvals")
        approvals_resource.add_method(
            "GET", integration, request_parameters={"method.request.querystring.status": False}
        )
        approvals_resource.add_resource("{approval_id}").add_method(
            "POST",
            integration,
            request_models=self._models("ApprovalDecisionRequest"),
            request_validator=self.validator,
            request_parameters={"method.request.path.approval_id": True},
        )
        audit = v1.add_resource("audit")
        audit.add_resource("export").add_method("GET", integration)
        audit.add_resource("content").add_resource("{sha256}").add_method(
            "GET",
            integration,
            request_parameters={"method.request.path.sha256": True},
            request_validator=self.validator,
        )
        audit.add_resource("traces").add_resource("{trace_id}").add_method(
            "GET",
            integration,
            request_parameters={"method.request.path.trace_id": True},
            request_validator=self.validator,
        )
        v1.add_resource("executions").add_resource("{execution_id}").add_method(
            "GET",
            integration,
            # wait: seconds the read may hold for the run to end (functions.api.service.MAX_WAIT_S caps it)
            request_parameters={"method.request.path.execution_id": True, "method.request.querystring.wait": False},
            request_validator=self.validator,
        )
        workflows_resource = v1.add_resource("workflows")
        # Unknown names reach the function and get a 404 problem; known ones have their own validated route.
        named = workflows_resource.add_resource("{name}")
        for action in ("executions", "invoke"):
            named.add_resource(action).add_method(
                "POST", integration, request_parameters={"method.request.path.name": True}
            )
        for workflow in workflows:
            models = self._models(workflow.input_model)
            workflows_resource.add_resource(workflow.name).add_resource(
                "invoke" if workflow.synchronous else "executions"
            ).add_method(
                "POST",
                integration,
                request_models=models,
                request_validator=self.validator,
                request_parameters={"method.request.header.Idempotency-Key": False},
            )

    def _function(
        self,
        data: DataStore,
        workflows: list[ApiWorkflow],
        layers: list[lambda_.ILayerVersion],
        catalog: dynamodb.ITable | None,
    ) -> lambda_.Function:
        code_dir = api_code(workflows)
        function_logs = log_group(self, "FunctionLogs", "api-function-logs")
        role = iam.Role(
            self,
            "FunctionRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="agentplane API: start and read its workflows' runs, nothing else",
        )
        function_logs.grant_write(role)
        for workflow in workflows:
            for statement in workflow_statements(self, workflow):
                role.add_to_principal_policy(statement)
        settings = {w.name: catalog_entry(w).settings() for w in workflows}
        role.add_to_principal_policy(
            iam.PolicyStatement(
                # Get/PutItem: the admission slots too (functions.runtime.admission), a conditional write per run.
                actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem"],
                resources=[data.executions.table_arn],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["dynamodb:Query"], resources=[data.decisions.table_arn])
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[data.key.key_arn])
        )
        acknowledge(role, "AwsSolutions-IAM5[Resource::*]", XRAY_REASON)
        environment: dict[str, str] = {}
        if catalog is not None:
            # Projects deploy workflows the API learns of at run time; each project's stack grants it theirs.
            role.add_to_principal_policy(iam.PolicyStatement(actions=["dynamodb:Scan"], resources=[catalog.table_arn]))
            environment["WORKFLOW_CATALOG_TABLE"] = catalog.table_name
        if catalog is not None or any(w.claim_check for w in workflows):
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["s3:PutObject"], resources=[data.documents.arn_for_objects(f"{REQUESTS_PREFIX}*")]
                )
            )
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::<{logical_id(data.documents)}.Arn>/{REQUESTS_PREFIX}*]",
                "claim-checked requests are content-addressed objects under documents/requests/: keys are digests",
            )
            environment["DOCUMENTS_BUCKET"] = data.documents.bucket_name
        for workflow in workflows:
            acknowledge_workflow(role, workflow)
        return lambda_.Function(
            self,
            "Function",
            description="agentplane public API",
            runtime=LAMBDA_RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            handler=plane_handler("api"),
            code=lambda_.Code.from_asset(str(code_dir)),
            layers=layers,
            memory_size=512,
            timeout=Duration.seconds(INTEGRATION_TIMEOUT_S),
            tracing=lambda_.Tracing.ACTIVE,
            role=role,
            log_group=function_logs,
            logging_format=lambda_.LoggingFormat.JSON,
            environment={
                "WORKFLOWS": Stack.of(self).to_json_string(settings),
                "EXECUTIONS_TABLE": data.executions.table_name,
                "DECISIONS_TABLE": data.decisions.table_name,
                "POWERTOOLS_SERVICE_NAME": "agentplane-api",
                **environment,
            },
        )

    def _grant_audit_reads(self, ledger: AuditLedger, documents: s3.IBucket) -> None:
        """Auditors read the ledger and its digests through the API; nothing here can write them."""
        self.function.add_environment("LEDGER_TABLE", ledger.table.table_name)
        self.function.add_environment("DIGESTS_BUCKET", ledger.digests.bucket_name)
        self.function.add_environment("SIGNING_KEY_ID", ledger.signing_key.key_arn)
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan"],
                resources=[ledger.table.table_arn, f"{ledger.table.table_arn}/index/*"],
            )
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[ledger.digests.arn_for_objects("digests/*")])
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[ledger.digests.bucket_arn])
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["kms:GetPublicKey"], resources=[ledger.signing_key.key_arn])
        )
        # What llm agents' turns sent and answered, stored by the digests their records hold.
        self.function.add_environment("DOCUMENTS_BUCKET", documents.bucket_name)
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[documents.arn_for_objects(f"{CONVERSATIONS_PREFIX}*")]
            )
        )
        role = self.function.role
        assert role is not None
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::<{logical_id(documents)}.Arn>/{CONVERSATIONS_PREFIX}*]",
            "turn content is stored under its sha256, which the auditor names",
        )
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::<{logical_id(ledger.digests)}.Arn>/digests/*]",
            "digest objects are numbered at run time under digests/",
        )
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::<{logical_id(ledger.table)}.Arn>/index/*]",
            "lineage queries the ledger's by-trace index",
        )

    def _models(self, model_name: str) -> dict[str, apigw.IModel]:
        """The request model of ``model_name`` for each validated content type; one per name, however many
        workflows start with it."""
        made = self.node.try_find_child(f"{model_name}ModelRef")
        if made is not None:
            return dict.fromkeys(VALIDATED_CONTENT_TYPES, cast(apigw.IModel, made))
        model = apigw.CfnModel(
            self,
            f"{model_name}Model",
            rest_api_id=self.rest_api.rest_api_id,
            content_type="application/json",
            description=f"{model_name}, generated from contracts/ (draft 4)",
            schema=draft4_schema(model_name),
        )
        ref = apigw.Model.from_model_name(self, f"{model_name}ModelRef", model.ref)
        return dict.fromkeys(VALIDATED_CONTENT_TYPES, ref)

    def _problem_responses(self) -> None:
        """API Gateway's own refusals speak RFC 9457 too."""
        validation = '"$util.escapeJavaScript($context.error.validationErrorString)"'
        message = "$context.error.messageString"
        responses = [
            (
                "BadRequestBody",
                apigw.ResponseType.BAD_REQUEST_BODY,
                "validation",
                "Invalid request body",
                400,
                validation,
            ),
            (
                "BadRequestParameters",
                apigw.ResponseType.BAD_REQUEST_PARAMETERS,
                "validation",
                "Invalid request parameters",
                400,
                validation,
            ),
            ("Throttled", apigw.ResponseType.THROTTLED, "throttled", "Too many requests", 429, message),
            ("QuotaExceeded", apigw.ResponseType.QUOTA_EXCEEDED, "throttled", "Quota exceeded", 429, message),
            ("Default4xx", apigw.ResponseType.DEFAULT_4_XX, "refused", "Request refused", None, message),
            ("Default5xx", apigw.ResponseType.DEFAULT_5_XX, "gateway-error", "Gateway error", None, message),
        ]
        for construct_id, response_type, kind, title, status, detail in responses:
            self.rest_api.add_gateway_response(
                f"Problem{construct_id}",
                type=response_type,
                status_code=str(status) if status else None,
                response_headers={
                    "Content-Type": f"'{PROBLEM_JSON}'",
                    # API Gateway cannot compute the wait; one second is the bucket's refill granularity.
                    **({"Retry-After": f"'{RETRY_AFTER_S}'"} if status == 429 else {}),
                },
                templates={PROBLEM_JSON: _problem_template(kind, title, status, detail)},
            )
