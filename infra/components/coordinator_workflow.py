"""Coordinator-driven steps: a Step Functions state machine whose tasks are contract-built agent steps."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from contracts.capability import CapabilityContract
from infra.components.agent_pool import AgentPool, timeout_s
from infra.components.nag import XRAY_REASON, acknowledge, logical_id
from infra.components.retention import log_group

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


class CoordinatorWorkflow(Construct):
    """A state machine with tracing and full execution logging; Standard unless told otherwise."""

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
    ) -> None:
        super().__init__(scope, construct_id)
        self.workflow_name = workflow_name
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
        for agent in agents:
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::<{logical_id(agent.function)}.Arn>:*]",
                f"invoke {agent.contract.name} by any of its published versions or aliases (canary rollouts)",
            )
