"""AWS FIS experiments on the agents: Lambda invocation delay and errors, stopped by the SLO alarms.

FIS's Lambda actions work through its Lambda extension: each agent gets the extension layer (resolved
from AWS's public SSM parameter for arm64), the exec wrapper, and read access to the configuration
prefix FIS writes while an experiment runs. That adds the extension to every cold start, so the whole
set is opt-in (context ``agentplane:fault-injection=true``), for staging planes.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_fis as fis
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from infra.components.data_store import DataStore
from infra.components.nag import acknowledge, logical_id

FIS_EXTENSION_PARAMETER = "/aws/service/fis/lambda-extension/AWS-FIS-extension-arm64/1.x.x"
CONFIG_PREFIX = "FisConfigs/"
DURATION = "PT10M"
# (experiment, FIS action, its parameters): what a staging game day injects into every agent.
EXPERIMENTS: tuple[tuple[str, str, dict[str, str]], ...] = (
    (
        "Delay",
        "aws:lambda:invocation-add-delay",
        {"duration": DURATION, "invocationPercentage": "50", "startupDelayMilliseconds": "2000"},
    ),
    (
        "Errors",
        "aws:lambda:invocation-error",
        {"duration": DURATION, "invocationPercentage": "20", "preventExecution": "true"},
    ),
)


class FaultInjection(Construct):
    """Experiment templates over the given functions, each stopped as soon as ``stop_when`` alarms."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Mapping[str, lambda_.Function],
        stop_when: cloudwatch.IAlarm,
        data: DataStore,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.configs = data.private_bucket(self, "Configs", log_prefix="fis/", removal_policy=removal_policy)
        config_location = f"arn:aws:s3:::{self.configs.bucket_name}/{CONFIG_PREFIX}"
        layer = lambda_.LayerVersion.from_layer_version_arn(
            self, "Extension", ssm.StringParameter.value_for_string_parameter(self, FIS_EXTENSION_PARAMETER)
        )
        bucket_id = logical_id(self.configs)
        prefix_objects = self.configs.arn_for_objects(f"{CONFIG_PREFIX}*")
        prefix_reason = "FIS names one configuration object per experiment run under this prefix"
        for function in functions.values():
            function.add_layers(layer)
            function.add_environment("AWS_FIS_CONFIGURATION_LOCATION", config_location)
            function.add_environment("AWS_LAMBDA_EXEC_WRAPPER", "/opt/aws-fis/bootstrap")
            function.add_to_role_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[prefix_objects]))
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["s3:ListBucket"],
                    resources=[self.configs.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{CONFIG_PREFIX}*"]}},
                )
            )
            if function.role is not None:
                acknowledge(
                    function.role, f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{CONFIG_PREFIX}*]", prefix_reason
                )

        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("fis.amazonaws.com"),
            description="agentplane fault injection: writes the experiment's configuration for the agents' extension",
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:PutObject", "s3:DeleteObject"], resources=[prefix_objects])
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[data.key.key_arn])
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["lambda:GetFunction"], resources=[f.function_arn for f in functions.values()])
        )
        self.role.add_to_principal_policy(iam.PolicyStatement(actions=["tag:GetResources"], resources=["*"]))
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "tag:GetResources (FIS target resolution) supports no resource-level permissions",
        )
        acknowledge(self.role, f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{CONFIG_PREFIX}*]", prefix_reason)

        targets = {
            "agents": fis.CfnExperimentTemplate.ExperimentTemplateTargetProperty(
                resource_type="aws:lambda:function",
                resource_arns=[f.function_arn for f in functions.values()],
                selection_mode="ALL",
            )
        }
        self.templates: dict[str, fis.CfnExperimentTemplate] = {}
        for name, action_id, parameters in EXPERIMENTS:
            self.templates[name] = fis.CfnExperimentTemplate(
                self,
                name,
                description=f"agentplane agents: {action_id} for {DURATION}; stops when any SLO burns fast",
                role_arn=self.role.role_arn,
                targets=targets,
                actions={
                    name.lower(): fis.CfnExperimentTemplate.ExperimentTemplateActionProperty(
                        action_id=action_id, parameters=parameters, targets={"Functions": "agents"}
                    )
                },
                stop_conditions=[
                    fis.CfnExperimentTemplate.ExperimentTemplateStopConditionProperty(
                        source="aws:cloudwatch:alarm", value=stop_when.alarm_arn
                    )
                ],
                tags={"Name": f"agentplane-{name.lower()}"},
            )
