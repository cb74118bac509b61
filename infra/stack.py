"""The plane: one stack wiring data, agents (from their contracts), the bus, the workflows and the API."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contracts.capability import CapabilityContract
from infra.components.agent_pool import AgentPool, Resources
from infra.components.approval_gate import ApprovalGate
from infra.components.audit_ledger import AuditLedger
from infra.components.coordinator_workflow import CoordinatorWorkflow
from infra.components.data_store import DataStore
from infra.components.event_mesh import EventMesh
from infra.components.fault_injection import FaultInjection
from infra.components.layers import RuntimeLayers
from infra.components.nag import acknowledge, logical_id
from infra.components.observability import Observability
from infra.components.personas import PERSONA_ROUTES, Personas
from infra.components.public_api import ApiWorkflow, PublicApi, admission_limit
from infra.components.registry import Registry
from infra.components.rollout import Rollouts, deployment_group_name
from infra.components.sagemaker_endpoint import SageMakerPool
from infra.context import Environment
from infra.conventions import ENVIRONMENT_METADATA
from infra.paths import FUNCTIONS_DIR
from infra.workflows import doc_review, quick_check


def construct_id(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


class AgentPlaneStack(Stack):
    def __init__(
        self,
        scope: Construct,
        stack_id: str,
        *,
        contracts: Mapping[str, CapabilityContract],
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        environment: Environment | None = None,
        fault_injection: bool = False,
        otel_collector_layer_arn: str | None = None,
        functions_dir: Path = FUNCTIONS_DIR,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, stack_id, **kwargs)
        self.settings = environment = environment or Environment("sandbox", "destroy", account_settings=False)
        # Preflight holds the template to its environment (Object Lock mode, removal policies).
        self.template_options.metadata = {ENVIRONMENT_METADATA: environment.name}
        self.data = DataStore(self, "Data", removal_policy=removal_policy)
        self.mesh = EventMesh(self, "Events")
        self.layers = RuntimeLayers(self, "Layers")
        resources = Resources(
            data=self.data,
            event_bus_arn=self.mesh.bus.event_bus_arn,
            event_bus_name=self.mesh.bus.event_bus_name,
            knowledge_base=self.layers.knowledge_base,
            knowledge_base_path=self.layers.knowledge_base_path,
        )
        self.agents = {
            name: AgentPool(
                self,
                f"Agent{construct_id(name)}",
                contract=contract,
                resources=resources,
                layers=self.layers.all,
                functions_dir=functions_dir,
                contracts=contracts,
            )
            for name, contract in contracts.items()
            if contract.runtime.kind in ("lambda", "llm")
        }
        # Latency-critical agents: a warm SageMaker endpoint each; workflows call it through its invoker Lambda.
        self.endpoints = {
            name: SageMakerPool(
                self, f"Endpoint{construct_id(name)}", contract=contract, resources=resources, layers=self.layers.all
            )
            for name, contract in contracts.items()
            if contract.runtime.kind == "sagemaker"
        }
        # Every step a workflow can run, by agent name: Lambda agents and each endpoint's invoker.
        self.steps = steps = {**self.agents, **{name: endpoint.invoker for name, endpoint in self.endpoints.items()}}
        self.ledger = AuditLedger(
            self,
            "Ledger",
            data=self.data,
            layers=self.layers.all,
            removal_policy=removal_policy,
            compliance_lock=environment.compliance_lock,
        )
        for name, pool in self.agents.items():
            if pool.contract.subscribes:
                self.mesh.subscribe(
                    construct_id(name),
                    detail_types=pool.contract.subscribes,
                    function=pool.target,
                    buffering=pool.buffering,
                    timeout=pool.function.timeout,
                )

        self.registry = Registry(
            self,
            "Registry",
            data=self.data,
            pools=steps,
            layers=self.layers.all,
            removal_policy=removal_policy,
            deployment_groups={name: deployment_group_name(self, name) for name in self.agents},
        )
        if self.registry.tool_dispatcher is not None:
            for pool in self.agents.values():
                pool.dispatch_tools(self.registry.tool_dispatcher)
        self.approvals = ApprovalGate(
            self, "Approvals", data=self.data, layers=self.layers.all, removal_policy=removal_policy
        )
        self.doc_review = CoordinatorWorkflow(
            self,
            "DocReview",
            workflow_name=doc_review.WORKFLOW,
            definition=doc_review.definition(self, steps, self.approvals.function, self.registry.dispatcher),
            agents=[steps[name] for name in doc_review.AGENTS],
            timeout=Duration.millis(doc_review.TIMEOUT_MS),
            rollout=doc_review.ROLLOUT,
        )
        acknowledge(
            self.doc_review.state_machine.role,
            f"AwsSolutions-IAM5[Resource::<{logical_id(self.approvals.function)}.Arn>:*]",
            "invoke the approval gate by any of its published versions or aliases",
        )
        acknowledge(
            self.doc_review.state_machine.role,
            f"AwsSolutions-IAM5[Resource::<{logical_id(self.registry.dispatcher)}.Arn>:*]",
            "invoke the dispatcher by any of its published versions or aliases",
        )
        self.quick_check = CoordinatorWorkflow(
            self,
            "QuickCheck",
            workflow_name=quick_check.WORKFLOW,
            definition=quick_check.definition(self, self.agents),
            agents=[self.agents[name] for name in quick_check.AGENTS],
            state_machine_type=sfn.StateMachineType.EXPRESS,
            timeout=Duration.seconds(quick_check.TIMEOUT_S),
            rollout=quick_check.ROLLOUT,
        )
        self.api = PublicApi(
            self,
            "Api",
            account_settings=environment.account_settings,
            data=self.data,
            layers=self.layers.all,
            ledger=self.ledger,
            approvals=self.approvals,
            workflows=[
                ApiWorkflow(
                    name=doc_review.WORKFLOW,
                    state_machine=self.doc_review.state_machine,
                    alias_arn=self.doc_review.alias_arn,
                    input_model=doc_review.INPUT_MODEL,
                    ttl_ms=doc_review.TTL_MS,
                    claim_check=True,
                    admission=admission_limit(contracts[name] for name in doc_review.AGENTS),
                ),
                ApiWorkflow(
                    name=quick_check.WORKFLOW,
                    state_machine=self.quick_check.state_machine,
                    alias_arn=self.quick_check.alias_arn,
                    input_model=quick_check.INPUT_MODEL,
                    ttl_ms=quick_check.TTL_MS,
                    synchronous=True,
                ),
            ],
        )
        self.registry.grant_read(self.api.function)
        Personas(self, "Personas", api=self.api.rest_api, routes=PERSONA_ROUTES, function=self.api.function)
        self.observability = self._observe(contracts)
        self.rollouts = Rollouts(
            self,
            "Rollouts",
            agents=self.agents,
            pools=steps,
            workflows=[self.doc_review, self.quick_check],
            observability=self.observability,
        )
        self.rollouts.grant_status_read(self.api.function)
        if otel_collector_layer_arn:
            functions = [c for c in self.node.find_all() if isinstance(c, lambda_.Function)]
            self.observability.export_spans(functions, otel_collector_layer_arn)
        if fault_injection:
            FaultInjection(
                self,
                "FaultInjection",
                functions={name: pool.function for name, pool in self.steps.items()},
                stop_when=self.observability.slo_breach(),
                data=self.data,
                removal_policy=removal_policy,
            )
        CfnOutput(self, "ApiUrl", value=self.api.rest_api.url)
        CfnOutput(self, "DocReviewStateMachineArn", value=self.doc_review.state_machine.state_machine_arn)
        CfnOutput(self, "DocReviewAliasArn", value=self.doc_review.alias_arn)
        CfnOutput(self, "EventBusName", value=self.mesh.bus.event_bus_name)
        CfnOutput(self, "LedgerSigningKeyArn", value=self.ledger.signing_key.key_arn)
        CfnOutput(self, "LedgerDigestsBucket", value=self.ledger.digests.bucket_name)
        CfnOutput(self, "AlarmTopicArn", value=self.observability.topic.topic_arn)

    def _observe(self, contracts: Mapping[str, CapabilityContract]) -> Observability:
        """SLO alarms per contract, plane alarms, sampling rules and the dashboard."""
        observability = Observability(self, "Observability", sampling_rules=self.settings.account_settings)
        for pool in self.steps.values():
            observability.add_capability(pool.contract, pool.function)
        for name, endpoint in self.endpoints.items():
            observability.add_endpoint(contracts[name], endpoint.endpoint.attr_endpoint_name)
        observability.add_api(self.api.rest_api)
        observability.add_workflow(doc_review.WORKFLOW, self.doc_review.state_machine)
        observability.add_workflow(quick_check.WORKFLOW, self.quick_check.state_machine)
        for name, queue in self.mesh.dead_letter_queues.items():
            observability.add_dead_letter_queue(name, queue)
        observability.add_dead_letter_queue("LedgerAppender", self.ledger.failed_batches)
        observability.add_dead_letter_queue("RegistryHealth", self.registry.health_failures)
        observability.add_ledger(self.ledger.appender)
        return observability
