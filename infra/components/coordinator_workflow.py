"""Coordinator-driven steps: a Step Functions state machine whose tasks are contract-built agent steps."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from contracts.capability import DEFAULT_ROLLOUT, CapabilityContract, Rollout
from infra.components.agent_pool import LIVE_ALIAS, AgentPool, timeout_s
from infra.components.nag import XRAY_REASON, acknowledge
from infra.components.retention import log_group
from infra.conventions import WORKFLOW_METADATA

# Transient failures worth retrying; an agent's typed errors (BadInput, DeadlineExceeded, ...) are not.
TRANSIENT_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.ClientExecutionTimeoutException",
]


def step_envelope(contract: CapabilityContract, *, causation: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The envelope a step sends, from the run's state: same trace, run and deadline; the contract's capability."""
    return {
        "trace_id": sfn.JsonPath.string_at("$.trace_id"),
        "correlation_id": sfn.JsonPath.string_at("$.correlation_id"),
        "causation_id": causation,
        "capability": contract.capabilities[0],
        "capability_version": contract.version,
        "deadline": sfn.JsonPath.string_at("$.deadline"),
        "traceparent": sfn.JsonPath.string_at("$.traceparent"),  # the API's span parents each step's
        "payload": payload,
    }


def agent_step(
    scope: Construct,
    construct_id: str,
    pool: AgentPool,
    *,
    payload: dict[str, Any],
    causation: str,
    result_path: str,
) -> tasks.LambdaInvoke:
    """A task whose input is the envelope (DESIGN §4) the agent's contract expects."""
    contract = pool.contract
    envelope = step_envelope(contract, causation=causation, payload=payload)
    task = tasks.LambdaInvoke(
        scope,
        construct_id,
        lambda_function=pool.target,
        payload=sfn.TaskInput.from_object(envelope),
        payload_response_only=True,
        retry_on_service_exceptions=False,
        result_path=result_path,
        task_timeout=sfn.Timeout.duration(Duration.seconds(timeout_s(contract))),
        comment=f"{contract.name} {contract.version}",
    )
    return retry_transient(task)


ESCALATED = "Escalated"  # what the dispatcher raises when only a person is left (functions.dispatcher)
DISPATCH_TIMEOUT_S = 60  # the dispatcher function's own timeout: every candidate it tries fits in it


def dispatched_step(
    scope: Construct,
    construct_id: str,
    dispatcher: lambda_.IFunction,
    pool: AgentPool,
    *,
    accept: str,
    payload: dict[str, Any],
    causation: str,
    result_path: str,
) -> tasks.LambdaInvoke:
    """A task that asks for the capability of ``pool``'s contract in the range ``accept``, not for one function.

    The dispatcher picks a healthy implementation from the registry and follows the contract's fallback; it
    raises ``Escalated`` when only a person is left, for the workflow to catch.
    """
    contract = pool.contract
    envelope = step_envelope(contract, causation=causation, payload=payload)
    task = tasks.LambdaInvoke(
        scope,
        construct_id,
        lambda_function=dispatcher,
        payload=sfn.TaskInput.from_object({"accept": accept, "envelope": envelope}),
        payload_response_only=True,
        retry_on_service_exceptions=False,
        result_path=result_path,
        task_timeout=sfn.Timeout.duration(Duration.seconds(DISPATCH_TIMEOUT_S)),
        comment=f"dispatch {contract.capabilities[0]} {accept} (primary {contract.name} {contract.version})",
    )
    return retry_transient(task)


def retry_transient(task: tasks.LambdaInvoke) -> tasks.LambdaInvoke:
    """Retry transient Lambda failures with exponential backoff and full jitter (fan-outs do not retry in step)."""
    task.add_retry(
        errors=TRANSIENT_ERRORS,
        interval=Duration.seconds(1),
        max_attempts=3,
        backoff_rate=2.0,
        max_delay=Duration.seconds(10),
        jitter_strategy=sfn.JitterType.FULL,
    )
    return task


# Step Functions' names for a rollout strategy (an alias's deployment preference).
SFN_DEPLOYMENT_TYPES = {"canary": "CANARY", "linear": "LINEAR", "all-at-once": "ALL_AT_ONCE"}


class CoordinatorWorkflow(Construct):
    """A state machine with tracing and full execution logging; Standard unless told otherwise.

    Callers start it through its ``live`` alias on a published version: a changed definition publishes a new
    version, and the alias shifts to it as ``rollout`` says, rolling back when an alarm given to
    :meth:`roll_back_on` fires.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        definition: sfn.IChainable,
        agents: Iterable[AgentPool],
        workflow_name: str,
        state_machine_type: sfn.StateMachineType = sfn.StateMachineType.STANDARD,
        timeout: Duration = Duration.minutes(30),
        rollout: Rollout = DEFAULT_ROLLOUT,
    ) -> None:
        super().__init__(scope, construct_id)
        self.workflow_name = workflow_name
        self.agents = list(agents)
        self.log_group = log_group(self, "Logs", "workflow-logs")
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            state_machine_type=state_machine_type,
            tracing_enabled=True,
            timeout=timeout,
            comment=f"agentplane workflow {workflow_name}",
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
        )
        role = self.state_machine.role
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            XRAY_REASON + "; CloudWatch Logs delivery APIs (logs:CreateLogDelivery, ...) require Resource '*'",
        )
        machine = self.state_machine.node.default_child
        assert isinstance(machine, sfn.CfnStateMachine)
        machine.add_metadata(WORKFLOW_METADATA, workflow_name)
        # A new revision (definition or settings) publishes a new version; the old one is kept for rolling back.
        self.version = sfn.CfnStateMachineVersion(
            self,
            "Version",
            state_machine_arn=self.state_machine.state_machine_arn,
            state_machine_revision_id=machine.attr_state_machine_revision_id,
            description=f"agentplane workflow {workflow_name}",
        )
        self.version.apply_removal_policy(RemovalPolicy.RETAIN)
        self.rollout = rollout
        self.alias = sfn.CfnStateMachineAlias(
            self,
            "Live",
            name=LIVE_ALIAS,
            description=f"agentplane workflow {workflow_name}: the version callers start",
            deployment_preference=self._preference([]),
        )

    @property
    def alias_arn(self) -> str:
        """What callers start (Ref of a state machine alias is its ARN)."""
        return self.alias.ref

    def roll_back_on(self, alarms: Sequence[cloudwatch.IAlarm]) -> None:
        """Alarms that stop a shift to a new version and send every run back to the previous one."""
        self.alias.deployment_preference = self._preference(alarms)

    def _preference(self, alarms: Sequence[cloudwatch.IAlarm]) -> sfn.CfnStateMachineAlias.DeploymentPreferenceProperty:
        shifting = self.rollout.strategy != "all-at-once"
        return sfn.CfnStateMachineAlias.DeploymentPreferenceProperty(
            state_machine_version_arn=self.version.ref,
            type=SFN_DEPLOYMENT_TYPES[self.rollout.strategy],
            percentage=self.rollout.percent if shifting else None,
            interval=self.rollout.interval_minutes if shifting else None,
            alarms=[alarm.alarm_name for alarm in alarms] or None,
        )
