"""The capability registry: implementations written on deploy, health and circuits kept as they run.

- One item per implementation, upserted by a custom resource at deploy (health and circuit survive redeploys).
- The dispatcher function: steps that ask for a capability go through it; it picks, invokes, falls back.
- The health updater: the decisions stream folded into p50/p95, error rate and heartbeat per implementation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import custom_resources as cr
from constructs import Construct

from contracts.capability import CapabilityContract, LlmRuntime
from contracts.card import AgentProfile
from contracts.registry import APPROXIMATE_SUFFIX, KEY, Implementation, Variant, static_item
from infra.components.agent_pool import AgentPool
from infra.components.data_store import DataStore
from infra.components.eval_scores import load_scores
from infra.components.nag import STREAM_CONSUMER_REASON, XRAY_REASON, acknowledge
from infra.components.platform_function import platform_function
from infra.components.queues import dead_letter_queue
from infra.components.retention import log_group

# The id of the function CDK makes once per stack for its AwsCustomResources.
CUSTOM_RESOURCE_PROVIDER = "AWS679f53fac002430cb0da5b7982bd2287"
# When a circuit opens and how long it rests (functions.runtime.routing.Breaker).
BREAKER = {
    "CIRCUIT_CONSECUTIVE_FAILURES": "3",
    "CIRCUIT_ERROR_RATE": "0.5",
    "CIRCUIT_MIN_SAMPLES": "10",
    "CIRCUIT_COOL_DOWN_S": "30",
}


@dataclass(frozen=True)
class Entry:
    """One implementation as deploy registers it: the static attributes, and the function dispatch invokes."""

    attributes: dict[str, object]
    function: lambda_.IFunction


def entries(pools: Mapping[str, AgentPool], deployment_groups: Mapping[str, str]) -> dict[str, Entry]:
    """Registry name -> its entry; the attributes are laid out by contracts.registry.static_item.

    Targets are the ``live`` aliases; ``deployment_groups`` (agent -> CodeDeploy group name) names the group that
    rolls each primary out (none for approximate variants and SageMaker invokers).
    """
    found: dict[str, Entry] = {}
    quality = load_scores()  # the shipped eval scores (infra/evals.py measures them)
    for pool in pools.values():
        contract = pool.contract
        group = deployment_groups.get(contract.name, "")
        variants: list[tuple[str, Variant, lambda_.Alias, str]] = [(contract.name, "primary", pool.target, group)]
        if pool.approximate_target is not None:
            variants.append((contract.name + APPROXIMATE_SUFFIX, "approximate", pool.approximate_target, ""))
        for name, variant, function, deployment_group in variants:
            implementation = Implementation(
                name=name,
                agent=contract.name,
                variant=variant,
                capabilities=list(contract.capabilities),
                contract_version=contract.version,
                runtime=contract.runtime.kind,
                target=function.function_arn,
                output_model=contract.io.output,
                fallback=[f if isinstance(f, str) else f.model_dump() for f in contract.fallback],
                deployment_group=deployment_group,
                published_version=function.version.version,
                quality=quality.get(name),
                profile=AgentProfile.of(contract),
            )
            found[name] = Entry(static_item(implementation), function)
    return found


def _tools(contract: CapabilityContract) -> list[str]:
    return list(contract.runtime.tools) if isinstance(contract.runtime, LlmRuntime) else []


def tool_implementers(pools: Mapping[str, AgentPool]) -> set[str]:
    """The agents llm agents may reach as tools: those offering a tool capability and calling no tools themselves."""
    tools = {tool for pool in pools.values() for tool in _tools(pool.contract)}
    return {
        pool.contract.name
        for pool in pools.values()
        if tools & set(pool.contract.capabilities) and not _tools(pool.contract)
    }


def _typed(value: object) -> dict[str, object]:
    if isinstance(value, list):
        return {"L": [{"S": str(v)} for v in value]}
    return {"S": value}


class Registry(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        data: DataStore,
        pools: Mapping[str, AgentPool],
        layers: list[lambda_.ILayerVersion],
        removal_policy: RemovalPolicy,
        deployment_groups: Mapping[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.table = data.private_table(
            self, "Table", partition=KEY, retention="registry", removal_policy=removal_policy
        )
        self.data = data
        self.layers = layers
        registered = entries(pools, deployment_groups)
        if registered:
            register_items(
                self, "Register", self.table, data, {n: e.attributes for n, e in registered.items()}, kind="registry"
            )

        self.dispatcher = dispatcher_function(self, "Dispatcher", self, list(registered.values()))
        self.tool_dispatcher = tool_dispatcher(self, self, pools, registered)

        self.health = platform_function(
            self,
            "Health",
            "registry_health",
            layers,
            data=data,
            description="agentplane registry health: decisions stream -> latency, error rate, heartbeat",
            environment={"REGISTRY_TABLE": self.table.table_name},
            wildcard_reason=STREAM_CONSUMER_REASON,
        )
        self.health.add_to_role_policy(
            iam.PolicyStatement(actions=["dynamodb:GetItem", "dynamodb:UpdateItem"], resources=[self.table.table_arn])
        )
        self.health_failures = dead_letter_queue(
            self, "HealthFailures", holds="the health updater's on-failure destination"
        )
        self.health.add_event_source(
            sources.DynamoEventSource(
                data.decisions,
                starting_position=lambda_.StartingPosition.LATEST,
                batch_size=100,
                max_batching_window=Duration.seconds(1),
                retry_attempts=2,  # health is advisory: a stuck batch must not hold the stream back
                on_failure=sources.SqsDlq(self.health_failures),
            )
        )

    def grant_read(self, function: lambda_.Function) -> None:
        """What the capabilities route needs: the whole (small) registry, nothing writable."""
        function.add_environment("REGISTRY_TABLE", self.table.table_name)
        function.add_to_role_policy(iam.PolicyStatement(actions=["dynamodb:Scan"], resources=[self.table.table_arn]))


def tool_dispatcher(
    scope: Construct, registry: Registry, pools: Mapping[str, AgentPool], registered: Mapping[str, Entry]
) -> lambda_.Function | None:
    """The dispatcher llm agents call their tools through, if ``pools`` hold tools: the workflows' dispatcher invokes
    the llm agents, so theirs invoking it back would be a cycle in the template (and a loop at run time)."""
    tool_agents = tool_implementers(pools)
    if not tool_agents:
        return None
    reachable = [e for e in registered.values() if e.attributes["agent"] in tool_agents]
    function = dispatcher_function(scope, "ToolDispatcher", registry, reachable)
    for pool in pools.values():
        pool.dispatch_tools(function)
    return function


def dispatcher_function(
    scope: Construct, construct_id: str, registry: Registry, targets: list[Entry]
) -> lambda_.Function:
    """A dispatcher over ``registry``, allowed to invoke ``targets`` (more are granted with :func:`dispatch_policy`)."""
    data = registry.data
    dispatcher = platform_function(
        scope,
        construct_id,
        "dispatcher",
        registry.layers,
        data=data,
        description="agentplane dispatcher: capability -> healthy implementation, with ranked fallback",
        environment={
            "REGISTRY_TABLE": registry.table.table_name,
            "DECISIONS_TABLE": data.decisions.table_name,
            **BREAKER,
        },
    )
    dispatcher.add_to_role_policy(
        iam.PolicyStatement(
            actions=["dynamodb:Scan", "dynamodb:GetItem", "dynamodb:UpdateItem"], resources=[registry.table.table_arn]
        )
    )
    dispatcher.add_to_role_policy(
        iam.PolicyStatement(actions=["dynamodb:PutItem", "dynamodb:GetItem"], resources=[data.decisions.table_arn])
    )
    if targets:
        dispatcher.add_to_role_policy(invoke_statement(targets))
    return dispatcher


def invoke_statement(targets: list[Entry]) -> iam.PolicyStatement:
    return iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[e.function.function_arn for e in targets])


def register_items(
    scope: Construct,
    prefix: str,
    table: dynamodb.ITable,
    data: DataStore,
    items: Mapping[str, Mapping[str, object]],
    *,
    kind: str,
    partition: str = KEY,
) -> None:
    """Upsert each item (``partition`` -> name, the rest its attributes) into ``table`` at deploy, from ``scope``'s
    stack; delete it when it leaves the template. The registry writes its implementations so, the catalog its
    workflows."""
    items = {name: {k: v for k, v in item.items() if k != partition} for name, item in items.items()}
    names = {f"#{k}": k for k in next(iter(items.values()))}
    policy = cr.AwsCustomResourcePolicy.from_statements(
        [
            iam.PolicyStatement(actions=["dynamodb:UpdateItem", "dynamodb:DeleteItem"], resources=[table.table_arn]),
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                resources=[data.key.key_arn],
            ),
        ]
    )
    # The custom-resource function CDK provides logs here, not to an implicit group kept forever.
    provider_logs = log_group(scope, f"{prefix}Logs", "platform-logs")
    for name, attributes in sorted(items.items()):
        key = {partition: {"S": name}}
        upsert = cr.AwsSdkCall(
            service="DynamoDB",
            action="updateItem",
            parameters={
                "TableName": table.table_name,
                "Key": key,
                "UpdateExpression": "SET " + ", ".join(f"{n} = :{n[1:]}" for n in sorted(names)),
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": {f":{k}": _typed(v) for k, v in attributes.items()},
            },
            physical_resource_id=cr.PhysicalResourceId.of(f"{kind}/{name}"),
        )
        resource = cr.AwsCustomResource(
            scope,
            prefix + "".join(p.capitalize() for p in name.replace("~", "-").split("-")),
            on_create=upsert,
            on_update=upsert,
            on_delete=cr.AwsSdkCall(
                service="DynamoDB",
                action="deleteItem",
                parameters={"TableName": table.table_name, "Key": key},
            ),
            policy=policy,
            install_latest_aws_sdk=False,
            log_group=provider_logs,
            timeout=Duration.minutes(2),
        )
        resource.node.add_dependency(table)
    acknowledge_provider(scope)


def acknowledge_provider(scope: Construct) -> None:
    """CDK's shared custom-resource function: traced like every function of the plane, and acknowledged."""
    stack_functions = [
        child for child in Stack.of(scope).node.children if child.node.id.startswith(CUSTOM_RESOURCE_PROVIDER)
    ]
    for function in stack_functions:
        resource = function.node.default_child
        assert isinstance(resource, lambda_.CfnFunction)
        resource.add_property_override("TracingConfig.Mode", "Active")
        if isinstance(function, lambda_.Function) and function.role is not None:
            function.role.add_to_principal_policy(
                iam.PolicyStatement(actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"], resources=["*"])
            )
            acknowledge(function.role, "AwsSolutions-IAM5[Resource::*]", XRAY_REASON)
        acknowledge(
            function,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "the CDK custom-resource function that writes registry entries at deploy: logs only",
        )
        acknowledge(
            function,
            "AwsSolutions-L1",
            "the CDK-managed custom-resource runtime follows the aws-cdk-lib release pinned in the lockfile",
        )
