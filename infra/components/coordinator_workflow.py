"""Coordinator-driven steps: a Step Functions state machine whose tasks are contract-built agent steps."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from aws_cdk import Duration, IResolvable, RemovalPolicy
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


# Step Functions' States.ALL does not match these: a step that catches failures names them too.
UNCAUGHT_BY_ALL = ["States.DataLimitExceeded"]


def caused_by(step: str, *extra: str) -> str:
    """A step's causation id: the run's id, the step's name, and (in a Map) the item's index."""
    placeholders = "/".join(["{}", step, *("{}" for _ in extra)])
    return sfn.JsonPath.format(placeholders, sfn.JsonPath.string_at("$.correlation_id"), *extra)


def step_envelope(
    contract: CapabilityContract, *, causation: str, payload: dict[str, Any], capability: str | None = None
) -> dict[str, Any]:
    """The envelope a step sends, from the run's state: same trace, run and deadline; the capability it asks for
    (the contract's first unless told)."""
    return {
        "trace_id": sfn.JsonPath.string_at("$.trace_id"),
        "correlation_id": sfn.JsonPath.string_at("$.correlation_id"),
        "causation_id": causation,
        "capability": capability or contract.capabilities[0],
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
    capability: str | None = None,
    timeout: int | None = None,
    beside: dict[str, Any] | None = None,
) -> tasks.LambdaInvoke:
    """A task whose input is the envelope the agent's contract expects (``timeout``: seconds, else the contract's;
    ``beside``: more fields of the event, for the agent's function rather than its service)."""
    contract = pool.contract
    envelope = step_envelope(contract, causation=causation, payload=payload, capability=capability)
    return _invoke(
        scope,
        construct_id,
        pool.target,
        {**envelope, **(beside or {})},
        result_path=result_path,
        timeout_s=timeout or timeout_s(contract),
        comment=f"{contract.name} {contract.version}",
    )


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
    capability: str | None = None,
) -> tasks.LambdaInvoke:
    """A task that asks for the capability of ``pool``'s contract in the range ``accept``, not for one function.

    The dispatcher picks a healthy implementation from the registry and follows the contract's fallback; it
    raises ``Escalated`` when only a person is left, for the workflow to catch.
    """
    contract = pool.contract
    envelope = step_envelope(contract, causation=causation, payload=payload, capability=capability)
    return _invoke(
        scope,
        construct_id,
        dispatcher,
        {"accept": accept, "envelope": envelope},
        result_path=result_path,
        timeout_s=DISPATCH_TIMEOUT_S,
        comment=f"dispatch {envelope['capability']} {accept} (primary {contract.name} {contract.version})",
    )


def _invoke(
    scope: Construct,
    construct_id: str,
    function: lambda_.IFunction,
    event: dict[str, Any],
    *,
    result_path: str,
    timeout_s: int,
    comment: str,
) -> tasks.LambdaInvoke:
    """A Lambda task answering its function's payload, with the plane's own retry of transient Lambda errors."""
    task = tasks.LambdaInvoke(
        scope,
        construct_id,
        lambda_function=function,
        payload=sfn.TaskInput.from_object(event),
        payload_response_only=True,
        retry_on_service_exceptions=False,
        result_path=result_path,
        task_timeout=sfn.Timeout.duration(Duration.seconds(timeout_s)),
        comment=comment,
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


def catch_failures(state: sfn.TaskStateBase | sfn.Map | sfn.Parallel, handler: sfn.IChainable) -> None:
    """Any error of ``state`` goes to ``handler`` at ``$.failure``, an oversized state included."""
    state.add_catch(handler, errors=UNCAUGHT_BY_ALL, result_path="$.failure")
    state.add_catch(handler, errors=[sfn.Errors.ALL], result_path="$.failure")


def approval_request(
    scope: Construct,
    construct_id: str,
    gate: lambda_.IFunction,
    *,
    workflow: str,
    window_s: int,
    subject: dict[str, Any] | IResolvable,
    policy_version: str,
    result_path: str,
) -> tasks.LambdaInvoke:
    """The run waits on a task token the approval gate keeps until a person decides; the window is its timeout.

    ``policy_version`` is a state path or a literal; ``subject`` is ready for the payload (or read from the state).
    """
    at = sfn.JsonPath.string_at
    request = tasks.LambdaInvoke(
        scope,
        construct_id,
        lambda_function=gate,
        integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
        retry_on_service_exceptions=False,  # our own retry below, with jitter
        payload=sfn.TaskInput.from_object(
            {
                "task_token": sfn.JsonPath.task_token,
                "execution_id": at("$.correlation_id"),
                "trace_id": at("$.trace_id"),
                "traceparent": at("$.traceparent"),
                "workflow": workflow,
                "policy_version": at(policy_version) if policy_version.startswith("$") else policy_version,
                "timeout_s": window_s,
                "subject": subject,
            }
        ),
        result_path=result_path,
        task_timeout=sfn.Timeout.duration(Duration.seconds(window_s)),
        comment="a person approves or rejects; the token resumes this run",
    )
    return retry_transient(request)


def record_failure(
    scope: Construct, construct_id: str, recorder: AgentPool, *, workflow: str, attempts: int
) -> sfn.IChainable:
    """The Catch path: record the failure, then end the run failed with the original error and cause.

    Recording has its own retry (any error, with jitter) and its own Catch, so a recorder that fails or times
    out never replaces the run's error with its own; a failure caught without a cause is given one first. Its
    result is discarded (the decision is in the ledger), so recording cannot push the state past its size limit.
    """
    at = sfn.JsonPath.string_at
    failed = sfn.Fail(scope, "Failed", error_path="$.failure.Error", cause_path="$.failure.Cause")
    # A Fail state may not raise a name in the reserved "States." namespace (States.Timeout caught from a step):
    # the run ends with the name after the prefix, and the cause says the whole of it.
    unprefixed = sfn.Pass(
        scope,
        "UnreservedErrorName",
        parameters={
            "Error": sfn.JsonPath.array_get_item(sfn.JsonPath.string_split(at("$.failure.Error"), "."), 1),
            "Cause": sfn.JsonPath.format("{}: {}", at("$.failure.Error"), at("$.failure.Cause")),
        },
        result_path="$.failure",
    )
    ended = (
        sfn.Choice(scope, "ReservedErrorName")
        .when(sfn.Condition.string_matches("$.failure.Error", "States.*"), unprefixed.next(failed))
        .otherwise(failed)
    )
    record = agent_step(
        scope,
        construct_id,
        recorder,
        payload={"workflow": workflow, "error": at("$.failure.Error"), "cause": at("$.failure.Cause")},
        causation=caused_by(construct_id),
        result_path=sfn.JsonPath.DISCARD,
    )
    record.add_retry(
        errors=[sfn.Errors.ALL],
        interval=Duration.seconds(2),
        max_attempts=attempts,
        backoff_rate=2.0,
        max_delay=Duration.seconds(30),
        jitter_strategy=sfn.JitterType.FULL,
    )
    record.add_catch(ended, errors=[sfn.Errors.ALL], result_path="$.record_failure_error")
    record.next(ended)
    named = sfn.Pass(
        scope,
        "NameTheCause",
        parameters={
            "Error": at("$.failure.Error"),
            "Cause": sfn.JsonPath.format("{} (the failing step gave no cause)", at("$.failure.Error")),
        },
        result_path="$.failure",
    )
    return (
        sfn.Choice(scope, "HasCause")
        .when(
            sfn.Condition.and_(sfn.Condition.is_present("$.failure.Cause"), sfn.Condition.is_string("$.failure.Cause")),
            record,
        )
        .otherwise(named.next(record))
    )


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
