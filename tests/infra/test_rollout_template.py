"""Versioned agents and workflows, and canary rollouts that roll back on the SLO's fast burn, in the template."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from aws_cdk import App, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk.assertions import Template

from contracts.capability import Rollout
from contracts.workflow import WORKFLOWS_DIR, load_workflow
from infra.app import DEFAULT_STACK_NAME
from infra.components.coordinator_workflow import CoordinatorWorkflow
from infra.components.nag import logical_id
from infra.components.rollout import MAX_ALARMS, workflow_alarms
from infra.workflows.resolve import workflow_agents
from tests.generated_contracts import CONTRACTS
from tests.infra.assembly import (
    Synthesized,
    all_states,
    lambda_function_lid,
    lambda_qualifier,
    qualified_name,
    synthesize,
)
from tests.infra.test_contract_driven import copy_contracts

pytestmark = pytest.mark.infra

# Agents whose function rolls out through CodeDeploy: Lambda agents and llm agents' loops.
LAMBDA_AGENTS = sorted(name for name, contract in CONTRACTS.items() if contract.runtime.kind in ("lambda", "llm"))
DEFAULT_CONFIG = "CodeDeployDefault.LambdaCanary10Percent5Minutes"
# Declared policies for the second plane: a custom linear, a predefined linear, a custom canary, all at once.
POLICIES = {
    "risk-scorer": {"strategy": "linear", "percent": 20, "interval_minutes": 2},
    "document-intake": {"strategy": "linear", "percent": 10, "interval_minutes": 3},
    "entity-tagger": {"strategy": "canary", "percent": 25, "interval_minutes": 15},
    "summarizer-cpu": {"strategy": "all-at-once"},
}


@pytest.fixture(scope="module")
def declared(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The plane built from contracts that declare their own rollout policies."""
    root = tmp_path_factory.mktemp("rollout")
    contracts = copy_contracts(root / "contracts")
    for name, policy in POLICIES.items():
        path = contracts / f"{name}.yaml"
        document = yaml.safe_load(path.read_text())
        document["rollout"] = policy
        path.write_text(yaml.safe_dump(document))
    (cdk_out := root / "cdk").mkdir()
    return synthesize(cdk_out, contracts_dir=contracts)


def lid_of(alarm: cloudwatch.IAlarm) -> str:
    assert isinstance(alarm, cloudwatch.Alarm)
    return logical_id(alarm)


def groups_by_agent(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    prefix = f"{DEFAULT_STACK_NAME}-"
    return {
        res["Properties"]["DeploymentGroupName"].removeprefix(prefix): res
        for res in synthesized.of_type("AWS::CodeDeploy::DeploymentGroup").values()
    }


def api_statements(synthesized: Synthesized) -> list[dict[str, Any]]:
    (api,) = [
        lid
        for lid, res in synthesized.of_type("AWS::Lambda::Function").items()
        if res["Properties"]["Handler"] == "functions.api.handler.lambda_handler"
    ]
    return synthesized.role_statements(synthesized.role_of(api))


# --- every Lambda agent is a version behind "live", and every caller invokes the alias -----------------------


@pytest.mark.parametrize("agent", LAMBDA_AGENTS)
def test_every_lambda_agent_is_a_retained_version_behind_a_live_alias(synthesized: Synthesized, agent: str) -> None:
    # GIVEN the agent's function
    function = synthesized.agent_functions()[agent]

    # THEN its live alias points at a version published from it, and old versions stay for rolling back
    alias = synthesized.resources[synthesized.live_alias(function)]
    version_lid = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
    version = synthesized.resources[version_lid]
    assert version["Type"] == "AWS::Lambda::Version"
    assert version["Properties"]["FunctionName"] == {"Ref": function}
    assert (version["DeletionPolicy"], version["UpdateReplacePolicy"]) == ("Retain", "Retain")
    # AND CodeDeploy, not CloudFormation, shifts the alias to a new version
    assert set(alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]) == {"ApplicationName", "DeploymentGroupName"}


def test_the_approximate_handler_has_its_own_live_alias(synthesized: Synthesized) -> None:
    (degraded,) = [
        lid
        for lid, fn in synthesized.of_type("AWS::Lambda::Function").items()
        if fn["Properties"]["Handler"] == "functions.evidence_verifier.handler.approximate_handler"
    ]
    alias = synthesized.resources[synthesized.live_alias(degraded)]
    version = synthesized.resources[alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]]
    assert version["Properties"]["FunctionName"] == {"Ref": degraded}
    # dispatch reaches it only as a fallback: no deployment group shifts it
    assert "UpdatePolicy" not in alias


def test_workflow_tasks_invoke_agents_through_their_live_alias(synthesized: Synthesized) -> None:
    agent_functions = {
        lid
        for lid, fn in synthesized.of_type("AWS::Lambda::Function").items()
        if "AGENT_NAME" in fn["Properties"].get("Environment", {}).get("Variables", {})
    }
    invoked = []
    for machine in synthesized.of_type("AWS::StepFunctions::StateMachine"):
        for state in all_states(synthesized.state_machine_definition(machine)):
            if state["Type"] != "Task":
                continue
            arns = [state["Resource"], state.get("Parameters", {}).get("FunctionName", "")]
            for arn in (a for a in arns if isinstance(a, str) and a.startswith("arn:aws:lambda:")):
                if lambda_function_lid(arn) in agent_functions:
                    invoked.append((lambda_function_lid(arn), lambda_qualifier(arn)))
    assert invoked  # the workflows do call agents directly
    assert {qualifier for _, qualifier in invoked} == {"live"}, invoked


def test_event_rules_and_queues_deliver_to_live_aliases(synthesized: Synthesized) -> None:
    agent_functions = {synthesized.agent_functions()[name] for name in LAMBDA_AGENTS}
    aliases = {synthesized.live_alias(function) for function in agent_functions}
    # Rules that target a Lambda directly target an alias, never the function
    for rule in synthesized.of_type("AWS::Events::Rule").values():
        for target in rule["Properties"].get("Targets", []):
            named = json.dumps(target["Arn"])
            assert not any(f'"{function}"' in named for function in agent_functions), target
    # Queues drain into an agent by its alias-qualified name
    drained = [m["Properties"]["FunctionName"] for m in synthesized.of_type("AWS::Lambda::EventSourceMapping").values()]
    subscribers = [name for name in LAMBDA_AGENTS if CONTRACTS[name].subscribes]
    assert subscribers
    for name in subscribers:
        alias = synthesized.live_alias(synthesized.agent_functions()[name])
        assert qualified_name(alias) in drained
    assert not [d for d in drained if d.get("Ref") in agent_functions | aliases]


# --- one CodeDeploy deployment group per Lambda agent -------------------------------------------------------


def test_one_deployment_group_per_lambda_agent_on_its_live_alias(synthesized: Synthesized) -> None:
    groups = groups_by_agent(synthesized)
    (application,) = synthesized.of_type("AWS::CodeDeploy::Application").items()

    # THEN every Lambda agent, and nothing else (the SageMaker-backed summarizer has none), has a group
    assert sorted(groups) == LAMBDA_AGENTS
    assert application[1]["Properties"]["ComputePlatform"] == "Lambda"
    for agent, group in groups.items():
        alias = synthesized.live_alias(synthesized.agent_functions()[agent])
        update = synthesized.resources[alias]["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
        assert update["ApplicationName"] == {"Ref": application[0]}
        assert group["Properties"]["ApplicationName"] == {"Ref": application[0]}
        group_lid = update["DeploymentGroupName"]["Ref"]
        assert synthesized.resources[group_lid] is group


@pytest.mark.parametrize("agent", LAMBDA_AGENTS)
def test_a_deployment_rolls_back_on_exactly_the_agents_fast_burn_alarms(synthesized: Synthesized, agent: str) -> None:
    # GIVEN the agent's deployment group and its fast-burn metric alarms (not the composites that notify)
    group = groups_by_agent(synthesized)[agent]["Properties"]
    fast = [lid_of(alarm) for alarm in synthesized.stack.observability.rollback_alarms[agent]]

    # THEN the group watches the new version's own error ratio, then exactly those: errors and latency, over 60
    # and 5 minutes, on this agent
    watched = [alarm["Name"]["Ref"] for alarm in group["AlarmConfiguration"]["Alarms"]]
    canary = [lid_of(alarm) for alarm in synthesized.stack.rollouts.canary_alarms[agent]]
    assert watched == [*canary, *fast]
    assert group["AlarmConfiguration"]["Enabled"] is True
    assert len(watched) == 6 <= MAX_ALARMS
    periods = []
    for lid in watched[2:]:
        alarm = synthesized.resources[lid]
        assert alarm["Type"] == "AWS::CloudWatch::Alarm"
        assert "fast window" in alarm["Properties"]["AlarmDescription"]
        assert alarm["Properties"]["AlarmDescription"].startswith(f"{agent} ")
        periods.append({m.get("MetricStat", {}).get("Period") for m in alarm["Properties"]["Metrics"]} - {None})
    assert sorted(p for found in periods for p in found) == [300, 300, 3600, 3600]
    # AND a failed deployment or an alarm sends all traffic back to the previous version
    assert group["AutoRollbackConfiguration"] == {
        "Enabled": True,
        "Events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"],
    }
    # AND the group's name is the one the registry records and the API looks up
    assert group["DeploymentGroupName"] == f"{DEFAULT_STACK_NAME}-{agent}"


@pytest.mark.parametrize("agent", LAMBDA_AGENTS)
def test_the_canary_alarms_watch_only_the_version_being_deployed(synthesized: Synthesized, agent: str) -> None:
    errors, latency = (
        synthesized.resources[lid_of(alarm)]["Properties"] for alarm in synthesized.stack.rollouts.canary_alarms[agent]
    )
    function = synthesized.agent_functions()[agent]
    alias = synthesized.resources[synthesized.live_alias(function)]["Properties"]
    contract = CONTRACTS[agent]

    def stats(alarm: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {q["MetricStat"]["Metric"]["MetricName"]: q["MetricStat"] for q in alarm["Metrics"] if "MetricStat" in q}

    # THEN they read the Lambda metrics of the alias's current version alone, minute by minute
    assert {name: stat["Stat"] for name, stat in stats(errors).items()} == {"Errors": "Sum", "Invocations": "Sum"}
    assert {name: stat["Stat"] for name, stat in stats(latency).items()} == {"Duration": f"PR(:{contract.slo.p95_ms})"}
    for stat in [*stats(errors).values(), *stats(latency).values()]:
        dimensions = {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]}
        assert dimensions["FunctionName"] == {"Ref": function}
        assert dimensions["ExecutedVersion"] == alias["FunctionVersion"]  # the version this deploy published
        assert stat["Period"] == 60
    # AND they trip at the fast burn rate of the contract's budgets, never on missing data, and page nobody
    budget = 1 - contract.slo.availability / 100
    assert errors["Threshold"] == pytest.approx(min(1.0, 14.4 * budget))
    assert latency["Threshold"] == pytest.approx(min(1.0, 14.4 * 0.05))
    for alarm in (errors, latency):
        assert alarm["TreatMissingData"] == "notBreaching"
        assert "AlarmActions" not in alarm


def test_without_a_policy_an_agent_rolls_out_as_a_ten_percent_canary_for_five_minutes(
    synthesized: Synthesized,
) -> None:
    configs = {agent: g["Properties"]["DeploymentConfigName"] for agent, g in groups_by_agent(synthesized).items()}
    undeclared = [name for name in LAMBDA_AGENTS if CONTRACTS[name].rollout is None]
    assert undeclared
    assert {configs[name] for name in undeclared} == {DEFAULT_CONFIG}


def test_a_contracts_rollout_policy_picks_the_deployment_config(declared: Synthesized) -> None:
    configs = {agent: g["Properties"]["DeploymentConfigName"] for agent, g in groups_by_agent(declared).items()}

    # THEN a policy CodeDeploy predefines uses it
    assert configs["document-intake"] == "CodeDeployDefault.LambdaLinear10PercentEvery3Minutes"
    assert configs["summarizer-cpu"] == "CodeDeployDefault.LambdaAllAtOnce"
    # AND any other gets a configuration of its own, shaped as declared
    routing = {
        agent: declared.resources[configs[agent]["Ref"]]["Properties"] for agent in ("risk-scorer", "entity-tagger")
    }
    assert routing["risk-scorer"]["ComputePlatform"] == "Lambda"
    assert routing["risk-scorer"]["TrafficRoutingConfig"] == {
        "Type": "TimeBasedLinear",
        "TimeBasedLinear": {"LinearInterval": 2, "LinearPercentage": 20},
    }
    assert routing["entity-tagger"]["TrafficRoutingConfig"] == {
        "Type": "TimeBasedCanary",
        "TimeBasedCanary": {"CanaryInterval": 15, "CanaryPercentage": 25},
    }
    # AND the agents that declare nothing keep the plane's canary
    assert configs["evidence-verifier"] == DEFAULT_CONFIG


# --- workflows: retained versions behind a live alias that rolls back on alarms ----------------------------


@pytest.mark.parametrize("workflow", ["doc-review", "quick-check"])
def test_a_workflow_is_a_retained_version_behind_a_live_alias_with_alarms(
    synthesized: Synthesized, workflow: str
) -> None:
    # GIVEN the workflow's state machine
    spec = load_workflow(WORKFLOWS_DIR / f"{workflow}.yaml")
    built = {w.workflow_name: w for w in synthesized.stack.rollouts.workflows}[spec.name]
    machine = logical_id(built.state_machine)
    alias_lid = synthesized.state_machine_alias(machine)
    alias = synthesized.resources[alias_lid]["Properties"]
    version_lid = alias["DeploymentPreference"]["StateMachineVersionArn"]["Ref"]
    version = synthesized.resources[version_lid]

    # THEN a new revision of the machine publishes a new version, and the old one is kept for rolling back
    assert version["Properties"]["StateMachineRevisionId"] == {"Fn::GetAtt": [machine, "StateMachineRevisionId"]}
    assert (version["DeletionPolicy"], version["UpdateReplacePolicy"]) == ("Retain", "Retain")
    # AND the live alias shifts to it as the workflow's policy says (the plane's canary by default)
    assert alias["Name"] == "live"
    preference = alias["DeploymentPreference"]
    assert spec.effective_rollout.model_dump() == {"strategy": "canary", "percent": 10, "interval_minutes": 5}
    assert (preference["Type"], preference["Percentage"], preference["Interval"]) == ("CANARY", 10, 5)
    # AND it rolls back when runs fail or its agents burn their budget fast: at most ten alarms, failures first
    stack = synthesized.stack
    failed = lid_of(stack.observability.workflow_alarms[spec.name])
    watched = [alarm["Ref"] for alarm in preference["Alarms"]]
    assert watched[0] == failed
    assert len(watched) == len(set(watched)) <= MAX_ALARMS
    agents = workflow_agents(spec, CONTRACTS)
    fast = {agent: [lid_of(alarm) for alarm in stack.observability.rollback_alarms[agent]] for agent in agents}
    assert set(watched[1:]) <= {lid for alarms in fast.values() for lid in alarms}
    # every agent it runs is watched at least for its 5-minute error burn
    assert all(alarms[1] in watched for alarms in fast.values())


def test_quick_check_watches_every_fast_burn_alarm_of_its_agent(synthesized: Synthesized) -> None:
    stack = synthesized.stack
    machine = logical_id(stack.workflows["quick-check"].state_machine)
    alias = synthesized.resources[synthesized.state_machine_alias(machine)]
    watched = {alarm["Ref"] for alarm in alias["Properties"]["DeploymentPreference"]["Alarms"]}
    expected = {lid_of(alarm) for alarm in stack.observability.rollback_alarms["evidence-verifier"]}
    assert watched == expected | {lid_of(stack.observability.workflow_alarms["quick-check"])}


def test_workflow_alarms_are_capped_with_the_fastest_signals_first() -> None:
    # GIVEN a workflow failure alarm and twelve agents with four fast-burn alarms each
    stack = Stack(App(), "Alarms")
    metric = cloudwatch.Metric(namespace="n", metric_name="m")

    def alarm(name: str) -> cloudwatch.Alarm:
        return cloudwatch.Alarm(stack, name, metric=metric, threshold=1, evaluation_periods=1)

    agents = [f"agent{i}" for i in range(12)]
    rollback = {a: [alarm(f"{a}{kind}") for kind in ("Errors60", "Errors5", "Latency60", "Latency5")] for a in agents}
    failed = alarm("Failed")

    # WHEN the workflow's rollback alarms are chosen
    chosen = workflow_alarms(failed, agents, rollback)

    # THEN the failure alarm and the first nine agents' 5-minute error alarms fill the ten places
    assert chosen == [failed, *(rollback[a][1] for a in agents[:9])]
    # AND with two agents, every 5-minute alarm comes before any 60-minute one
    two = workflow_alarms(failed, agents[:2], rollback)
    assert two == [
        failed,
        rollback["agent0"][1],
        rollback["agent1"][1],
        rollback["agent0"][3],
        rollback["agent1"][3],
        rollback["agent0"][0],
        rollback["agent1"][0],
        rollback["agent0"][2],
        rollback["agent1"][2],
    ]


def test_a_workflow_may_roll_out_all_at_once() -> None:
    # GIVEN a workflow whose policy shifts every run at once
    stack = Stack(App(), "Workflow")
    workflow = CoordinatorWorkflow(
        stack,
        "Flow",
        definition=sfn.Pass(stack, "Noop"),
        agents=[],
        workflow_name="flow",
        rollout=Rollout(strategy="all-at-once"),
    )
    failed = cloudwatch.Alarm(
        stack, "Failed", metric=workflow.state_machine.metric_failed(), threshold=0, evaluation_periods=1
    )
    workflow.roll_back_on([failed])

    # THEN its alias names the version with no slice or interval, and still rolls back on the alarm
    (alias,) = Template.from_stack(stack).find_resources("AWS::StepFunctions::StateMachineAlias").values()
    assert alias["Properties"]["DeploymentPreference"] == {
        "Type": "ALL_AT_ONCE",
        "StateMachineVersionArn": {"Ref": stack.resolve(workflow.version.logical_id)},
        "Alarms": [{"Ref": stack.resolve(failed.node.default_child.logical_id)}],  # type: ignore[union-attr]
    }


# --- what the API reads about rollouts, and starts through ----------------------------------------------------


def test_the_api_starts_runs_through_the_workflow_aliases(synthesized: Synthesized) -> None:
    stack = synthesized.stack
    (api,) = [
        res
        for res in synthesized.of_type("AWS::Lambda::Function").values()
        if res["Properties"]["Handler"] == "functions.api.handler.lambda_handler"
    ]
    environment = api["Properties"]["Environment"]["Variables"]
    rendered = json.dumps(environment["WORKFLOWS"])
    for workflow in stack.workflows.values():
        alias = synthesized.state_machine_alias(logical_id(workflow.state_machine))
        assert json.dumps({"Ref": alias}) in rendered
        assert json.dumps({"Ref": logical_id(workflow.state_machine)}) not in rendered
    # AND the rollouts route finds the plane's CodeDeploy application
    (application,) = synthesized.of_type("AWS::CodeDeploy::Application")
    assert environment["CODEDEPLOY_APPLICATION"] == {"Ref": application}
    # AND the doc-review alias is a stack output beside its state machine
    outputs = synthesized.template["Outputs"]
    assert outputs["DocReviewAliasArn"]["Value"] == {
        "Ref": synthesized.state_machine_alias(logical_id(stack.workflows["doc-review"].state_machine))
    }
    assert "DocReviewStateMachineArn" in outputs


def test_the_api_reads_aliases_and_deployments_on_exact_resources(synthesized: Synthesized) -> None:
    statements = api_statements(synthesized)

    def resources_of(action: str) -> list[Any]:
        found = [s for s in statements if action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])]
        assert len(found) == 1, found
        resource = found[0]["Resource"]
        return resource if isinstance(resource, list) else [resource]

    # every live alias callers invoke (the agents', their approximate variants' and the invokers'), by alias and
    # by function ARN, and no other function
    aliases = [
        named
        for lid, alias in synthesized.of_type("AWS::Lambda::Alias").items()
        for named in ({"Ref": lid}, {"Fn::GetAtt": [alias["Properties"]["FunctionName"]["Ref"], "Arn"]})
    ]
    assert sorted(map(json.dumps, resources_of("lambda:GetAlias"))) == sorted(map(json.dumps, aliases))
    groups = synthesized.of_type("AWS::CodeDeploy::DeploymentGroup")
    for action in ("codedeploy:ListDeployments", "codedeploy:GetDeployment", "codedeploy:BatchGetDeployments"):
        found = resources_of(action)
        assert len(found) == len(groups) == len(LAMBDA_AGENTS)
        for arn in found:  # arn:...:deploymentgroup:<application>/<group>, nothing wider
            parts = json.dumps(arn)
            assert "deploymentgroup:" in parts
            assert "*" not in parts
            assert any(f'"Ref": "{lid}"' in parts for lid in groups)
    # each workflow's live alias, named by its machine and by itself, and limited to the alias by the qualifier
    stack = synthesized.stack
    workflow_arns = [
        {"Ref": lid}
        for w in stack.workflows.values()
        for lid in (logical_id(w.state_machine), synthesized.state_machine_alias(logical_id(w.state_machine)))
    ]
    assert resources_of("states:DescribeStateMachineAlias") == workflow_arns
    (describe,) = [s for s in statements if s["Action"] == "states:DescribeStateMachineAlias"]
    assert describe["Condition"] == {"StringEquals": {"states:StateMachineQualifier": "live"}}
    # AND nothing that could change a rollout
    changing = {"lambda:UpdateAlias", "codedeploy:CreateDeployment", "codedeploy:StopDeployment"}
    assert not changing & {
        a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
