"""Stands each template resource up on moto, by type. A new resource of a known type needs no code here."""

from __future__ import annotations

import hashlib
import io
import json
import re
import secrets
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.conventions import CONTAINER_METADATA, LAYER_KIND_METADATA, SERVING_METADATA
from infra.local.iam import RoleCredentials
from infra.local.lambdas import FunctionSpec, LocalLambdas
from infra.local.queues import QueueDelivery
from infra.local.sagemaker import LocalEndpoints
from infra.local.streams import StreamDelivery
from infra.local.template import ACCOUNT_ID, REGION, Physical, Resolver, Template, TemplateError
from infra.paths import LOCAL_LAMBDA_DEPS_DIR


def _arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT_ID}:{resource}"


def _zip(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(p for p in directory.rglob("*") if p.is_file()):
            archive.write(file, file.relative_to(directory).as_posix())
    return buffer.getvalue()


def _opt_path(value: str, layers: list[Path]) -> str:
    """Layers are mounted at /opt on Lambda; point /opt/... settings at the staged layer that holds the file."""
    if not value.startswith("/opt/"):
        return value
    relative = value.removeprefix("/opt/")
    for layer in reversed(layers):  # later layers win, as when Lambda extracts them in order
        if (layer / relative).exists():
            return str(layer / relative)
    return value


# Called as each resource is created (logical id, type, what was created, the API's key values): a restarted plane
# puts back what the resource held, and may give it its previous identity (a KMS key's id).
Restore = Callable[[str, str, Physical, dict[str, str]], Physical]


@dataclass
class ApiDefinition:
    """API Gateway resources as the template declares them; the HTTP server routes from these."""

    resources: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {parent, path_part}
    methods: list[dict[str, Any]] = field(default_factory=list)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> schema
    validators: dict[str, dict[str, Any]] = field(default_factory=dict)
    root_ids: set[str] = field(default_factory=set)
    gateway_responses: dict[str, dict[str, Any]] = field(default_factory=dict)
    api_keys: dict[str, str] = field(default_factory=dict)  # key id -> value
    usage_plans: dict[str, dict[str, Any]] = field(default_factory=dict)  # plan id -> {"Throttle": ...}
    plan_of_key: dict[str, str] = field(default_factory=dict)  # key id -> plan id


class Provisioner:
    def __init__(
        self,
        template: Template,
        clients: Callable[[str], Any],
        lambdas: LocalLambdas,
        streams: StreamDelivery | None = None,
        endpoints: LocalEndpoints | None = None,
        queues: QueueDelivery | None = None,
        restore: Restore | None = None,
    ) -> None:
        self.template = template
        self.restore = restore
        self.streams = streams
        self.endpoints = endpoints
        self.queues = queues
        self.client = clients
        self.lambdas = lambdas
        self.roles = RoleCredentials(clients)
        self.physical: dict[str, Physical] = {}
        self.resolver = Resolver(template.stack_name, self.physical, template.body.get("Mappings"))
        self.api = ApiDefinition()
        self.layer_dirs: dict[str, tuple[str, Path]] = {}  # layer ARN -> (kind, dir)
        self.skipped: dict[str, str] = {}  # logical id -> type the plane does not emulate
        self.schedules: dict[str, tuple[str, list[dict[str, Any]]]] = {}  # rule -> (expression, targets)
        self.alarms: dict[str, dict[str, Any]] = {}  # alarm name -> its definition (rollouts evaluate them)
        self._providers: dict[str, Callable[[str, dict[str, Any]], Physical]] = {
            "AWS::KMS::Key": self._kms_key,
            "AWS::DynamoDB::Table": self._dynamodb_table,
            "AWS::S3::Bucket": self._s3_bucket,
            "AWS::Events::EventBus": self._event_bus,
            "AWS::Events::Archive": self._event_archive,
            "AWS::Events::Rule": self._event_rule,
            "AWS::SQS::Queue": self._sqs_queue,
            "AWS::IAM::Role": self._iam_role,
            "AWS::IAM::Policy": self._iam_policy,
            "AWS::Logs::LogGroup": self._log_group,
            "AWS::Lambda::LayerVersion": self._layer_version,
            "AWS::Lambda::Function": self._lambda_function,
            "AWS::Lambda::Version": self._lambda_version,
            "AWS::Lambda::Alias": self._lambda_alias,
            "AWS::Lambda::EventSourceMapping": self._event_source_mapping,
            "AWS::StepFunctions::StateMachine": self._state_machine,
            "AWS::ApiGateway::RestApi": self._rest_api,
            "AWS::ApiGateway::Resource": self._api_resource,
            "AWS::ApiGateway::Method": self._api_method,
            "AWS::ApiGateway::Model": self._api_model,
            "AWS::ApiGateway::RequestValidator": self._api_validator,
            "AWS::ApiGateway::GatewayResponse": self._api_gateway_response,
            "Custom::AWS": self._sdk_call,
            "AWS::ApiGateway::ApiKey": self._api_key,
            "AWS::ApiGateway::UsagePlan": self._usage_plan,
            "AWS::ApiGateway::UsagePlanKey": self._usage_plan_key,
            "AWS::SageMaker::Model": self._sagemaker_model,
            "AWS::SageMaker::EndpointConfig": self._sagemaker_endpoint_config,
            "AWS::SageMaker::Endpoint": self._sagemaker_endpoint,
            "AWS::StepFunctions::StateMachineVersion": self._state_machine_version,
            "AWS::StepFunctions::StateMachineAlias": self._state_machine_alias,
            "AWS::CloudWatch::Alarm": self._alarm,
            "AWS::CodeDeploy::Application": self._codedeploy_application,
            "AWS::CodeDeploy::DeploymentConfig": self._codedeploy_config,
            "AWS::CodeDeploy::DeploymentGroup": self._codedeploy_group,
        }
        # Types whose effect the plane does not need locally (resource policies: see docs/architecture.md).
        self._inert = {
            "AWS::Lambda::Permission",
            "AWS::S3::BucketPolicy",
            "AWS::SQS::QueuePolicy",
            "AWS::ApiGateway::Account",
            "AWS::ApiGateway::Deployment",
            "AWS::ApiGateway::Stage",
            "AWS::CDK::Metadata",
            # One local instance serves each endpoint: there is nothing to scale.
            "AWS::ApplicationAutoScaling::ScalableTarget",
            "AWS::ApplicationAutoScaling::ScalingPolicy",
        }

    def provision(self) -> None:
        for logical_id in self.template.creation_order():
            resource = self.template.resources[logical_id]
            kind = resource["Type"]
            provider = self._providers.get(kind)
            if provider is None:
                if kind not in self._inert:
                    self.skipped[logical_id] = kind
                self.physical[logical_id] = Physical(
                    ref=self._name(logical_id), attributes={"Arn": _arn("local", logical_id)}
                )
                continue
            try:
                props = self.resolver.resolve(resource.get("Properties", {}))
                physical = provider(logical_id, props)
                if self.restore is not None:
                    physical = self.restore(logical_id, kind, physical, self.api.api_keys)
                self.physical[logical_id] = physical
            except TemplateError:
                raise
            except Exception as exc:
                raise TemplateError(f"{logical_id} ({kind}): {exc}") from exc

    def _name(self, logical_id: str, limit: int = 64) -> str:
        return f"{self.template.stack_name}-{logical_id}"[:limit]

    # --- data ------------------------------------------------------------------------------------

    def _kms_key(self, logical_id: str, props: dict[str, Any]) -> Physical:
        key = self.client("kms").create_key(
            Description=props.get("Description", logical_id),
            KeySpec=props.get("KeySpec", "SYMMETRIC_DEFAULT"),
            KeyUsage=props.get("KeyUsage", "ENCRYPT_DECRYPT"),
        )["KeyMetadata"]
        if props.get("EnableKeyRotation"):
            self.client("kms").enable_key_rotation(KeyId=key["KeyId"])
        return Physical(ref=key["KeyId"], attributes={"Arn": key["Arn"], "KeyId": key["KeyId"]})

    def _dynamodb_table(self, logical_id: str, props: dict[str, Any]) -> Physical:
        name = props.get("TableName") or self._name(logical_id, 255)
        request: dict[str, Any] = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        if "ProvisionedThroughput" in props:
            request["ProvisionedThroughput"] = props["ProvisionedThroughput"]
        for index_kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if index_kind in props:
                request[index_kind] = props[index_kind]
        if "StreamSpecification" in props:
            request["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        sse = props.get("SSESpecification", {})
        if sse.get("SSEEnabled"):
            request["SSESpecification"] = {"Enabled": True, "SSEType": sse.get("SSEType", "KMS")}
            if "KMSMasterKeyId" in sse:
                request["SSESpecification"]["KMSMasterKeyId"] = sse["KMSMasterKeyId"]
        table = self.client("dynamodb").create_table(**request)["TableDescription"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            self.client("dynamodb").update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        pitr = props.get("PointInTimeRecoverySpecification", {})
        if pitr.get("PointInTimeRecoveryEnabled"):
            self.client("dynamodb").update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )
        attributes = {"Arn": table["TableArn"]}
        if "LatestStreamArn" in table:
            attributes["StreamArn"] = table["LatestStreamArn"]
        return Physical(ref=name, attributes=attributes)

    def _s3_bucket(self, logical_id: str, props: dict[str, Any]) -> Physical:
        name = props.get("BucketName") or self._name(logical_id, 63).lower()
        self.client("s3").create_bucket(Bucket=name, ObjectLockEnabledForBucket=bool(props.get("ObjectLockEnabled")))
        if "ObjectLockConfiguration" in props:
            self.client("s3").put_object_lock_configuration(
                Bucket=name, ObjectLockConfiguration=props["ObjectLockConfiguration"]
            )
        if props.get("VersioningConfiguration", {}).get("Status") == "Enabled":
            self.client("s3").put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        if "BucketEncryption" in props:
            rules = [
                {
                    "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
                    **({"BucketKeyEnabled": rule["BucketKeyEnabled"]} if "BucketKeyEnabled" in rule else {}),
                }
                for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            ]
            self.client("s3").put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        return Physical(
            ref=name,
            attributes={
                "Arn": f"arn:aws:s3:::{name}",
                "DomainName": f"{name}.s3.amazonaws.com",
                "RegionalDomainName": f"{name}.s3.{REGION}.amazonaws.com",
            },
        )

    def _sqs_queue(self, logical_id: str, props: dict[str, Any]) -> Physical:
        name = props.get("QueueName") or self._name(logical_id, 80)
        attributes: dict[str, str] = {
            key: str(props[key]).lower() if isinstance(props[key], bool) else str(props[key])
            for key in ("MessageRetentionPeriod", "VisibilityTimeout", "SqsManagedSseEnabled", "DelaySeconds")
            if key in props
        }
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
        url = self.client("sqs").create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        return Physical(ref=url, attributes={"Arn": _arn("sqs", name), "QueueName": name, "QueueUrl": url})

    def _log_group(self, logical_id: str, props: dict[str, Any]) -> Physical:
        name = props.get("LogGroupName") or self._name(logical_id, 512)
        self.client("logs").create_log_group(logGroupName=name)
        return Physical(ref=name, attributes={"Arn": _arn("logs", f"log-group:{name}:*")})

    def _iam_role(self, logical_id: str, props: dict[str, Any]) -> Physical:
        name = props.get("RoleName") or self._name(logical_id, 64)
        role = self.client("iam").create_role(
            RoleName=name, AssumeRolePolicyDocument=json.dumps(props.get("AssumeRolePolicyDocument", {}))
        )["Role"]
        return Physical(ref=name, attributes={"Arn": role["Arn"], "RoleId": role["RoleId"]})

    def _iam_policy(self, logical_id: str, props: dict[str, Any]) -> Physical:
        """A role's inline policy, which moto evaluates for the functions that call AWS with that role."""
        for role in props.get("Roles", []):
            self.roles.put_policy(role, props["PolicyName"], props["PolicyDocument"])
        return Physical(ref=props["PolicyName"], attributes={})

    # --- events ----------------------------------------------------------------------------------

    def _event_bus(self, logical_id: str, props: dict[str, Any]) -> Physical:
        name = props.get("Name") or self._name(logical_id)
        arn = self.client("events").create_event_bus(Name=name)["EventBusArn"]
        return Physical(ref=name, attributes={"Arn": arn, "Name": name})

    def _event_archive(self, logical_id: str, props: dict[str, Any]) -> Physical:
        name = props.get("ArchiveName") or self._name(logical_id, 48)
        request: dict[str, Any] = {"ArchiveName": name, "EventSourceArn": props["SourceArn"]}
        if "EventPattern" in props:
            request["EventPattern"] = json.dumps(props["EventPattern"])
        if "RetentionDays" in props:
            request["RetentionDays"] = int(props["RetentionDays"])
        arn = self.client("events").create_archive(**request)["ArchiveArn"]
        return Physical(ref=name, attributes={"Arn": arn, "ArchiveName": name})

    def _event_rule(self, logical_id: str, props: dict[str, Any]) -> Physical:
        name = props.get("Name") or self._name(logical_id)
        bus = props.get("EventBusName", "default")
        request: dict[str, Any] = {"Name": name, "EventBusName": bus, "State": props.get("State", "ENABLED")}
        if "EventPattern" in props:
            request["EventPattern"] = json.dumps(props["EventPattern"])
        if "ScheduleExpression" in props:
            request["ScheduleExpression"] = props["ScheduleExpression"]
            self.schedules[name] = (props["ScheduleExpression"], props.get("Targets", []))
        arn = self.client("events").put_rule(**request)["RuleArn"]
        if props.get("Targets"):
            self.client("events").put_targets(Rule=name, EventBusName=bus, Targets=props["Targets"])
        return Physical(ref=name, attributes={"Arn": arn})

    # --- compute ---------------------------------------------------------------------------------

    def _layer_version(self, logical_id: str, props: dict[str, Any]) -> Physical:
        metadata = self.template.resources[logical_id].get("Metadata", {})
        kind = metadata.get(LAYER_KIND_METADATA, "runtime")
        directory = self.template.asset_dir(logical_id)
        if directory is None:
            raise TemplateError(f"{logical_id}: layer has no staged asset (aws:asset:path metadata)")
        arn = _arn("lambda", f"layer:{self._name(logical_id)}:1")
        self.layer_dirs[arn] = (kind, directory)
        return Physical(ref=arn, attributes={"LayerVersionArn": arn})

    def _lambda_function(self, logical_id: str, props: dict[str, Any]) -> Physical:
        name = props.get("FunctionName") or self._name(logical_id)
        if not str(props.get("Runtime", "python")).startswith("python"):
            # CDK's own custom-resource functions (Node.js): the plane performs their calls itself (_sdk_call).
            self.skipped[logical_id] = f"AWS::Lambda::Function ({props.get('Runtime')})"
            return Physical(ref=name, attributes={"Arn": _arn("lambda", f"function:{name}")})
        code_dir = self.template.asset_dir(logical_id)
        if code_dir is None:
            raise TemplateError(f"{logical_id}: function has no staged asset (aws:asset:path metadata)")
        environment = {k: str(v) for k, v in props.get("Environment", {}).get("Variables", {}).items()}
        # A dependency layer holds arm64 binaries: its local twin is the same lockfile group built for this host.
        mounted = [
            LOCAL_LAMBDA_DEPS_DIR if self.layer_dirs[arn][0] == "dependencies" else self.layer_dirs[arn][1]
            for arn in props.get("Layers", [])
            if arn in self.layer_dirs
        ]
        layer_dirs = [d / "python" for d in mounted if (d / "python").is_dir()]
        environment = {key: _opt_path(value, mounted) for key, value in environment.items()}
        function = self.client("lambda").create_function(
            FunctionName=name,
            Runtime=props.get("Runtime", "python3.14"),
            Role=props["Role"],
            Handler=props["Handler"],
            Code={"ZipFile": _zip(code_dir)},
            Environment={"Variables": environment},
            MemorySize=int(props.get("MemorySize", 128)),
            Timeout=int(props.get("Timeout", 3)),
            Architectures=props.get("Architectures", ["x86_64"]),
        )
        self.lambdas.register(
            FunctionSpec(
                logical_id=logical_id,
                name=name,
                handler=props["Handler"],
                code_dir=code_dir,
                layer_dirs=layer_dirs,
                environment=environment,
                timeout_s=int(props.get("Timeout", 3)),
                memory_mb=int(props.get("MemorySize", 128)),
                role_arn=str(props["Role"]),
                reserved_concurrency=props.get("ReservedConcurrentExecutions"),
                snapstart=props.get("SnapStart", {}).get("ApplyOn") == "PublishedVersions",
            )
        )
        self.lambdas.credentials[name] = self.roles.issue(str(props["Role"]), name)
        return Physical(ref=name, attributes={"Arn": function["FunctionArn"]})

    def _lambda_version(self, logical_id: str, props: dict[str, Any]) -> Physical:
        version = self.client("lambda").publish_version(FunctionName=props["FunctionName"])
        return Physical(ref=version["FunctionArn"], attributes={"Version": version["Version"]})

    def _lambda_alias(self, logical_id: str, props: dict[str, Any]) -> Physical:
        # Provisioned concurrency is warm capacity on AWS; locally every instance is already warm.
        alias = self.client("lambda").create_alias(
            FunctionName=props["FunctionName"], Name=props["Name"], FunctionVersion=str(props["FunctionVersion"])
        )
        return Physical(ref=alias["AliasArn"], attributes={"AliasArn": alias["AliasArn"]})

    def _event_source_mapping(self, logical_id: str, props: dict[str, Any]) -> Physical:
        if self.queues is not None and ":sqs:" in str(props.get("EventSourceArn", "")):
            # Polled here, not by moto (which would invoke inside SendMessage): see infra/local/queues.py.
            self.queues.register(props)
            return Physical(ref=f"{logical_id}-local", attributes={"Id": f"{logical_id}-local"})
        request = {
            key: props[key]
            for key in (
                "EventSourceArn",
                "FunctionName",
                "StartingPosition",
                "BatchSize",
                "BisectBatchOnFunctionError",
                "MaximumRetryAttempts",
                "FunctionResponseTypes",
                "DestinationConfig",
            )
            if key in props
        }
        mapping = self.client("lambda").create_event_source_mapping(**request)
        if self.streams is not None and ":dynamodb:" in str(props.get("EventSourceArn", "")):
            self.streams.register(mapping["FunctionArn"], props)
        return Physical(ref=mapping["UUID"], attributes={"Id": mapping["UUID"]})

    def _state_machine(self, logical_id: str, props: dict[str, Any]) -> Physical:
        name = props.get("StateMachineName") or self._name(logical_id, 80)
        definition = props.get("DefinitionString")
        if definition is None:
            definition = json.dumps(props["Definition"])
        for key, value in props.get("DefinitionSubstitutions", {}).items():
            definition = definition.replace("${" + key + "}", str(value))
        json.loads(definition)  # a resolver gap shows up here, not as a confusing run failure
        arn = self.client("stepfunctions").create_state_machine(
            name=name,
            definition=definition,
            roleArn=props["RoleArn"],
            type=props.get("StateMachineType", "STANDARD"),
        )["stateMachineArn"]
        # A revision per definition, as AWS makes one per update: what a version resource publishes.
        revision = hashlib.sha256(definition.encode()).hexdigest()[:32]
        attributes = {"Arn": arn, "Name": name, "StateMachineName": name, "StateMachineRevisionId": revision}
        return Physical(ref=arn, attributes=attributes)

    def _state_machine_version(self, logical_id: str, props: dict[str, Any]) -> Physical:
        # moto publishes through UpdateStateMachine (``publish``), as the API also allows: same definition.
        machines = self.client("stepfunctions")
        machine = props["StateMachineArn"]
        definition = machines.describe_state_machine(stateMachineArn=machine)["definition"]
        arn = machines.update_state_machine(stateMachineArn=machine, definition=definition, publish=True)[
            "stateMachineVersionArn"
        ]
        return Physical(ref=arn, attributes={"Arn": arn})

    def _state_machine_alias(self, logical_id: str, props: dict[str, Any]) -> Physical:
        """The alias starts whole on its version: a gradual ``DeploymentPreference`` shifts on update, and a
        fresh plane is a create."""
        routing = props.get("RoutingConfiguration") or [
            {"StateMachineVersionArn": props["DeploymentPreference"]["StateMachineVersionArn"], "Weight": 100}
        ]
        alias = self.client("stepfunctions").create_state_machine_alias(
            name=props.get("Name") or logical_id,
            description=props.get("Description", ""),
            routingConfiguration=[
                {"stateMachineVersionArn": r["StateMachineVersionArn"], "weight": int(r["Weight"])} for r in routing
            ],
        )
        arn = alias["stateMachineAliasArn"]
        return Physical(ref=arn, attributes={"Arn": arn})

    # --- alarms and deployments (what canary rollouts read; infra.local.rollout moves them) ---------

    def _alarm(self, logical_id: str, props: dict[str, Any]) -> Physical:
        name = props.get("AlarmName") or self._name(logical_id, 255)
        self.alarms[name] = props
        return Physical(ref=name, attributes={"Arn": _arn("cloudwatch", f"alarm:{name}")})

    def _codedeploy_application(self, logical_id: str, props: dict[str, Any]) -> Physical:
        name = props.get("ApplicationName") or self._name(logical_id, 100)
        self.client("codedeploy").create_application(
            applicationName=name, computePlatform=props.get("ComputePlatform", "Server")
        )
        return Physical(ref=name)

    def _codedeploy_config(self, logical_id: str, props: dict[str, Any]) -> Physical:
        # Read by infra.local.rollout from the template; moto has no deployment configs to create.
        return Physical(ref=props.get("DeploymentConfigName") or self._name(logical_id, 100))

    def _codedeploy_group(self, logical_id: str, props: dict[str, Any]) -> Physical:
        name = props.get("DeploymentGroupName") or self._name(logical_id, 100)
        self.client("codedeploy").create_deployment_group(
            applicationName=props["ApplicationName"],
            deploymentGroupName=name,
            serviceRoleArn=props["ServiceRoleArn"],
            **({"deploymentConfigName": props["DeploymentConfigName"]} if "DeploymentConfigName" in props else {}),
        )
        return Physical(ref=name)

    # --- SageMaker (endpoints served by their container's app on 127.0.0.1) ---------------------

    def _sagemaker_model(self, logical_id: str, props: dict[str, Any]) -> Physical:
        name = props.get("ModelName") or self._name(logical_id)
        metadata = self.template.resources[logical_id].get("Metadata", {})
        container, serving = metadata.get(CONTAINER_METADATA), metadata.get(SERVING_METADATA)
        if container is None and serving is None:
            raise TemplateError(
                f"{logical_id}: model names no container ({CONTAINER_METADATA} or {SERVING_METADATA} metadata)"
            )
        if self.endpoints is not None:
            environment = props.get("PrimaryContainer", {}).get("Environment", {})
            self.endpoints.add_model(name, container, {k: str(v) for k, v in environment.items()}, serving)
        return Physical(ref=_arn("sagemaker", f"model/{name.lower()}"), attributes={"ModelName": name})

    def _sagemaker_endpoint_config(self, logical_id: str, props: dict[str, Any]) -> Physical:
        name = props.get("EndpointConfigName") or self._name(logical_id)
        variants = props["ProductionVariants"]
        if len(variants) != 1:
            raise TemplateError(f"{logical_id}: the local plane serves one production variant, not {len(variants)}")
        if self.endpoints is not None:
            self.endpoints.add_config(name, variants[0]["VariantName"], variants[0]["ModelName"])
        arn = _arn("sagemaker", f"endpoint-config/{name.lower()}")
        return Physical(ref=arn, attributes={"EndpointConfigName": name})

    def _sagemaker_endpoint(self, logical_id: str, props: dict[str, Any]) -> Physical:
        name = props.get("EndpointName") or self._name(logical_id)
        if self.endpoints is not None:
            self.endpoints.start(name, props["EndpointConfigName"], logical_id)
        return Physical(ref=_arn("sagemaker", f"endpoint/{name.lower()}"), attributes={"EndpointName": name})

    # --- API Gateway (served by the plane's HTTP server) -----------------------------------------

    def _rest_api(self, logical_id: str, props: dict[str, Any]) -> Physical:
        api_id = logical_id.lower()[:10]
        root = f"{api_id}-root"
        self.api.root_ids.add(root)
        return Physical(ref=api_id, attributes={"RootResourceId": root})

    def _api_resource(self, logical_id: str, props: dict[str, Any]) -> Physical:
        self.api.resources[logical_id] = {"parent": props["ParentId"], "path_part": props["PathPart"]}
        return Physical(ref=logical_id, attributes={"ResourceId": logical_id})

    def _api_method(self, logical_id: str, props: dict[str, Any]) -> Physical:
        self.api.methods.append({"logical_id": logical_id, **props})
        return Physical(ref=logical_id)

    def _api_model(self, logical_id: str, props: dict[str, Any]) -> Physical:
        name = props.get("Name") or logical_id
        self.api.models[name] = props["Schema"]
        return Physical(ref=name)

    def _api_validator(self, logical_id: str, props: dict[str, Any]) -> Physical:
        self.api.validators[logical_id] = props
        return Physical(ref=logical_id, attributes={"RequestValidatorId": logical_id})

    def _api_gateway_response(self, logical_id: str, props: dict[str, Any]) -> Physical:
        self.api.gateway_responses[props["ResponseType"]] = props
        return Physical(ref=logical_id)

    def _api_key(self, logical_id: str, props: dict[str, Any]) -> Physical:
        key_id = f"key-{logical_id.lower()[:16]}"
        # As API Gateway does when the template gives no value: a fresh secret per plane.
        self.api.api_keys[key_id] = str(props.get("Value") or secrets.token_urlsafe(30))
        return Physical(ref=key_id, attributes={"APIKeyId": key_id})

    def _usage_plan(self, logical_id: str, props: dict[str, Any]) -> Physical:
        plan_id = f"plan-{logical_id.lower()[:16]}"
        self.api.usage_plans[plan_id] = {"logical_id": logical_id, **props}
        return Physical(ref=plan_id, attributes={"Id": plan_id})

    def _usage_plan_key(self, logical_id: str, props: dict[str, Any]) -> Physical:
        self.api.plan_of_key[props["KeyId"]] = props["UsagePlanId"]
        return Physical(ref=logical_id)

    def _sdk_call(self, logical_id: str, props: dict[str, Any]) -> Physical:
        """CDK's AwsCustomResource: the SDK call it makes on create, made here with boto3 (on moto)."""
        call = json.loads(props["Create"]) if isinstance(props.get("Create"), str) else props.get("Create")
        if not call:
            return Physical(ref=logical_id)
        service = str(call["service"]).removeprefix("@aws-sdk/client-").replace("-", "").lower()
        action = re.sub(r"(?<!^)(?=[A-Z])", "_", str(call["action"])).lower()
        answer = getattr(self.client(service), action)(**call.get("parameters", {}))
        physical = call.get("physicalResourceId", {})
        ref = physical.get("id") or str(answer.get("ResponseMetadata", {}).get("RequestId", logical_id))
        return Physical(ref=ref)
