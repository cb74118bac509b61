"""Canary rollouts with SLO rollback (docs/rollouts.md): new versions take traffic gradually and go back on a fast burn.

- Lambda agents: one CodeDeploy deployment group per agent shifts its ``live`` alias from the previous version to
  the new one as the contract's ``rollout`` says, and rolls back when one of the agent's fast-burn alarms fires.
- Workflows: their ``live`` alias (infra.components.coordinator_workflow) shifts through Step Functions' own
  deployment preference, rolling back on the workflow's failed-execution alarm and its agents' fast-burn alarms.

SageMaker-backed agents get no deployment group: their invoker is plane code, and the endpoint's model is
updated by its endpoint configuration, not by alias shifting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from contracts.capability import Rollout
from infra.components.agent_pool import LIVE_ALIAS, AgentPool
from infra.components.coordinator_workflow import CoordinatorWorkflow
from infra.components.nag import acknowledge
from infra.components.observability import Observability, construct_name

# CodeDeploy and Step Functions both accept at most 10 alarms per deployment group or alias.
MAX_ALARMS = 10
CODEDEPLOY_APPLICATION_ENV = "CODEDEPLOY_APPLICATION"

# CodeDeploy's predefined configurations, by (strategy, percent, interval in minutes).
PREDEFINED: Mapping[tuple[str, int | None, int | None], codedeploy.ILambdaDeploymentConfig] = {
    ("canary", 10, 5): codedeploy.LambdaDeploymentConfig.CANARY_10_PERCENT_5_MINUTES,
    ("canary", 10, 10): codedeploy.LambdaDeploymentConfig.CANARY_10_PERCENT_10_MINUTES,
    ("canary", 10, 15): codedeploy.LambdaDeploymentConfig.CANARY_10_PERCENT_15_MINUTES,
    ("canary", 10, 30): codedeploy.LambdaDeploymentConfig.CANARY_10_PERCENT_30_MINUTES,
    ("linear", 10, 1): codedeploy.LambdaDeploymentConfig.LINEAR_10_PERCENT_EVERY_1_MINUTE,
    ("linear", 10, 2): codedeploy.LambdaDeploymentConfig.LINEAR_10_PERCENT_EVERY_2_MINUTES,
    ("linear", 10, 3): codedeploy.LambdaDeploymentConfig.LINEAR_10_PERCENT_EVERY_3_MINUTES,
    ("linear", 10, 10): codedeploy.LambdaDeploymentConfig.LINEAR_10_PERCENT_EVERY_10_MINUTES,
    ("all-at-once", None, None): codedeploy.LambdaDeploymentConfig.ALL_AT_ONCE,
}


def deployment_group_name(scope: Construct, agent: str) -> str:
    """The one name an agent's deployment group has: the registry records it and the API looks it up."""
    return f"{Stack.of(scope).stack_name}-{agent}"


def deployment_config(scope: Construct, construct_id: str, rollout: Rollout) -> codedeploy.ILambdaDeploymentConfig:
    """CodeDeploy's predefined configuration when one matches the policy, else one of our own."""
    predefined = PREDEFINED.get((rollout.strategy, rollout.percent, rollout.interval_minutes))
    if predefined is not None:
        return predefined
    # all-at-once is predefined: what is left shifts by a percent at an interval
    assert rollout.percent is not None
    assert rollout.interval_minutes is not None
    interval = Duration.minutes(rollout.interval_minutes)
    routing: codedeploy.TrafficRouting
    if rollout.strategy == "canary":
        routing = codedeploy.TimeBasedCanaryTrafficRouting(interval=interval, percentage=rollout.percent)
    else:
        routing = codedeploy.TimeBasedLinearTrafficRouting(interval=interval, percentage=rollout.percent)
    return codedeploy.LambdaDeploymentConfig(scope, construct_id, traffic_routing=routing)


def workflow_alarms(
    failed: cloudwatch.Alarm, agents: Sequence[str], rollback: Mapping[str, Sequence[cloudwatch.Alarm]]
) -> list[cloudwatch.Alarm]:
    """A workflow's rollback alarms, at most :data:`MAX_ALARMS`: its failed executions first, then its agents'
    fast-burn alarms by kind (every agent's 5-minute errors, then 5-minute latency, then the 60-minute ones), so
    a cap cuts the slowest signals first. ``rollback`` lists each agent's as Observability does:
    errors 60 min, errors 5 min, latency 60 min, latency 5 min."""
    chosen = [failed]
    for index in (1, 3, 0, 2):
        for agent in dict.fromkeys(agents):
            alarms = rollback.get(agent, ())
            if index < len(alarms) and alarms[index] not in chosen:
                chosen.append(alarms[index])
    return chosen[:MAX_ALARMS]


class Rollouts(Construct):
    """One CodeDeploy application for the plane, a deployment group per Lambda agent, workflow alias alarms.

    ``agents`` are the Lambda agents (one group each); ``pools`` every pool behind a ``live`` alias (the agents and
    the SageMaker invokers), whose aliases the rollouts route may read.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        agents: Mapping[str, AgentPool],
        pools: Mapping[str, AgentPool],
        workflows: Sequence[CoordinatorWorkflow],
        observability: Observability,
        application: codedeploy.ILambdaApplication | None = None,
    ) -> None:
        """``application``: the plane's, for a project's agents (one application, so the API finds every rollout)."""
        super().__init__(scope, construct_id)
        self.application = application or codedeploy.LambdaApplication(self, "Application")
        self.groups: dict[str, codedeploy.LambdaDeploymentGroup] = {}
        self.canary_alarms: dict[str, list[cloudwatch.Alarm]] = {}
        for name, pool in agents.items():
            # The new version's own errors and latency first, then the agent's SLO alarms on the whole function.
            canary = self.canary_alarms[name] = observability.add_canary(pool.contract, pool.target)
            alarms = [*canary, *observability.rollback_alarms[name]][:MAX_ALARMS]
            group = codedeploy.LambdaDeploymentGroup(
                self,
                construct_name(name),
                application=self.application,
                alias=pool.target,
                deployment_group_name=deployment_group_name(self, name),
                deployment_config=deployment_config(
                    self, f"{construct_name(name)}Config", pool.contract.effective_rollout
                ),
                alarms=alarms,
                auto_rollback=codedeploy.AutoRollbackConfig(failed_deployment=True, deployment_in_alarm=True),
            )
            acknowledge(
                group,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AWSCodeDeployRoleForLambdaLimited]",
                "CodeDeploy's documented service role for Lambda deployments: shift aliases, read alarms, "
                "invoke only functions named CodeDeployHook_*",
            )
            self.groups[name] = group
        self.aliases = [
            alias for pool in pools.values() for alias in (pool.target, pool.approximate_target) if alias is not None
        ]
        self.workflows = list(workflows)
        for workflow in workflows:
            workflow.roll_back_on(
                workflow_alarms(
                    observability.workflow_alarms[workflow.workflow_name],
                    [agent.contract.name for agent in workflow.agents],
                    observability.rollback_alarms,
                )
            )

    def grant_status_read(self, function: lambda_.Function) -> None:
        """What the rollouts route needs: read aliases and deployments, change nothing."""
        function.add_environment(CODEDEPLOY_APPLICATION_ENV, self.application.application_name)
        for statement in self.status_statements():
            function.add_to_role_policy(statement)

    def status_statements(self) -> list[iam.PolicyStatement]:
        """Read this set's aliases (agents' and workflows') and deployments: the rollouts route's view of them."""
        statements = []
        # Named by alias and by function: IAM may match an alias call against either ARN; read-only either way.
        functions = list(
            dict.fromkeys(arn for a in self.aliases for arn in (a.function_arn, a.version.lambda_.function_arn))
        )
        if functions:
            statements.append(iam.PolicyStatement(actions=["lambda:GetAlias"], resources=functions))
        if self.groups:
            statements.append(
                iam.PolicyStatement(
                    actions=[
                        "codedeploy:ListDeployments",
                        "codedeploy:GetDeployment",
                        "codedeploy:BatchGetDeployments",
                    ],
                    resources=[group.deployment_group_arn for group in self.groups.values()],
                )
            )
        if self.workflows:
            # Named by the machine and by the alias, limited to the alias (see public_api.through_alias).
            statements.append(
                iam.PolicyStatement(
                    actions=["states:DescribeStateMachineAlias"],
                    resources=[arn for w in self.workflows for arn in (w.state_machine.state_machine_arn, w.alias_arn)],
                    conditions={"StringEquals": {"states:StateMachineQualifier": LIVE_ALIAS}},
                )
            )
        return statements
