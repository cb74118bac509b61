"""Observability in the template: tracing everywhere, burn-rate alarms per contract SLO, plane alarms, the alarm
topic, sampling rules, the dashboard, and the opt-in fault-injection experiments."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk.assertions import Template

from contracts.capability import CapabilityContract, LambdaRuntime
from contracts.loader import load_contracts
from infra.app import ContextError, build_app
from infra.components.observability import FAST, SLOW, Observability
from infra.paths import REPO_ROOT
from tests.infra.assembly import SYNTH_CONTEXT, Synthesized, synthesize

pytestmark = pytest.mark.infra

CONTRACTS = load_contracts()
COLLECTOR = "arn:aws:lambda:us-east-1:901920570463:layer:aws-otel-collector-arm64-ver-0-117-0:1"
LAMBDA_AGENTS = sorted(name for name, contract in CONTRACTS.items() if isinstance(contract.runtime, LambdaRuntime))


def alarms(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    return synthesized.of_type("AWS::CloudWatch::Alarm")


def composites(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    return synthesized.of_type("AWS::CloudWatch::CompositeAlarm")


def metric_stats(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    return [m["MetricStat"] for m in alarm["Properties"].get("Metrics", []) if "MetricStat" in m]


def function_of(stat: dict[str, Any]) -> str | None:
    for dimension in stat["Metric"].get("Dimensions", []):
        if dimension["Name"] == "FunctionName":
            return str(dimension["Value"]["Ref"])
    return None


def rule_members(composite: dict[str, Any]) -> set[str]:
    """Logical ids of the alarms an ``ALARM(...) AND ALARM(...)`` rule names."""
    rule = composite["Properties"]["AlarmRule"]
    parts = rule["Fn::Join"][1] if isinstance(rule, dict) else [rule]
    return {part["Fn::GetAtt"][0] for part in parts if isinstance(part, dict)}


def test_every_lambda_is_actively_traced(synthesized: Synthesized) -> None:
    functions = synthesized.of_type("AWS::Lambda::Function")
    assert functions
    untraced = [lid for lid, res in functions.items() if res["Properties"].get("TracingConfig") != {"Mode": "Active"}]
    assert untraced == []


def test_both_state_machine_types_and_the_api_stage_are_traced(synthesized: Synthesized) -> None:
    machines = synthesized.of_type("AWS::StepFunctions::StateMachine")
    assert {res["Properties"].get("StateMachineType", "STANDARD") for res in machines.values()} == {
        "STANDARD",
        "EXPRESS",
    }
    assert all(res["Properties"]["TracingConfiguration"] == {"Enabled": True} for res in machines.values())
    [stage] = synthesized.of_type("AWS::ApiGateway::Stage").values()
    assert stage["Properties"]["TracingEnabled"] is True


@pytest.mark.parametrize("agent", LAMBDA_AGENTS)
def test_each_contract_slo_has_fast_and_slow_burn_alarms_on_errors_and_latency(
    synthesized: Synthesized, agent: str
) -> None:
    contract = CONTRACTS[agent]
    function = synthesized.agent_functions()[agent]
    budget = 1 - contract.slo.availability / 100
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for composite in composites(synthesized).values():
        members = [alarms(synthesized)[lid] for lid in rule_members(composite) if lid in alarms(synthesized)]
        stats = [stat for member in members for stat in metric_stats(member)]
        if len(members) != 2 or not stats or any(function_of(stat) != function for stat in stats):
            continue
        kind = "latency" if any(stat["Stat"].startswith("PR(") for stat in stats) else "errors"
        periods = tuple(sorted({stat["Period"] for stat in stats}, reverse=True))
        found[(kind, str(periods))] = {"composite": composite, "members": members, "stats": stats}

    # GIVEN the SRE workbook's windows: fast 1 h / 5 min at 14.4x, slow 6 h / 30 min at 6x
    for window in (FAST, SLOW):
        periods = (int(window.long.to_seconds()), int(window.short.to_seconds()))
        errors = found[("errors", str(periods))]
        latency = found[("latency", str(periods))]
        # THEN both windows must agree (AND), and only the composite notifies
        for pair in (errors, latency):
            assert pair["composite"]["Properties"]["AlarmRule"]["Fn::Join"][1][2] == '") AND ALARM("'
            assert pair["composite"]["Properties"]["AlarmActions"]
            assert all("AlarmActions" not in member["Properties"] for member in pair["members"])
            assert "docs/runbooks/" in pair["composite"]["Properties"]["AlarmDescription"]
        assert [m["Properties"]["Threshold"] for m in errors["members"]] == [
            pytest.approx(window.burn_rate * budget)
        ] * 2
        assert [m["Properties"]["Threshold"] for m in latency["members"]] == [
            pytest.approx(window.burn_rate * 0.05)
        ] * 2
        # AND latency counts the requests over the contract's p95
        assert {stat["Stat"] for stat in latency["stats"]} == {f"PR(:{contract.slo.p95_ms})"}
        assert {stat["Metric"]["MetricName"] for stat in errors["stats"]} == {"Errors", "Invocations"}


def plane_alarm(synthesized: Synthesized, metric_name: str) -> list[dict[str, Any]]:
    return [
        alarm
        for alarm in alarms(synthesized).values()
        if alarm["Properties"].get("MetricName") == metric_name
        or any(stat["Metric"]["MetricName"] == metric_name for stat in metric_stats(alarm))
    ]


def test_plane_alarms_cover_api_5xx_failed_executions_dead_letters_and_ledger_lag(synthesized: Synthesized) -> None:
    assert len(plane_alarm(synthesized, "5XXError")) == 1
    failed = plane_alarm(synthesized, "ExecutionsFailed")
    machines = synthesized.of_type("AWS::StepFunctions::StateMachine")
    assert {alarm["Properties"]["Dimensions"][0]["Value"]["Ref"] for alarm in failed} == set(machines)
    depth = plane_alarm(synthesized, "ApproximateNumberOfMessagesVisible")
    dead_letters = {
        lid
        for lid, queue in synthesized.of_type("AWS::SQS::Queue").items()
        if queue.get("Metadata", {}).get("agentplane:retention") == "dead-letters"
    }
    assert {alarm["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for alarm in depth} == dead_letters
    assert all(alarm["Properties"]["Threshold"] == 0 for alarm in depth)
    [lag] = plane_alarm(synthesized, "IteratorAge")
    assert lag["Properties"]["Dimensions"][0]["Value"]["Ref"].startswith("LedgerAppender")
    for alarm in [*failed, *depth, lag]:
        assert alarm["Properties"]["AlarmActions"]
        assert alarm["Properties"]["ComparisonOperator"] == "GreaterThanThreshold"


def test_every_alarm_names_a_runbook_that_exists(synthesized: Synthesized) -> None:
    notifying = [
        res["Properties"]
        for res in [*alarms(synthesized).values(), *composites(synthesized).values()]
        if res["Properties"].get("AlarmActions")
    ]
    assert notifying
    for props in notifying:
        link = props["AlarmDescription"].split("Runbook: ", 1)[1]
        assert (REPO_ROOT / link).is_file(), link


def test_alarms_notify_one_kms_encrypted_topic(synthesized: Synthesized) -> None:
    [(topic_lid, topic)] = synthesized.of_type("AWS::SNS::Topic").items()
    key = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    assert synthesized.resources[key]["Properties"]["EnableKeyRotation"] is True
    statements = synthesized.resources[key]["Properties"]["KeyPolicy"]["Statement"]
    assert any(s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"} for s in statements)
    targets = {
        json.dumps(action)
        for res in [*alarms(synthesized).values(), *composites(synthesized).values()]
        for action in res["Properties"].get("AlarmActions", [])
    }
    assert targets == {json.dumps({"Ref": topic_lid})}


def test_sampling_keeps_approvals_and_samples_routine_traffic_with_an_error_boost(
    synthesized_prod: Synthesized,
) -> None:
    # account-wide (every service in the account and region): only with agentplane:account-settings=true
    rules = [res["Properties"]["SamplingRule"] for res in synthesized_prod.of_type("AWS::XRay::SamplingRule").values()]
    by_path = {rule["URLPath"]: rule for rule in rules}
    approvals, routine = by_path["/v1/approvals*"], by_path["*"]
    assert approvals["FixedRate"] == 1
    assert approvals["Priority"] < routine["Priority"]
    assert 0 < routine["FixedRate"] < 1
    assert routine["SamplingRateBoost"]["MaxRate"] == 1


def test_one_dashboard_shows_the_golden_signals_of_every_capability(synthesized: Synthesized) -> None:
    [dashboard] = synthesized.of_type("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for agent in LAMBDA_AGENTS:
        contract = CONTRACTS[agent]
        for signal in ("latency", "traffic", "errors", "saturation"):
            assert f"{agent} {contract.version}: {signal}" in body
        assert f"SLO p95 {contract.slo.p95_ms} ms" in body


def test_an_endpoint_backed_capability_gets_a_model_latency_alarm() -> None:
    contract = CapabilityContract.model_validate(
        {
            **CONTRACTS["risk-scorer"].model_dump(),
            "name": "summarizer",
            "runtime": {"kind": "sagemaker", "instance_type": "ml.g5.xlarge", "max_instances": 2, "container": "s"},
            "slo": {"p95_ms": 900, "availability": 99.5, "error_budget_pct": 0.5},
        }
    )
    stack = Stack(App(), "Probe")
    Observability(stack, "Observability").add_endpoint(contract, "summarizer-endpoint")

    [alarm] = Template.from_stack(stack).find_resources("AWS::CloudWatch::Alarm").values()
    props = alarm["Properties"]
    assert (props["Namespace"], props["MetricName"], props["ExtendedStatistic"]) == (
        "AWS/SageMaker",
        "ModelLatency",
        "p95",
    )
    assert props["Threshold"] == 900_000  # microseconds
    assert {"Name": "EndpointName", "Value": "summarizer-endpoint"} in props["Dimensions"]


def test_an_llm_agent_gets_a_throttling_alarm_on_its_own_metric(synthesized: Synthesized) -> None:
    throttling = {
        lid: a for lid, a in alarms(synthesized).items() if lid.startswith("ObservabilityFactCheckerLlmThrottling")
    }

    [alarm] = throttling.values()
    [throttled] = [m for m in alarm["Properties"]["Metrics"] if m["Id"] == "throttled"]
    metric = throttled["MetricStat"]["Metric"]
    assert (metric["Namespace"], metric["MetricName"]) == ("agentplane", "throttle_count")
    assert {"Name": "service", "Value": "fact-checker-llm"} in metric["Dimensions"]
    [invocations] = [m for m in alarm["Properties"]["Metrics"] if m["Id"] == "invocations"]
    assert function_of(invocations["MetricStat"]) == synthesized.agent_functions()["fact-checker-llm"]
    assert alarm["Properties"]["EvaluationPeriods"] == 3
    assert "docs/runbooks/llm-throttling.md" in alarm["Properties"]["AlarmDescription"]
    # a plain Lambda agent has no model to be throttled by
    assert not [lid for lid in alarms(synthesized) if lid.startswith("ObservabilityEvidenceVerifierThrottling")]


def test_fault_injection_is_off_unless_asked(synthesized: Synthesized) -> None:
    assert synthesized.of_type("AWS::FIS::ExperimentTemplate") == {}
    with pytest.raises(ContextError, match="agentplane:fault-injection"):
        build_app(context={"agentplane:fault-injection": "yes"})


@pytest.fixture(scope="module")
def with_faults(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The plane with both options on: FIS experiments, and spans exported through the ADOT collector layer."""
    context = {**SYNTH_CONTEXT, "agentplane:fault-injection": "true", "agentplane:otel-collector-layer-arn": COLLECTOR}
    return synthesize(tmp_path_factory.mktemp("cdk-options"), context=context)


def test_fis_experiments_delay_and_fail_every_agent_and_stop_on_slo_burn(with_faults: Synthesized) -> None:
    templates = with_faults.of_type("AWS::FIS::ExperimentTemplate")
    actions = {
        action["ActionId"]: action for res in templates.values() for action in res["Properties"]["Actions"].values()
    }
    assert set(actions) == {"aws:lambda:invocation-add-delay", "aws:lambda:invocation-error"}
    agents = set(with_faults.agent_functions().values())
    stop = with_faults.resources
    for res in templates.values():
        props = res["Properties"]
        [target] = props["Targets"].values()
        assert target["ResourceType"] == "aws:lambda:function"
        assert {arn["Fn::GetAtt"][0] for arn in target["ResourceArns"]} == agents
        [condition] = props["StopConditions"]
        assert condition["Source"] == "aws:cloudwatch:alarm"
        alarm = condition["Value"]["Fn::GetAtt"][0]
        assert stop[alarm]["Type"] == "AWS::CloudWatch::CompositeAlarm"
        # the stop condition is any fast SLO burn of any agent
        assert len(rule_members(stop[alarm])) == 2 * len(agents)
        role = props["RoleArn"]["Fn::GetAtt"][0]
        trust = stop[role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust[0]["Principal"] == {"Service": "fis.amazonaws.com"}


def test_agents_carry_the_fis_extension_only_when_fault_injection_is_on(
    synthesized: Synthesized, with_faults: Synthesized
) -> None:
    for template, expected in ((synthesized, False), (with_faults, True)):
        for lid in template.agent_functions().values():
            variables = template.resources[lid]["Properties"]["Environment"]["Variables"]
            assert ("AWS_LAMBDA_EXEC_WRAPPER" in variables) is expected
            assert ("AWS_FIS_CONFIGURATION_LOCATION" in variables) is expected


def test_spans_are_exported_through_the_collector_layer_only_when_it_is_given(
    synthesized: Synthesized, with_faults: Synthesized
) -> None:
    for template, exported in ((synthesized, False), (with_faults, True)):
        for lid, function in template.of_type("AWS::Lambda::Function").items():
            variables = function["Properties"].get("Environment", {}).get("Variables", {})
            assert (
                variables.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "http://localhost:4318/v1/traces"
            ) is exported, lid
            assert (COLLECTOR in function["Properties"].get("Layers", [])) is exported, lid
    with pytest.raises(ContextError, match="otel-collector-layer-arn"):
        build_app(context={"agentplane:otel-collector-layer-arn": "not-an-arn"})


def test_the_fault_injection_template_is_cfn_lint_clean(with_faults: Synthesized) -> None:
    from tests.infra.test_cfn_lint import described, findings

    assert described(findings(with_faults.template)) == []
