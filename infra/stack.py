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
from contracts.workflow import WorkflowSpec
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
from infra.workflows.compiler import PlaneTargets, compile_workflow


def construct_id(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


class AgentPlaneStack(Stack):
    """``sources`` names each agent's import root (its project's source folder); unnamed: ``functions_dir``'s parent."""

    def __init__(
        self,
        scope: Construct,
        stack_id: str,
        *,
        contracts: Mapping[str, CapabilityContract],
        workflows: Mapping[str, WorkflowSpec],
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        environment: Environment | None = None,
        fault_injection: bool = False,
        otel_collector_layer_arn: str | None = None,
        functions_dir: Path = FUNCTIONS_DIR,
        sources: Mapping[str, Path] | None = None,
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
                source_root=(sources or {}).get(name),
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
        self.workflows = {
            spec.name: self._workflow(
                spec, PlaneTargets(steps, self.approvals.function, self.registry.dispatcher, self.mesh.bus)
            )
            for spec in workflows.values()
        }
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
                    name=spec.name,
                    state_machine=self.workflows[spec.name].state_machine,
                    alias_arn=self.workflows[spec.name].alias_arn,
                    input_model=spec.input,
                    ttl_ms=spec.ttl_ms,
                    synchronous=spec.api.mode == "sync",
                    claim_check=spec.api.claim_check,
                    admission=admission_limit(contracts[p.contract.name] for p in self.workflows[spec.name].agents)
                    if spec.api.admission
                    else None,
                )
                for spec in workflows.values()
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
            workflows=list(self.workflows.values()),
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
        for name, workflow in self.workflows.items():
            CfnOutput(self, f"{construct_id(name)}StateMachineArn", value=workflow.state_machine.state_machine_arn)
            CfnOutput(self, f"{construct_id(name)}AliasArn", value=workflow.alias_arn)
        CfnOutput(self, "EventBusName", value=self.mesh.bus.event_bus_name)
        CfnOutput(self, "LedgerSigningKeyArn", value=self.ledger.signing_key.key_arn)
        CfnOutput(self, "LedgerDigestsBucket", value=self.ledger.digests.bucket_name)
        CfnOutput(self, "AlarmTopicArn", value=self.observability.topic.topic_arn)

    def _workflow(self, spec: WorkflowSpec, targets: PlaneTargets) -> CoordinatorWorkflow:
        """One workflow from its spec: its states under a construct of their own, its machine behind a live alias."""
        cid = construct_id(spec.name)
        compiled = compile_workflow(Construct(self, f"{cid}States"), spec, targets)
        workflow = CoordinatorWorkflow(
            self,
            cid,
            workflow_name=spec.name,
            definition=compiled.definition,
            agents=compiled.agents,
            state_machine_type=sfn.StateMachineType.EXPRESS
            if spec.type == "express"
            else sfn.StateMachineType.STANDARD,
            timeout=Duration.seconds(spec.timeout_s),
            rollout=spec.effective_rollout,
        )
        role = workflow.state_machine.role
        called = [
            (compiled.calls_gate, targets.gate, "approval gate"),
            (compiled.calls_dispatcher, targets.dispatcher, "dispatcher"),
        ]
        for calls, function, what in called:
            if calls:
                acknowledge(
                    role,
                    f"AwsSolutions-IAM5[Resource::<{logical_id(function)}.Arn>:*]",
                    f"invoke the {what} by any of its published versions or aliases",
                )
        return workflow

    def _observe(self, contracts: Mapping[str, CapabilityContract]) -> Observability:
        """SLO alarms per contract, plane alarms, sampling rules and the dashboard."""
        observability = Observability(self, "Observability", sampling_rules=self.settings.account_settings)
        for pool in self.steps.values():
            observability.add_capability(pool.contract, pool.function)
        for name, endpoint in self.endpoints.items():
            observability.add_endpoint(contracts[name], endpoint.endpoint.attr_endpoint_name)
        observability.add_api(self.api.rest_api)
        for name, workflow in self.workflows.items():
            observability.add_workflow(name, workflow.state_machine)
        for name, queue in self.mesh.dead_letter_queues.items():
            observability.add_dead_letter_queue(name, queue)
        observability.add_dead_letter_queue("LedgerAppender", self.ledger.failed_batches)
        observability.add_dead_letter_queue("RegistryHealth", self.registry.health_failures)
        observability.add_ledger(self.ledger.appender)
        return observability
