"""An agent's pool, built from its capability contract: the function, its role, its grants, its logs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from contracts.capability import (
    CONVERSATIONS_PREFIX,
    MODEL_ENDPOINT_ENV,
    CapabilityContract,
    LambdaRuntime,
    LlmRuntime,
)
from infra.components import llm_agent
from infra.components.data_store import DataStore
from infra.components.errors import ContractInfraError
from infra.components.nag import XRAY_REASON, acknowledge
from infra.components.nag import ref as nag_ref
from infra.components.retention import log_group
from infra.components.staging import stage
from infra.conventions import agent_environment
from infra.paths import FUNCTIONS_DIR

# Event-driven bursty agents take their events from a queue, in batches of up to this many.
BUFFER_BATCH_SIZE = 10
BUFFER_MAX_WINDOW_S = 20
LIVE_ALIAS = "live"

LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_14


@dataclass(frozen=True)
class Resources:
    """What permission verbs can point at, and the settings agents read to find them."""

    data: DataStore
    event_bus_arn: str
    event_bus_name: str
    knowledge_base: lambda_.ILayerVersion
    knowledge_base_path: str


@dataclass(frozen=True)
class Granted:
    statements: list[iam.PolicyStatement] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    layers: list[lambda_.ILayerVersion] = field(default_factory=list)


Grant = Callable[[Resources], Granted]


@dataclass(frozen=True)
class ModelEndpoint:
    """The SageMaker endpoint serving a ``provider: sagemaker`` loop's model (deploy-time tokens)."""

    name: str
    arn: str


def _model_environment(runtime: LlmRuntime, endpoint: ModelEndpoint | None) -> dict[str, str]:
    """What the loop calls (its agent.json has the rest); the local plane faults that model or endpoint."""
    if runtime.model.provider == "bedrock":
        return {llm_agent.MODEL_ID_ENV: runtime.model.invoked_id}
    assert endpoint is not None  # model_statements refused the pool without one
    return {MODEL_ENDPOINT_ENV: endpoint.name}


def _kms(data: DataStore, *actions: str) -> iam.PolicyStatement:
    return iam.PolicyStatement(actions=list(actions), resources=[data.key.key_arn])


# Permission verbs -> exact actions on exact resources (and the environment that names them).
PERMISSION_VERBS: Mapping[str, Grant] = {
    "write:documents": lambda r: Granted(
        [
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[r.data.documents.arn_for_objects("documents/*")]),
            _kms(r.data, "kms:GenerateDataKey", "kms:Encrypt"),
        ],
        {"DOCUMENTS_BUCKET": r.data.documents.bucket_name},
    ),
    "read:documents": lambda r: Granted(
        [
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[r.data.documents.arn_for_objects("documents/*")]),
            _kms(r.data, "kms:Decrypt"),
        ],
        {"DOCUMENTS_BUCKET": r.data.documents.bucket_name},
    ),
    "write:executions": lambda r: Granted(
        [
            iam.PolicyStatement(actions=["dynamodb:UpdateItem"], resources=[r.data.executions.table_arn]),
            _kms(r.data, "kms:Decrypt", "kms:GenerateDataKey"),
        ],
        {"EXECUTIONS_TABLE": r.data.executions.table_name},
    ),
    "publish:events": lambda r: Granted(
        [iam.PolicyStatement(actions=["events:PutEvents"], resources=[r.event_bus_arn])],
        {"EVENT_BUS_NAME": r.event_bus_name},
    ),
    "write:idempotency": lambda r: Granted(
        [
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
                resources=[r.data.idempotency.table_arn],
            ),
            _kms(r.data, "kms:Decrypt", "kms:GenerateDataKey"),
        ],
        {"IDEMPOTENCY_TABLE": r.data.idempotency.table_name},
    ),
    # The knowledge base ships with the plane as a read-only layer: no IAM grant, just the mount.
    "read:kb": lambda r: Granted(environment={"KNOWLEDGE_BASE_PATH": r.knowledge_base_path}, layers=[r.knowledge_base]),
}


def _conversations(r: Resources, *, read: bool) -> Granted:
    """An llm agent keeps each turn's content (what it sent, what came back) by digest; one whose tools act
    externally reads its conversation back after a person decided (``read``)."""
    objects = r.data.documents.arn_for_objects(f"{CONVERSATIONS_PREFIX}*")
    actions = ["s3:PutObject", *(["s3:GetObject"] if read else [])]
    keys = ["kms:GenerateDataKey", "kms:Encrypt", *(["kms:Decrypt"] if read else [])]
    return Granted(
        [iam.PolicyStatement(actions=actions, resources=[objects]), _kms(r.data, *keys)],
        {"DOCUMENTS_BUCKET": r.data.documents.bucket_name},
    )


def _merged(one: Granted, other: Granted) -> Granted:
    return Granted(
        [*one.statements, *other.statements], {**one.environment, **other.environment}, [*one.layers, *other.layers]
    )


def timeout_s(contract: CapabilityContract) -> int:
    runtime = contract.runtime
    if not isinstance(runtime, LambdaRuntime | LlmRuntime):
        raise ContractInfraError(f"contract {contract.name}: runtime.kind: {runtime.kind} has no Lambda timeout")
    return runtime.effective_timeout_s(contract.slo)


@dataclass(frozen=True)
class Buffering:
    """How a bursty agent's events wait for it: a queue drained in batches (SQS event source)."""

    batch_size: int
    max_window: Duration


def buffering(contract: CapabilityContract) -> Buffering | None:
    """Batches for bursty agents; the window is the p95 budget in whole seconds (1 to 20 s): waiting for a
    batch may cost an asynchronous agent about one p95 of latency, never more than SQS allows."""
    runtime = contract.runtime
    if not isinstance(runtime, LambdaRuntime) or not runtime.bursty:
        return None
    window_s = min(BUFFER_MAX_WINDOW_S, max(1, contract.slo.p95_ms // 1000))
    return Buffering(batch_size=BUFFER_BATCH_SIZE, max_window=Duration.seconds(window_s))


def _unbounded(statement: iam.PolicyStatement) -> bool:
    resources = statement.resources
    return not resources or any(resource == "*" for resource in resources)


def resolve_permissions(contract: CapabilityContract, resources: Resources) -> Granted:
    statements: list[iam.PolicyStatement] = []
    environment: dict[str, str] = {}
    layers: list[lambda_.ILayerVersion] = []
    for permission in contract.permissions:
        grant = PERMISSION_VERBS.get(permission)
        if grant is None:
            raise ContractInfraError(
                f"contract {contract.name}: permissions: unknown verb {permission!r} "
                f"(known: {', '.join(sorted(PERMISSION_VERBS))})"
            )
        granted = grant(resources)
        if not (granted.statements or granted.layers) or any(_unbounded(s) for s in granted.statements):
            raise ContractInfraError(
                f"contract {contract.name}: permissions: {permission!r} has no resource to grant it on"
            )
        statements.extend(granted.statements)
        environment.update(granted.environment)
        layers.extend(granted.layers)
    return Granted(statements, environment, layers)


def handler_asset(contract: CapabilityContract, source_root: Path) -> Path:
    """The staged code of a Lambda agent: the package its handler's module is in, at its import path, from the
    project's source folder (``functions.evidence_verifier``: ``functions/evidence_verifier/``; ``orders.handler``:
    ``orders/``). The plane's runtime layer supplies ``functions.runtime`` and ``contracts``."""
    runtime = contract.runtime
    assert isinstance(runtime, LambdaRuntime)
    package = runtime.handler.rsplit(".", 2)[0]
    folder = source_root.joinpath(*package.split("."))
    if not folder.is_dir():
        raise ContractInfraError(
            f"contract {contract.name}: runtime.handler: no package {package} (folder {folder}) for {runtime.handler}"
        )
    return stage(f"fn-{package.rsplit('.', 1)[-1]}", [(folder, package.replace(".", "/"))])


class AgentPool(Construct):
    """One Lambda agent: arm64, active tracing, Powertools settings, role granted exactly its contract.

    An llm agent (``kind: llm``) is a pool too: its function is the tool-use loop (infra.components.llm_agent),
    configured from its contract and granted exactly its model; ``contracts`` resolves its tools.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        contract: CapabilityContract,
        resources: Resources,
        layers: list[lambda_.ILayerVersion],
        functions_dir: Path = FUNCTIONS_DIR,
        contracts: Mapping[str, CapabilityContract] | None = None,
        source_root: Path | None = None,
        model_endpoint: ModelEndpoint | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.buffering = buffering(contract)
        runtime = contract.runtime
        if not isinstance(runtime, LambdaRuntime | LlmRuntime):
            raise ContractInfraError(f"contract {contract.name}: runtime.kind: {runtime.kind} is not a Lambda pool")
        self.contract = contract
        granted = resolve_permissions(contract, resources)
        if isinstance(runtime, LlmRuntime):
            handler = llm_agent.LOOP_HANDLER
            layout = llm_agent.loop_asset(self, contract, contracts or {contract.name: contract}, functions_dir)
            code_dir = stage(f"fn-{llm_agent.LOOP_FOLDER}-{contract.name}", layout)
            model_grants = llm_agent.model_statements(
                self, contract, None if model_endpoint is None else model_endpoint.arn
            )
            pauses = bool(llm_agent.acting_tools(contract, contracts or {}))
            granted = _merged(granted, _conversations(resources, read=pauses))
        else:
            handler = runtime.handler
            code_dir = handler_asset(contract, source_root or functions_dir.parent)
            model_grants = []

        self.log_group = log_group(self, "Logs", "agent-logs")
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"agentplane agent {contract.name} {contract.version}: exactly its contract's permissions",
        )
        self.log_group.grant_write(self.role)
        # Every step leaves its decision record; the conditional put is also the duplicate guard.
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["dynamodb:PutItem", "dynamodb:GetItem"], resources=[resources.data.decisions.table_arn]
            )
        )
        self.role.add_to_principal_policy(_kms(resources.data, "kms:Decrypt", "kms:GenerateDataKey"))
        for statement in [*granted.statements, *model_grants]:
            self.role.add_to_principal_policy(statement)

        environment = {
            **agent_environment(contract),
            "DECISIONS_TABLE": resources.data.decisions.table_name,
            **granted.environment,
            **(_model_environment(runtime, model_endpoint) if isinstance(runtime, LlmRuntime) else {}),
        }

        def function(construct_id: str, handler: str, logs_to: logs.ILogGroup, **extra: str) -> lambda_.Function:
            return lambda_.Function(
                self,
                construct_id,
                description=f"{contract.name} {contract.version}: {contract.description}"[:256],
                runtime=LAMBDA_RUNTIME,
                architecture=lambda_.Architecture.ARM_64,
                handler=handler,
                code=lambda_.Code.from_asset(str(code_dir)),
                layers=[*layers, *granted.layers],
                memory_size=runtime.memory_mb,
                timeout=Duration.seconds(timeout_s(contract)),
                reserved_concurrent_executions=runtime.reserved_concurrency,
                tracing=lambda_.Tracing.ACTIVE,
                role=self.role,
                log_group=logs_to,
                logging_format=lambda_.LoggingFormat.JSON,
                environment={**environment, **extra},
                # A new version does not delete the previous one: a rollout can shift back to it.
                current_version_options=lambda_.VersionOptions(removal_policy=RemovalPolicy.RETAIN),
                # Published versions (what the alias serves) resume from a snapshot taken after init;
                # functions.runtime.snapstart holds the hooks around it.
                snap_start=(
                    lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS
                    if isinstance(runtime, LambdaRuntime) and runtime.snapstart
                    else None
                ),
            )

        self.function = function("Function", handler, self.log_group)
        # The contract's degraded handler (fallback `approximate`): same code and grants, its own function, so
        # dispatch can reach it while the primary's circuit is open.
        self.approximate: lambda_.Function | None = None
        if isinstance(runtime, LambdaRuntime) and runtime.approximate_handler is not None:
            approximate_logs = log_group(self, "ApproximateLogs", "agent-logs")
            approximate_logs.grant_write(self.role)
            self.approximate = function(
                "ApproximateFunction", runtime.approximate_handler, approximate_logs, AGENT_VARIANT="approximate"
            )
        # Every caller reaches a published version through the alias: a rollout shifts the alias between versions
        # (infra.components.rollout), and provisioned concurrency, when the contract asks, lives on it.
        warm = runtime.provisioned_concurrency if isinstance(runtime, LambdaRuntime) else None
        self.alias = lambda_.Alias(
            self,
            "Live",
            alias_name=LIVE_ALIAS,
            version=self.function.current_version,
            provisioned_concurrent_executions=warm,
            description=f"{contract.name}: the version callers invoke" + (f", {warm} warm instance(s)" if warm else ""),
        )
        self.approximate_alias: lambda_.Alias | None = None
        if self.approximate is not None:
            self.approximate_alias = lambda_.Alias(
                self,
                "ApproximateLive",
                alias_name=LIVE_ALIAS,
                version=self.approximate.current_version,
                description=f"{contract.name} approximate: the version dispatch falls back to",
            )
        acknowledge(self.role, "AwsSolutions-IAM5[Resource::*]", XRAY_REASON)
        if "write:documents" in contract.permissions or "read:documents" in contract.permissions:
            acknowledge(
                self.role,
                f"AwsSolutions-IAM5[Resource::{nag_ref(self, resources.data.documents)}/documents/*]",
                "documents are content-addressed objects under documents/: the key is only known at run time",
            )
        if isinstance(runtime, LlmRuntime):
            acknowledge(
                self.role,
                f"AwsSolutions-IAM5[Resource::{nag_ref(self, resources.data.documents)}/{CONVERSATIONS_PREFIX}*]",
                "a turn's content is stored under its sha256, only known at run time",
            )

    def dispatch_tools(self, dispatcher: lambda_.IFunction) -> None:
        """An llm agent with tools calls them through the dispatcher (the registry picks the implementation)."""
        if not isinstance(self.contract.runtime, LlmRuntime) or not self.contract.runtime.tools:
            return
        self.function.add_environment("DISPATCHER_FUNCTION", dispatcher.function_name)
        self.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[dispatcher.function_arn])
        )

    @property
    def target(self) -> lambda_.Alias:
        """What callers invoke: the ``live`` alias (never the function's unqualified ARN)."""
        return self.alias

    @property
    def approximate_target(self) -> lambda_.Alias | None:
        """The degraded handler's ``live`` alias, when the contract declares one."""
        return self.approximate_alias
