"""A ``runtime: sagemaker`` contract's pool: its image, model, endpoint config, endpoint, autoscaling, and the
invoker Lambda that workflow steps call (the only principal allowed to invoke the endpoint).

The image is a ``DockerImageAsset`` over a staged build context (``containers/``, ``contracts/`` and
``functions/<container>/`` when the container shares its core with a Lambda). Synth only hashes and copies
the context: Docker builds it at deploy time (``cdk deploy`` publishes it to the bootstrap ECR repository),
so synth stays offline and Docker-free. A contract with ``runtime.serving`` names a standard LLM image instead
(its URI from ``infra/llm-images.json``), with the weights mounted from S3.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import ArnFormat, Aws, CfnMapping, Duration, Stack, Token
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from containers.base.settings import MAX_BATCH_ENV, MAX_WAIT_MS_ENV
from contracts.capability import CapabilityContract, FallbackCapability, LambdaRuntime, LlmServing, SageMakerRuntime
from infra import llm_images
from infra.components.agent_pool import AgentPool, Resources
from infra.components.coordinator_workflow import TRANSIENT_ERRORS
from infra.components.errors import ContractInfraError
from infra.components.nag import acknowledge, region_account
from infra.components.staging import stage
from infra.conventions import CONTAINER_METADATA, SERVING_METADATA
from infra.paths import (
    CONTAINERS_DIR,
    CONTAINERS_PACKAGE,
    CONTRACTS_DIR,
    CONTRACTS_PACKAGE,
    FUNCTIONS_DIR,
    FUNCTIONS_PACKAGE,
    package_folder,
    plane_handler,
)

VARIANT = "AllTraffic"
INVOKER_HANDLER = plane_handler("endpoint_invoker")
# Nitro instances with local NVMe storage refuse an endpoint config KmsKeyId (their instance store is
# hardware-encrypted with XTS-AES-256 instead); everything else gets the plane's data key.
LOCAL_STORAGE_FAMILIES = ("g4dn", "g5", "g6", "g6e", "p3dn", "p4d", "p4de", "p5", "c5d", "m5d", "r5d", "inf2", "trn1")
GPU_FAMILIES = ("g", "p")
SCALING_SERVICE_LINKED_ROLE = (
    "aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
)
# What the workflow catches on an endpoint step to follow the contract's fallback; DeadlineExceeded and
# BadInput are not among them: stale or malformed work fails the same way on any implementation.
FALLBACK_ERRORS = ["EndpointThrottled", "ModelError", "EndpointUnavailable", "States.Timeout", *TRANSIENT_ERRORS]


def instance_family(instance_type: str) -> str:
    return instance_type.removeprefix("ml.").split(".", 1)[0]


def has_local_storage(instance_type: str) -> bool:
    return instance_family(instance_type) in LOCAL_STORAGE_FAMILIES


def is_gpu(instance_type: str) -> bool:
    family = instance_family(instance_type)
    return family.startswith(GPU_FAMILIES) and family[1:2].isdigit()


def container_environment(contract: CapabilityContract) -> dict[str, str]:
    """The serving base's settings (containers/base/settings.py) from the contract's ``batching``."""
    batching = contract.batching
    if batching is None:
        return {}
    return {MAX_BATCH_ENV: str(batching.max_batch), MAX_WAIT_MS_ENV: str(batching.max_wait_ms)}


MODEL_DIR = "/opt/ml/model"  # where SageMaker mounts the model data


def serving_environment(serving: LlmServing) -> dict[str, str]:
    """The image's own settings: serve the mounted weights under ``model_name``, with tool calls parsed (each
    image's documented variables); the contract's ``environment`` wins."""
    if serving.image == "vllm":  # the SageMaker vLLM image turns SM_VLLM_* into server arguments
        derived = {
            "SM_VLLM_MODEL": MODEL_DIR,
            "SM_VLLM_SERVED_MODEL_NAME": serving.model_name,
            "SM_VLLM_ENABLE_AUTO_TOOL_CHOICE": "true",
            "SM_VLLM_TOOL_CALL_PARSER": serving.tool_parser,
        }
        length = "SM_VLLM_MAX_MODEL_LEN"
    elif serving.image == "djl-lmi":
        derived = {
            "HF_MODEL_ID": MODEL_DIR,
            "SERVING_FAIL_FAST": "true",
            "OPTION_ENABLE_AUTO_TOOL_CHOICE": "true",
            "OPTION_TOOL_CALL_PARSER": serving.tool_parser,
        }
        length = "OPTION_MAX_MODEL_LEN"
    else:  # tgi: tool calls need no flag
        derived = {"HF_MODEL_ID": MODEL_DIR}
        length = "MAX_TOTAL_TOKENS"
    if serving.max_model_len is not None:
        derived[length] = str(serving.max_model_len)
    return {**derived, **serving.environment}


def invoker_contract(contract: CapabilityContract) -> CapabilityContract:
    """The contract as its invoker Lambda serves it: same identity, io and SLO, a Lambda runtime."""
    return contract.model_copy(
        update={"runtime": LambdaRuntime(kind="lambda", handler=INVOKER_HANDLER, memory_mb=256), "batching": None}
    )


def within(version: str, max_version: str) -> bool:
    """Whether ``version`` (x.y.z) is at most ``max_version`` ("1.x", "1.2.x" or "1.2.3"; x: any)."""
    for have, wanted in zip(version.split("."), max_version.split("."), strict=False):
        if wanted == "x":
            return True
        if int(have) != int(wanted):
            return int(have) < int(wanted)
    return True


def fallback_for(contract: CapabilityContract, contracts: Mapping[str, CapabilityContract]) -> CapabilityContract:
    """The first Lambda contract the contract's fallback names: same capability, version within the range."""
    for entry in contract.fallback:
        if not isinstance(entry, FallbackCapability):
            continue
        for name, candidate in contracts.items():
            if name == contract.name or entry.capability not in candidate.capabilities:
                continue
            if isinstance(candidate.runtime, LambdaRuntime) and within(candidate.version, entry.max_version):
                return candidate
    raise ContractInfraError(f"contract {contract.name}: fallback: no Lambda implementation serves it")


class SageMakerPool(Construct):
    """One SageMaker-served agent: a warm endpoint (floor = ``min_instances``), target tracking, its invoker."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        contract: CapabilityContract,
        resources: Resources,
        layers: list[lambda_.ILayerVersion],
    ) -> None:
        super().__init__(scope, construct_id)
        runtime = contract.runtime
        if not isinstance(runtime, SageMakerRuntime):
            raise ContractInfraError(f"contract {contract.name}: runtime.kind: {runtime.kind} is not a SageMaker pool")
        self.contract = contract
        self.runtime = runtime
        self.execution_role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"agentplane endpoint {contract.name} {contract.version}: pull its image, write its logs",
        )
        if runtime.serving is not None:
            container = self._serving_container(runtime.serving)
        else:
            container = self._built_container(runtime)
        stack = Stack.of(self)
        self.execution_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name="/aws/sagemaker/Endpoints/*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        acknowledge(
            self.execution_role,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken supports no resource-level permissions; the image pull itself is limited "
            "to the image's own repository",
        )
        acknowledge(
            self.execution_role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:{region_account(self.execution_role)}:log-group:"
            "/aws/sagemaker/Endpoints/*]",
            "SageMaker names the endpoint's log group after the endpoint, which CloudFormation names at deploy",
        )

        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=self.execution_role.role_arn,
            # The container needs no network: its model ships in the image, or SageMaker mounts it from S3 first.
            enable_network_isolation=True,
            primary_container=container,
        )
        if runtime.serving is not None:
            serving = runtime.serving
            self.model.add_metadata(
                SERVING_METADATA,
                {"image": serving.image, "version": serving.version, "model_name": serving.model_name},
            )
        else:
            self.model.add_metadata(CONTAINER_METADATA, runtime.container)
        self.model.node.add_dependency(self.execution_role)

        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "Config",
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=VARIANT,
                    model_name=self.model.attr_model_name,
                    instance_type=runtime.instance_type,
                    initial_instance_count=runtime.min_instances,
                    initial_variant_weight=1.0,
                )
            ],
            kms_key_id=None if has_local_storage(runtime.instance_type) else resources.data.key.key_arn,
        )
        self.endpoint = sagemaker.CfnEndpoint(
            self, "Endpoint", endpoint_config_name=self.endpoint_config.attr_endpoint_config_name
        )
        self.endpoint_arn = self.endpoint.ref  # Ref of an AWS::SageMaker::Endpoint is its ARN

        # The warm minimum is the floor; target tracking on invocations per instance scales between the bounds.
        self.scaling = appscaling.ScalableTarget(
            self,
            "Scaling",
            service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            resource_id=f"endpoint/{self.endpoint.attr_endpoint_name}/variant/{VARIANT}",
            min_capacity=runtime.min_instances,
            max_capacity=runtime.max_instances,
            # Application Auto Scaling's own service-linked role for SageMaker variants, not a new role.
            role=iam.Role.from_role_arn(
                self,
                "ScalingRole",
                stack.format_arn(
                    service="iam",
                    region="",
                    resource="role",
                    resource_name=SCALING_SERVICE_LINKED_ROLE,
                ),
                mutable=False,
            ),
        )
        self.scaling.node.add_dependency(self.endpoint)
        self.scaling.scale_to_track_metric(
            "InvocationsPerInstance",
            target_value=runtime.target_invocations_per_minute,
            predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
            scale_out_cooldown=Duration.minutes(1),
            scale_in_cooldown=Duration.minutes(5),
        )

        # The invoker: the contract's identity on Lambda; the only grant on the endpoint is its InvokeEndpoint.
        self.invoker = AgentPool(
            self, "Invoker", contract=invoker_contract(contract), resources=resources, layers=layers
        )
        self.invoker.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["sagemaker:InvokeEndpoint"], resources=[self.endpoint_arn])
        )
        for key, value in self.invoker_environment().items():
            self.invoker.function.add_environment(key, value)

    def _built_container(self, runtime: SageMakerRuntime) -> sagemaker.CfnModel.ContainerDefinitionProperty:
        """The image built from ``containers/<container>/`` (its model inside), in the bootstrap repository."""
        assert runtime.container is not None
        folder = CONTAINERS_DIR / runtime.container
        if not folder.is_dir():
            raise ContractInfraError(
                f"contract {self.contract.name}: runtime.container: no folder containers/{folder.name}"
            )
        dockerfile = "cuda.Dockerfile" if is_gpu(runtime.instance_type) else "cpu.Dockerfile"
        # The image's Dockerfile copies these at their import paths (the wheel's build rewrites its COPY lines).
        containers = package_folder(CONTAINERS_PACKAGE)
        layout = [(CONTAINERS_DIR, containers), (CONTRACTS_DIR, package_folder(CONTRACTS_PACKAGE))]
        if (FUNCTIONS_DIR / runtime.container).is_dir():
            layout.append(
                (FUNCTIONS_DIR / runtime.container, f"{package_folder(FUNCTIONS_PACKAGE)}/{runtime.container}")
            )
        image = ecr_assets.DockerImageAsset(
            self,
            "Image",
            directory=str(stage(f"image-{runtime.container}", layout)),
            file=f"{containers}/{runtime.container}/{dockerfile}",
            platform=ecr_assets.Platform.LINUX_AMD64,
        )
        image.repository.grant_pull(self.execution_role)
        return sagemaker.CfnModel.ContainerDefinitionProperty(
            image=image.image_uri, environment=container_environment(self.contract)
        )

    def _serving_container(self, serving: LlmServing) -> sagemaker.CfnModel.ContainerDefinitionProperty:
        """A standard LLM image for the stack's region (a mapping over the regions when that is unknown at
        synth), pulled from AWS's registry; the weights mounted from the S3 prefix, read-only."""
        name = self.contract.name
        if not is_gpu(self.runtime.instance_type):
            raise ContractInfraError(
                f"contract {name}: runtime.serving: {serving.image} images run on GPU instances, not "
                f"{self.runtime.instance_type}"
            )
        region = Stack.of(self).region
        lock = llm_images.load()
        try:
            found = llm_images.regions(serving, lock)
            image = None if Token.is_unresolved(region) else llm_images.uri_for(serving, region, lock)
        except llm_images.ImageLockError as error:
            raise ContractInfraError(f"contract {name}: {error}") from None
        if image is None:
            mapping = CfnMapping(
                self,
                "Images",
                mapping={
                    where: {"uri": uri, "repository": llm_images.repository_arn(uri)} for where, uri in found.items()
                },
            )
            image, repository = mapping.find_in_map(region, "uri"), mapping.find_in_map(region, "repository")
        else:
            repository = llm_images.repository_arn(image)
        self.execution_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                resources=[repository],
            )
        )
        self.execution_role.add_to_principal_policy(
            iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"])
        )
        bucket, _, prefix = serving.model_data.removeprefix("s3://").partition("/")
        self.execution_role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[f"arn:{Aws.PARTITION}:s3:::{bucket}/{prefix}*"])
        )
        self.execution_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[f"arn:{Aws.PARTITION}:s3:::{bucket}"],
                conditions={"StringLike": {"s3:prefix": [f"{prefix}*"]}},
            )
        )
        if serving.model_data_key is not None:  # SSE-KMS weights: S3 asks KMS on the reader's behalf
            self.execution_role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["kms:Decrypt"],
                    resources=[serving.model_data_key],
                    conditions={"StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.{Aws.URL_SUFFIX}"}},
                )
            )
        acknowledge(
            self.execution_role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{bucket}/{prefix}*]",
            "SageMaker reads every file of the model's weights under the contract's model_data prefix, and only those",
        )
        return sagemaker.CfnModel.ContainerDefinitionProperty(
            image=image,
            environment=serving_environment(serving),
            model_data_source=sagemaker.CfnModel.ModelDataSourceProperty(
                s3_data_source=sagemaker.CfnModel.S3DataSourceProperty(
                    s3_uri=serving.model_data, s3_data_type="S3Prefix", compression_type="None"
                )
            ),
        )

    def invoker_environment(self) -> dict[str, str]:
        timeout = self.invoker.contract.runtime
        assert isinstance(timeout, LambdaRuntime)
        # Leave the invoker a second to record its decision after the endpoint's answer (or its timeout).
        budget = max(1, timeout.effective_timeout_s(self.contract.slo) - 1)
        return {
            "ENDPOINT_NAME": self.endpoint.attr_endpoint_name,
            "ENDPOINT_STATEFUL": "true" if self.runtime.stateful else "false",
            "ENDPOINT_TIMEOUT_S": str(budget),
            "AGENT_INPUT_MODEL": self.contract.io.input,
            "AGENT_OUTPUT_MODEL": self.contract.io.output,
        }
