"""A plane-owned Lambda (not an agent): arm64, traced, JSON logs, its own role with its log group and the data key."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.components.agent_pool import LAMBDA_RUNTIME
from infra.components.data_store import DataStore
from infra.components.nag import XRAY_REASON, acknowledge
from infra.components.retention import log_group
from infra.components.staging import stage
from infra.paths import FUNCTIONS_DIR, FUNCTIONS_PACKAGE, package_folder, plane_handler


def platform_function(
    scope: Construct,
    construct_id: str,
    folder: str,
    layers: list[lambda_.ILayerVersion],
    *,
    data: DataStore,
    description: str,
    environment: dict[str, str],
    reserved_concurrency: int | None = None,
    wildcard_reason: str = XRAY_REASON,
) -> lambda_.Function:
    logs = log_group(scope, f"{construct_id}Logs", "platform-logs")
    role = iam.Role(scope, f"{construct_id}Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    logs.grant_write(role)
    # The plane's tables and buckets are encrypted with its data key.
    role.add_to_principal_policy(
        iam.PolicyStatement(actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[data.key.key_arn])
    )
    acknowledge(role, "AwsSolutions-IAM5[Resource::*]", wildcard_reason)
    return lambda_.Function(
        scope,
        construct_id,
        description=description,
        runtime=LAMBDA_RUNTIME,
        architecture=lambda_.Architecture.ARM_64,
        handler=plane_handler(folder),
        code=lambda_.Code.from_asset(
            str(stage(f"fn-{folder}", [(FUNCTIONS_DIR / folder, f"{package_folder(FUNCTIONS_PACKAGE)}/{folder}")]))
        ),
        layers=layers,
        memory_size=512,
        timeout=Duration.seconds(60),
        reserved_concurrent_executions=reserved_concurrency,
        tracing=lambda_.Tracing.ACTIVE,
        role=role,
        log_group=logs,
        logging_format=lambda_.LoggingFormat.JSON,
        environment={"POWERTOOLS_SERVICE_NAME": folder.replace("_", "-"), **environment},
    )
