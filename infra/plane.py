"""The constructs a CDK app builds the plane from: ``AgentPlane`` (the core) and ``AgentProject`` (a team's agents).

``AgentPlane`` holds what every team shares: the data, the bus, the ledger, the registry and the workflow catalog,
the approval gate, the API and its personas, the plane's alarms. Built with ``projects``, it also holds those
projects' agents and workflows, all in one stack. ``AgentProject`` holds one project's agents and workflows in a
stack of its own, joined to the plane's by exported names: it registers its agents in the plane's registry and its
workflows in the plane's catalog, and grants the plane's dispatcher and API what they need to call them, so the
plane's stack never refers to a project's and each project deploys, rolls out and is destroyed on its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contracts import catalog
from contracts.capability import CapabilityContract, LlmRuntime
from contracts.project import CORE_PROJECT, PlaneSet, Project, load_project, plane_set
from contracts.workflow import WorkflowSpec
from infra.components.agent_pool import AgentPool, ModelEndpoint, Resources
from infra.components.approval_gate import ApprovalGate, resume_statement
from infra.components.audit_ledger import AuditLedger
from infra.components.coordinator_workflow import CoordinatorWorkflow
from infra.components.data_store import DataStore
from infra.components.errors import ContractInfraError
from infra.components.event_mesh import EventMesh
from infra.components.fault_injection import FaultInjection
from infra.components.layers import RuntimeLayers
from infra.components.nag import acknowledge
from infra.components.nag import ref as nag_ref
from infra.components.observability import Observability
from infra.components.personas import PERSONA_ROUTES, Personas
from infra.components.public_api import (
    ApiWorkflow,
    PublicApi,
    acknowledge_workflow,
    admission_limit,
    catalog_entry,
    workflow_statements,
)
from infra.components.registry import (
    CUSTOM_RESOURCE_PROVIDER,
    Registry,
    entries,
    invoke_statement,
    register_items,
    tool_dispatcher,
)
from infra.components.rollout import Rollouts, deployment_group_name
from infra.components.sagemaker_endpoint import SageMakerPool
from infra.context import Environment
from infra.paths import FUNCTIONS_DIR
from infra.workflows.compiler import PlaneTargets, compile_workflow


def construct_id(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


class _Agents:
    """A set of contracts built as pools: Lambda agents, warm endpoints (and their invokers), their subscriptions."""

    def __init__(
        self,
        scope: Construct,
        *,
        contracts: Mapping[str, CapabilityContract],
        every: Mapping[str, CapabilityContract],
        resources: Resources,
        layers: list[lambda_.ILayerVersion],
        functions_dir: Path,
        sources: Mapping[str, Path],
    ) -> None:
        # Latency-critical agents and self-hosted models: a warm SageMaker endpoint each; workflows call it
        # through its invoker Lambda, llm loops naming it invoke it directly.
        self.endpoints = {
            name: SageMakerPool(
                scope, f"Endpoint{construct_id(name)}", contract=contract, resources=resources, layers=layers
            )
            for name, contract in contracts.items()
            if contract.runtime.kind == "sagemaker"
        }
        self.agents = {
            name: AgentPool(
                scope,
                f"Agent{construct_id(name)}",
                contract=contract,
                resources=resources,
                layers=layers,
                functions_dir=functions_dir,
                contracts=every,
                source_root=sources.get(name),
                model_endpoint=self._model_endpoint(contract),
            )
            for name, contract in contracts.items()
            if contract.runtime.kind in ("lambda", "llm")
        }
        # Every step a workflow can run, by agent name: Lambda agents and each endpoint's invoker.
        self.steps = {**self.agents, **{name: endpoint.invoker for name, endpoint in self.endpoints.items()}}

    def _model_endpoint(self, contract: CapabilityContract) -> ModelEndpoint | None:
        """The endpoint a ``provider: sagemaker`` loop invokes: one built beside it (the same project)."""
        runtime = contract.runtime
        if not isinstance(runtime, LlmRuntime) or runtime.model.endpoint is None:
            return None
        pool = self.endpoints.get(runtime.model.endpoint)
        if pool is None:
            raise ContractInfraError(
                f"contract {contract.name}: runtime.model.endpoint: {runtime.model.endpoint!r} is not a sagemaker "
                "contract of the same project"
            )
        return ModelEndpoint(name=pool.endpoint.attr_endpoint_name, arn=pool.endpoint_arn)

    def subscribe(self, mesh: EventMesh, scope: Construct | None = None) -> dict[str, sqs.Queue]:
        """Each subscribing agent's rule on the plane's bus; their dead-letter queues by rule."""
        queues = {}
        for name, pool in self.agents.items():
            if pool.contract.subscribes:
                mesh.subscribe(
                    construct_id(name),
                    detail_types=pool.contract.subscribes,
                    function=pool.target,
                    buffering=pool.buffering,
                    timeout=pool.function.timeout,
                    scope=scope,
                )
                queues[construct_id(name)] = mesh.dead_letter_queues[construct_id(name)]
        return queues

    def observe(self, observability: Observability) -> None:
        """SLO alarms per capability (Lambda agents and invokers), and per endpoint."""
        for pool in self.steps.values():
            observability.add_capability(pool.contract, pool.function)
        for endpoint in self.endpoints.values():
            observability.add_endpoint(endpoint.contract, endpoint.endpoint.attr_endpoint_name)


def build_workflow(scope: Construct, spec: WorkflowSpec, targets: PlaneTargets) -> CoordinatorWorkflow:
    """One workflow from its spec: its states under a construct of their own, its machine behind a live alias."""
    cid = construct_id(spec.name)
    compiled = compile_workflow(Construct(scope, f"{cid}States"), spec, targets)
    workflow = CoordinatorWorkflow(
        scope,
        cid,
        workflow_name=spec.name,
        definition=compiled.definition,
        agents=compiled.agents,
        state_machine_type=sfn.StateMachineType.EXPRESS if spec.type == "express" else sfn.StateMachineType.STANDARD,
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
                f"AwsSolutions-IAM5[Resource::{nag_ref(role, function)}:*]",
                f"invoke the {what} by any of its published versions or aliases",
            )
    return workflow


def api_workflow(
    spec: WorkflowSpec, workflow: CoordinatorWorkflow, contracts: Mapping[str, CapabilityContract]
) -> ApiWorkflow:
    return ApiWorkflow(
        name=spec.name,
        state_machine=workflow.state_machine,
        alias_arn=workflow.alias_arn,
        input_model=spec.input,
        ttl_ms=spec.ttl_ms,
        synchronous=spec.api.mode == "sync",
        claim_check=spec.api.claim_check,
        admission=admission_limit(contracts[p.contract.name] for p in workflow.agents) if spec.api.admission else None,
    )


def workflow_outputs(scope: Construct, workflows: Mapping[str, CoordinatorWorkflow]) -> None:
    for name, workflow in workflows.items():
        CfnOutput(scope, f"{construct_id(name)}StateMachineArn", value=workflow.state_machine.state_machine_arn)
        CfnOutput(scope, f"{construct_id(name)}AliasArn", value=workflow.alias_arn)


def _operate(
    scope: Construct,
    workflows: Mapping[str, CoordinatorWorkflow],
    observability: Observability,
    dead_letters: Mapping[str, sqs.IQueue],
    *,
    plane: AgentPlane,
    agents: _Agents,
    application: codedeploy.ILambdaApplication | None = None,
    faults: bool | None = None,
) -> Rollouts:
    """Alarms on ``scope``'s workflows and dead-letter queues, its agents' rollouts, span export and (opt-in) fault
    injection: what runs ``scope``'s agents in production, for the plane and for each project alike."""
    for name, workflow in workflows.items():
        observability.add_workflow(name, workflow.state_machine)
    for name, queue in dead_letters.items():
        observability.add_dead_letter_queue(name, queue)
    rollouts = Rollouts(
        scope,
        "Rollouts",
        agents=agents.agents,
        pools=agents.steps,
        workflows=list(workflows.values()),
        observability=observability,
        application=application,
    )
    if plane.otel_collector_layer_arn:
        # scope's functions, and the custom-resource function CDK keeps at its stack's top (it writes registrations)
        providers = [c for c in Stack.of(scope).node.children if c.node.id.startswith(CUSTOM_RESOURCE_PROVIDER)]
        found = [*scope.node.find_all(), *providers]
        functions = list(dict.fromkeys(c for c in found if isinstance(c, lambda_.Function)))
        observability.export_spans(functions, plane.otel_collector_layer_arn)
    if plane.fault_injection if faults is None else faults:
        FaultInjection(
            scope,
            "FaultInjection",
            functions={name: pool.function for name, pool in agents.steps.items()},
            stop_when=observability.slo_breach(),
            data=plane.data,
            removal_policy=plane.removal_policy,
        )
    return rollouts


@dataclass(frozen=True)
class PlaneProps:
    """How the plane is deployed; every field has the sandbox's default."""

    removal_policy: RemovalPolicy = RemovalPolicy.RETAIN
    environment: Environment = field(default_factory=lambda: Environment("sandbox", "destroy", account_settings=False))
    fault_injection: bool = False  # FIS experiment templates over every agent (opt-in)
    otel_collector_layer_arn: str | None = None  # export the plane's spans through this ADOT collector layer
    functions_dir: Path = FUNCTIONS_DIR


class AgentPlane(Construct):
    """The plane's core, and (with ``projects``) those projects' agents and workflows beside it.

    Without ``projects`` it runs only its own agents (the recorders every workflow ends with); teams then join with
    an :class:`AgentProject` each, in stacks of their own.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id_: str,
        *,
        projects: Sequence[Project] = (),
        props: PlaneProps | None = None,
    ) -> None:
        super().__init__(scope, construct_id_)
        props = props or PlaneProps()
        self.settings = environment = props.environment
        self.removal_policy = removal_policy = props.removal_policy
        self.fault_injection = props.fault_injection
        self.otel_collector_layer_arn = props.otel_collector_layer_arn
        self.functions_dir = functions_dir = props.functions_dir
        self.projects: PlaneSet = plane_set(projects)
        contracts, workflows = self.projects.contracts, self.projects.workflows
        self.data = DataStore(self, "Data", removal_policy=removal_policy)
        self.mesh = EventMesh(self, "Events")
        self.layers = RuntimeLayers(self, "Layers")
        self.resources = Resources(
            data=self.data,
            event_bus_arn=self.mesh.bus.event_bus_arn,
            event_bus_name=self.mesh.bus.event_bus_name,
            knowledge_base=self.layers.knowledge_base,
            knowledge_base_path=self.layers.knowledge_base_path,
        )
        built = _Agents(
            self,
            contracts=contracts,
            every=contracts,
            resources=self.resources,
            layers=self.layers.all,
            functions_dir=functions_dir,
            sources={name: self.projects.owner(name).source_root for name in contracts},
        )
        self.agents, self.endpoints, self.steps = built.agents, built.endpoints, built.steps
        self.ledger = AuditLedger(
            self,
            "Ledger",
            data=self.data,
            layers=self.layers.all,
            removal_policy=removal_policy,
            compliance_lock=environment.compliance_lock,
        )
        built.subscribe(self.mesh)
        self.registry = Registry(
            self,
            "Registry",
            data=self.data,
            pools=self.steps,
            layers=self.layers.all,
            removal_policy=removal_policy,
            deployment_groups={name: deployment_group_name(self, name) for name in self.agents},
        )
        self.approvals = ApprovalGate(
            self, "Approvals", data=self.data, layers=self.layers.all, removal_policy=removal_policy
        )
        targets = PlaneTargets(self.steps, self.approvals.function, self.registry.dispatcher, self.mesh.bus)
        self.workflows = {spec.name: build_workflow(self, spec, targets) for spec in workflows.values()}
        # The workflows projects deploy in stacks of their own (AgentProject), which the API reads at run time.
        self.catalog = self.data.private_table(
            self, "WorkflowCatalog", partition=catalog.KEY, retention="registry", removal_policy=removal_policy
        )
        self.api = PublicApi(
            self,
            "Api",
            account_settings=environment.account_settings,
            data=self.data,
            layers=self.layers.all,
            ledger=self.ledger,
            approvals=self.approvals,
            workflows=[api_workflow(spec, self.workflows[spec.name], contracts) for spec in workflows.values()],
            catalog=self.catalog,
        )
        self.registry.grant_read(self.api.function)
        Personas(self, "Personas", api=self.api.rest_api, routes=PERSONA_ROUTES, function=self.api.function)
        self.observability = Observability(self, "Observability", sampling_rules=environment.account_settings)
        built.observe(self.observability)
        self.observability.add_api(self.api.rest_api)
        self.observability.add_ledger(self.ledger.appender)
        dead_letters = {
            **self.mesh.dead_letter_queues,
            "LedgerAppender": self.ledger.failed_batches,
            "RegistryHealth": self.registry.health_failures,
        }
        self.rollouts = _operate(self, self.workflows, self.observability, dead_letters, plane=self, agents=built)
        self.rollouts.grant_status_read(self.api.function)
        CfnOutput(self, "ApiUrl", value=self.api.rest_api.url)
        workflow_outputs(self, self.workflows)
        CfnOutput(self, "EventBusName", value=self.mesh.bus.event_bus_name)
        CfnOutput(self, "LedgerSigningKeyArn", value=self.ledger.signing_key.key_arn)
        CfnOutput(self, "LedgerDigestsBucket", value=self.ledger.digests.bucket_name)
        CfnOutput(self, "AlarmTopicArn", value=self.observability.topic.topic_arn)

    def grant_publish(self, grantee: iam.IGrantable) -> iam.Grant:
        """Put events on the plane's bus (choreographed agents react to them)."""
        return self.mesh.bus.grant_put_events_to(grantee)

    def grant_read_ledger(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read the audit ledger's entries and its signed digests (what ``audit verify`` needs); write nothing.
        The digests are objects, so the grant names the bucket's objects: acknowledge that wildcard on ``grantee``."""
        entries = iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan"],
            resource_arns=[self.ledger.table.table_arn],
        )
        digests = iam.Grant.add_to_principal(
            grantee=grantee, actions=["s3:GetObject"], resource_arns=[self.ledger.digests.arn_for_objects("*")]
        )
        keys = iam.Grant.add_to_principal(
            grantee=grantee, actions=["kms:Decrypt"], resource_arns=[self.data.key.key_arn]
        )
        return entries.combine(digests).combine(keys)


class AgentProject(Construct):
    """One team's agents and workflows (a project folder: ``agentplane.yaml``), joined to ``plane``.

    In a stack of its own (the usual way) it never changes the plane's stack; in the plane's own stack it shares the
    plane's alarms and rollouts instead of adding its own.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id_: str,
        *,
        plane: AgentPlane,
        project_dir: Path | None = None,
        project: Project | None = None,
        fault_injection: bool | None = None,
    ) -> None:
        super().__init__(scope, construct_id_)
        if (project is None) == (project_dir is None):
            raise ValueError("AgentProject needs exactly one of project_dir (a folder) and project (loaded)")
        self.project = project or load_project(project_dir)  # type: ignore[arg-type]  # one of them is set
        self.plane = plane
        self.tool_dispatcher: lambda_.Function | None = None  # set when the project's llm agents call tools
        # The plane's agents and the project's together, names checked once: what the workflows may call.
        every = plane_set([*(p for p in plane.projects.projects if p.name != CORE_PROJECT), self.project])
        own = self.project.contracts
        built = _Agents(
            self,
            contracts=own,
            every=every.contracts,
            resources=plane.resources,
            layers=plane.layers.all,
            functions_dir=plane.functions_dir,
            sources=dict.fromkeys(own, self.project.source_root),
        )
        self.agents, self.endpoints, self.steps = built.agents, built.endpoints, built.steps
        dead_letters = built.subscribe(plane.mesh, scope=self)
        shared = Stack.of(self) is Stack.of(plane)
        self.observability = plane.observability if shared else Observability(self, "Observability")
        self._register()
        targets = PlaneTargets(
            {**plane.steps, **self.steps}, plane.approvals.function, plane.registry.dispatcher, plane.mesh.bus
        )
        self.workflows = {spec.name: build_workflow(self, spec, targets) for spec in self.project.workflows.values()}
        built.observe(self.observability)
        self.rollouts = _operate(
            self,
            self.workflows,
            self.observability,
            dead_letters,
            plane=plane,
            agents=built,
            application=plane.rollouts.application,
            faults=fault_injection,
        )
        self._serve(every.contracts)
        workflow_outputs(self, self.workflows)

    def _register(self) -> None:
        """The agents in the plane's registry; its dispatchers may invoke them."""
        registered = entries(self.steps, {name: deployment_group_name(self, name) for name in self.agents})
        if not registered:
            return
        plane = self.plane
        register_items(
            self,
            "Register",
            plane.registry.table,
            plane.data,
            {n: e.attributes for n, e in registered.items()},
            kind="registry",
        )
        dispatcher_role = plane.registry.dispatcher.role
        assert dispatcher_role is not None
        iam.Policy(
            self, "DispatchPolicy", roles=[dispatcher_role], statements=[invoke_statement(list(registered.values()))]
        )
        self.tool_dispatcher = tool_dispatcher(self, plane.registry, self.steps, registered)

    def _serve(self, contracts: Mapping[str, CapabilityContract]) -> None:
        """The workflows in the plane's catalog; the plane's API may start, follow and resume their runs, and read
        the rollouts of the project's agents and workflows."""
        plane = self.plane
        served = [api_workflow(spec, self.workflows[spec.name], contracts) for spec in self.project.workflows.values()]
        if served:
            register_items(
                self,
                "Catalog",
                plane.catalog,
                plane.data,
                {w.name: catalog_entry(w, self.project.name).item() for w in served},
                kind="catalog",
                partition=catalog.KEY,
            )
        statements = [statement for w in served for statement in workflow_statements(self, w)]
        standard = [w.state_machine.state_machine_arn for w in served if not w.synchronous]
        if standard:
            statements.append(resume_statement(standard))
        statements += self.rollouts.status_statements()
        if not statements:
            return
        api_role = plane.api.function.role
        assert api_role is not None
        policy = iam.Policy(self, "ApiPolicy", roles=[api_role], statements=statements)
        for workflow in served:
            acknowledge_workflow(policy, workflow)

    def grant_start_workflows(self, grantee: iam.IGrantable) -> iam.Grant:
        """Start this project's workflows directly (through their live aliases), as the plane's API does."""
        arns = [arn for w in self.workflows.values() for arn in (w.state_machine.state_machine_arn, w.alias_arn)]
        return _grant(grantee, ["states:StartExecution", "states:StartSyncExecution"], arns, "no workflows")

    def grant_invoke_agents(self, grantee: iam.IGrantable) -> iam.Grant:
        """Invoke this project's agents through their live aliases."""
        arns = [pool.target.function_arn for pool in self.steps.values()]
        return _grant(grantee, ["lambda:InvokeFunction"], arns, "no agents")


def _grant(grantee: iam.IGrantable, actions: list[str], arns: list[str], nothing: str) -> iam.Grant:
    """``actions`` on ``arns``; a project with nothing to grant on grants nothing (a statement without resources
    is refused by IAM)."""
    if not arns:
        return iam.Grant.drop(grantee, f"the project has {nothing}")
    return iam.Grant.add_to_principal(grantee=grantee, actions=actions, resource_arns=arns)
