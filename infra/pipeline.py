"""The deployment pipeline (opt-in, context ``agentplane:pipeline=true``): source, `make test` + synth, dev, prod.

CDK Pipelines deploys the same ``AgentPlaneStack`` the default app deploys, once per stage. Each stage has
``pre`` and ``post`` step lists: prod's ``pre`` holds the manual approval; canary deployments and their checks
plug in there too, without touching the pipeline's shape.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import pipelines
from constructs import Construct, IConstruct

from infra.components.nag import acknowledge, logical_id, region_account
from infra.context import ContextError
from infra.paths import REPO_ROOT
from infra.stack import AgentPlaneStack

PIPELINE = "agentplane:pipeline"
CONNECTION_ARN = "agentplane:pipeline-connection-arn"
REPOSITORY = "agentplane:pipeline-repo"
BRANCH = "agentplane:pipeline-branch"
PIPELINE_ENV = "agentplane:pipeline-env"
STAGE_ENV = "agentplane:pipeline-{stage}-env"
STAGES = ("dev", "prod")
# Builds the plane stack (scope, stack id, description): `infra.app` passes the one the default app uses.
PlaneFactory = Callable[[Construct, str, str], AgentPlaneStack]

_CONNECTION = re.compile(
    r"arn:aws[a-z-]*:(codestar-connections|codeconnections):[a-z0-9-]+:\d{12}:connection/[0-9a-f-]{36}"
)
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_ENVIRONMENT = re.compile(r"aws://(?P<account>\d{12})/(?P<region>[a-z]{2}(-[a-z]+)+-\d)")


@dataclass(frozen=True)
class PipelineSettings:
    """What the pipeline reads from context; nothing here has a default that names an account."""

    connection_arn: str
    repository: str
    branch: str
    env: cdk.Environment | None = None
    stage_envs: Mapping[str, cdk.Environment | None] = field(default_factory=dict)

    @classmethod
    def from_context(cls, app: cdk.App) -> PipelineSettings:
        def required(key: str, pattern: re.Pattern[str] | None, what: str) -> str:
            value = app.node.try_get_context(key)
            if not value:
                raise ContextError(f"context {key} is required for the pipeline: {what} (-c {key}=...)")
            if pattern is not None and not pattern.fullmatch(str(value)):
                raise ContextError(f"context {key} must be {what}, not {value!r}")
            return str(value)

        return cls(
            connection_arn=required(CONNECTION_ARN, _CONNECTION, "the ARN of a CodeStar (CodeConnections) connection"),
            repository=required(REPOSITORY, _REPOSITORY, "the source repository as owner/name"),
            branch=required(BRANCH, None, "the branch the pipeline builds"),
            env=environment(app, PIPELINE_ENV),
            stage_envs={stage: environment(app, STAGE_ENV.format(stage=stage)) for stage in STAGES},
        )

    def context_flags(self, app_context: Mapping[str, str]) -> list[str]:
        """The ``-c`` flags that make the pipeline's own synth rebuild this same pipeline (and the same plane)."""
        values = {**app_context, PIPELINE: "true", CONNECTION_ARN: self.connection_arn}
        values.update({REPOSITORY: self.repository, BRANCH: self.branch})
        if self.env is not None:
            values[PIPELINE_ENV] = f"aws://{self.env.account}/{self.env.region}"
        for stage, env in self.stage_envs.items():
            if env is not None:
                values[STAGE_ENV.format(stage=stage)] = f"aws://{env.account}/{env.region}"
        return [f"-c {shlex.quote(f'{key}={value}')}" for key, value in values.items()]


def environment(app: cdk.App, key: str) -> cdk.Environment | None:
    """``aws://ACCOUNT/REGION`` from context, or None: the stack then takes the account of the deploying credentials."""
    value = app.node.try_get_context(key)
    if not value:
        return None
    match = _ENVIRONMENT.fullmatch(str(value))
    if match is None:
        raise ContextError(f"context {key} must look like aws://123456789012/eu-west-1, not {value!r}")
    return cdk.Environment(account=match["account"], region=match["region"])


def pinned_cdk_cli() -> str:
    """The CDK CLI version package.json pins: self-mutation and asset publishing use the same one as `make`."""
    package: dict[str, Any] = json.loads((REPO_ROOT / "package.json").read_text(encoding="utf-8"))
    version: str = package["devDependencies"]["aws-cdk"]
    return version


@dataclass
class StageSteps:
    """Steps run before a stage's stacks deploy (``pre``) and after (``post``): approvals, canaries, checks."""

    pre: list[pipelines.Step] = field(default_factory=list)
    post: list[pipelines.Step] = field(default_factory=list)


def default_stage_steps() -> dict[str, StageSteps]:
    """dev deploys straight after the build; prod waits for a person to approve the promotion."""
    approval = pipelines.ManualApprovalStep("PromoteToProd", comment="Promote this build from dev to prod?")
    return {"dev": StageSteps(), "prod": StageSteps(pre=[approval])}


class PlaneStage(cdk.Stage):
    """One deployment of the plane (dev, prod): the same stack the default app deploys."""

    def __init__(
        self, scope: Construct, stage_id: str, *, stack_name: str, plane: PlaneFactory, env: cdk.Environment | None
    ) -> None:
        super().__init__(scope, stage_id, env=env)
        self.plane = plane(self, stack_name, f"agentplane ({stage_id}): orchestration plane for AI agents")


class PipelineStack(cdk.Stack):
    """CodePipeline from CDK Pipelines: Source -> Build (`make test`, synth) -> UpdatePipeline -> dev -> prod."""

    def __init__(
        self,
        scope: Construct,
        stack_id: str,
        *,
        settings: PipelineSettings,
        plane_stack_name: str,
        plane: PlaneFactory,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
        app_context: Mapping[str, str] | None = None,
        stage_steps: Mapping[str, StageSteps] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, stack_id, env=settings.env, **kwargs)
        self.artifact_key = kms.Key(
            self,
            "ArtifactKey",
            description="agentplane pipeline: build and deployment artifacts at rest",
            enable_key_rotation=True,
            removal_policy=removal_policy,
        )
        self.access_logs = s3.Bucket(
            self,
            "ArtifactAccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,  # S3 server access logging cannot write to SSE-KMS
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(expiration=cdk.Duration.days(365))],
            removal_policy=removal_policy,
        )
        self.artifacts = s3.Bucket(
            self,
            "Artifacts",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.artifact_key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="artifacts/",
            removal_policy=removal_policy,
        )
        source = pipelines.CodePipelineSource.connection(
            settings.repository, settings.branch, connection_arn=settings.connection_arn
        )
        self.synth_step = pipelines.ShellStep(
            "Synth",
            input=source,
            install_commands=["make setup"],
            # `make test` is the gate (lint, types, unit to e2e, cdk-nag, cfn-lint); synth only runs if it passes.
            commands=[
                "make test",
                " ".join(["npx --no-install cdk synth -q --no-notices", *settings.context_flags(app_context or {})]),
            ],
            env={"CDK_DISABLE_CLI_TELEMETRY": "true", "CDK_DISABLE_VERSION_CHECK": "1"},
            primary_output_directory="cdk.out",
        )
        self.pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            synth=self.synth_step,
            artifact_bucket=self.artifacts,
            cli_version=pinned_cdk_cli(),
            pipeline_type=codepipeline.PipelineType.V2,
            publish_assets_in_parallel=False,  # one asset project for all the plane's files, not one per asset
            code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=codebuild.BuildEnvironment(
                    build_image=codebuild.LinuxBuildImage.STANDARD_7_0, compute_type=codebuild.ComputeType.MEDIUM
                ),
            ),
        )
        self.stages: dict[str, PlaneStage] = {}
        self.stage_steps = dict(stage_steps) if stage_steps is not None else default_stage_steps()
        for stage in STAGES:
            self.stages[stage] = PlaneStage(
                self,
                stage,
                stack_name=plane_stack_name,
                plane=plane,
                env=settings.stage_envs.get(stage),
            )
            steps = self.stage_steps.get(stage, StageSteps())
            self.pipeline.add_stage(self.stages[stage], pre=steps.pre, post=steps.post)
        self.pipeline.build_pipeline()
        self._acknowledge_generated_grants()

    def _acknowledge_generated_grants(self) -> None:
        """CDK Pipelines writes these roles' policies; each wildcard below is one of its grants, scoped as it can be."""
        account = region_account(self).split(":")[1]
        arn = f"arn:<AWS::Partition>:{{service}}:{region_account(self)}:"
        artifacts = logical_id(self.artifacts)
        read = {
            **dict.fromkeys(
                ("Action::s3:GetObject*", "Action::s3:GetBucket*", "Action::s3:List*"),
                "read access to this pipeline's own artifact bucket (CDK grant_read); the wildcards are its "
                "object-level read actions on that one bucket",
            ),
            f"Resource::<{artifacts}.Arn>/*": "the objects of this pipeline's own artifact bucket, named by "
            "CodePipeline at run time",
        }
        write = {
            **dict.fromkeys(
                ("Action::s3:DeleteObject*", "Action::s3:Abort*"),
                "write access to this pipeline's own artifact bucket (CDK grant_read_write), nothing else",
            ),
            **dict.fromkeys(
                ("Action::kms:GenerateDataKey*", "Action::kms:ReEncrypt*"),
                "encrypt artifacts with this pipeline's own artifact key (CDK grant_encrypt_decrypt), nothing else",
            ),
        }

        def build_logs(project: codebuild.IProject) -> dict[str, str]:
            lid = logical_id(project)
            return {
                f"Resource::{arn.format(service='logs')}log-group:/aws/codebuild/<{lid}>:*": "the log streams "
                "CodeBuild names at run time, in this project's own log group",
                f"Resource::{arn.format(service='codebuild')}report-group/<{lid}>-*": "the test report groups "
                "CodeBuild names after this project, nothing wider",
            }

        code_pipeline = self.pipeline.pipeline
        source_role = code_pipeline.node.find_child("Source").node.children[0].node.find_child("CodePipelineActionRole")
        assets = self.pipeline.node.try_find_child("Assets")
        # One role per kind of asset the plane has: files (code, layers) and, with a container, Docker images.
        asset_roles = [assets.node.try_find_child(role) for role in ("FileRole", "DockerRole")] if assets else []
        mutation = self.pipeline.self_mutation_project
        findings: list[tuple[IConstruct | None, dict[str, str]]] = [
            (code_pipeline.role, {**read, **write}),
            (source_role, {**read, **write}),
            (self.pipeline.synth_project.role, {**read, **write, **build_logs(self.pipeline.synth_project)}),
            (
                mutation.role,
                {
                    **read,
                    **{key: reason for key, reason in write.items() if "kms" in key},
                    **build_logs(mutation),
                    "Resource::*": "the CDK CLI's self-update reads stack status (cloudformation:DescribeStacks) "
                    "and lists buckets (s3:ListBucket); neither action supports a narrower resource here",
                    f"Resource::arn:*:iam::{account}:role/*": "assume only the CDK bootstrap roles: the statement's "
                    "condition requires their aws-cdk:bootstrap-role tag, their names carry the bootstrap qualifier",
                },
            ),
        ]
        asset_rules = {
            **read,
            "Resource::*": "start and follow the asset-publishing builds CDK Pipelines creates "
            "(codebuild:StartBuild/BatchGetBuilds); read-only artifact access otherwise",
            f"Resource::{arn.format(service='logs')}log-group:/aws/codebuild/*": "logs of the asset-publishing "
            "projects, whose names CDK Pipelines generates",
            f"Resource::{arn.format(service='codebuild')}report-group/*": "report groups of the "
            "asset-publishing projects, whose names CDK Pipelines generates",
        }
        findings += [(role, asset_rules) for role in asset_roles if role is not None]
        for role, rules in findings:
            assert role is not None
            for rule, reason in rules.items():
                acknowledge(role, f"AwsSolutions-IAM5[{rule}]", reason)

    @classmethod
    def from_context(cls, app: cdk.App, *, plane_stack_name: str, plane: PlaneFactory) -> PipelineStack:
        """The pipeline as `cdk synth -c agentplane:pipeline=true ...` builds it; settings are checked first."""
        settings = PipelineSettings.from_context(app)
        # Every agentplane setting the app was given travels to the pipeline's own synth, so it rebuilds this app.
        app_context = {k: str(v) for k, v in app.node.get_all_context().items() if k.startswith("agentplane:")}
        retain = app_context.get("agentplane:removal-policy", "retain") == "retain"
        return cls(
            app,
            f"{plane_stack_name}-pipeline",
            settings=settings,
            plane_stack_name=plane_stack_name,
            plane=plane,
            removal_policy=cdk.RemovalPolicy.RETAIN if retain else cdk.RemovalPolicy.DESTROY,
            app_context=app_context,
            description="agentplane: deployment pipeline (make test, dev, approval, prod)",
        )
