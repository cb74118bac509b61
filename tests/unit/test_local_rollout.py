"""The local plane's rollout parts: traffic shifting by config, exact alias splits, alarms on one version."""

from __future__ import annotations

from typing import Any

import pytest

from infra.local.alarms import LocalAlarm, UnsupportedAlarm
from infra.local.faults import Fault, FaultPlan, FaultSpecError
from infra.local.lambdas import VersionStats
from infra.local.rollout import RolloutError, TrafficRouting, WeightedAliases
from infra.local.stepfunctions import AliasSplit


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("CodeDeployDefault.LambdaCanary10Percent5Minutes", TrafficRouting("canary", 10, 5)),
        ("CodeDeployDefault.LambdaCanary10Percent30Minutes", TrafficRouting("canary", 10, 30)),
        ("CodeDeployDefault.LambdaLinear10PercentEvery1Minute", TrafficRouting("linear", 10, 1)),
        ("CodeDeployDefault.LambdaLinear10PercentEvery10Minutes", TrafficRouting("linear", 10, 10)),
        ("CodeDeployDefault.LambdaAllAtOnce", TrafficRouting("all-at-once")),
    ],
)
def test_predefined_lambda_configs_are_read_from_their_names(name: str, expected: TrafficRouting) -> None:
    assert TrafficRouting.named(name, {}) == expected


def test_custom_configs_come_from_the_template_and_unknown_names_are_refused() -> None:
    canary = TrafficRouting.from_properties(
        {
            "TrafficRoutingConfig": {
                "Type": "TimeBasedCanary",
                "TimeBasedCanary": {"CanaryPercentage": 5, "CanaryInterval": 15},
            }
        }
    )
    linear = TrafficRouting.from_properties(
        {
            "TrafficRoutingConfig": {
                "Type": "TimeBasedLinear",
                "TimeBasedLinear": {"LinearPercentage": 20, "LinearInterval": 2},
            }
        }
    )
    assert (canary, linear) == (TrafficRouting("canary", 5, 15), TrafficRouting("linear", 20, 2))
    assert TrafficRouting.named("plane-canary", {"plane-canary": canary}) == canary
    with pytest.raises(RolloutError, match="neither predefined"):
        TrafficRouting.named("CodeDeployDefault.OneAtATime", {})


def test_canary_holds_its_share_for_the_interval_then_takes_all() -> None:
    canary = TrafficRouting("canary", 10, 5)
    assert [canary.weight(m) for m in (0, 2.5, 4.99, 5, 9)] == [0.1, 0.1, 0.1, 1.0, 1.0]


def test_linear_adds_its_share_every_interval_until_all() -> None:
    linear = TrafficRouting("linear", 25, 2)
    assert [linear.weight(m) for m in (0, 1.9, 2, 4, 6, 8, 20)] == [0.25, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert TrafficRouting("all-at-once").weight(0) == 1.0


def test_an_alias_with_a_ten_percent_version_sends_exactly_every_tenth_invocation_to_it() -> None:
    router = WeightedAliases()
    routing = {"AdditionalVersionWeights": {"2": 0.1}}
    picked = [router.pick("fn", "live", "1", routing) for _ in range(100)]
    assert picked.count("2") == 10
    assert picked[9] == "2"
    assert picked[:9] == ["1"] * 9
    assert router.pick("other", "live", "4", {}) == "4"  # no routing: the primary version


def test_a_step_function_alias_splits_runs_by_weight() -> None:
    split = AliasSplit()
    routing = [{"stateMachineVersionArn": "sm:1", "weight": 80}, {"stateMachineVersionArn": "sm:2", "weight": 20}]
    picked = [split.pick("sm:live", routing) for _ in range(50)]
    assert picked.count("sm:2") == 10


def _alarm(kind: str, threshold: float) -> dict[str, Any]:
    def stat(name: str, statistic: str) -> dict[str, Any]:
        return {
            "Id": name.lower(),
            "MetricStat": {"Metric": {"MetricName": name}, "Stat": statistic},
            "ReturnData": False,
        }

    metrics = (
        [stat("Errors", "Sum"), stat("Invocations", "Sum")] if kind == "errors" else [stat("Duration", "PR(:1500)")]
    )
    return {
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": threshold,
        "Metrics": [{"Id": "expr_1", "Expression": "...", "ReturnData": True}, *metrics],
    }


def test_an_error_ratio_alarm_fires_on_the_versions_errors_only_above_its_threshold() -> None:
    alarm = LocalAlarm.from_properties("errors-5m", _alarm("errors", 0.0144))
    healthy = VersionStats([(False, 5.0)] * 100)
    one_in_a_hundred = VersionStats([(True, 5.0)] + [(False, 5.0)] * 99)
    failing = VersionStats([(True, 5.0)] * 3 + [(False, 5.0)] * 7)
    assert not alarm.evaluate(healthy).firing
    assert not alarm.evaluate(one_in_a_hundred).firing
    state = alarm.evaluate(failing)
    assert state.firing
    assert state.value == pytest.approx(0.3)
    assert "errors-5m" in state.reason()
    assert "0.0144" in state.reason()
    assert not alarm.evaluate(VersionStats()).firing  # missing data is not breaching


def test_a_slow_ratio_alarm_fires_when_too_many_invocations_exceed_the_p95() -> None:
    alarm = LocalAlarm.from_properties("latency-5m", _alarm("slow", 0.72))
    assert alarm.limit_ms == 1500
    assert not alarm.evaluate(VersionStats([(False, 2000.0)] * 7 + [(False, 10.0)] * 3)).firing
    assert alarm.evaluate(VersionStats([(False, 2000.0)] * 8 + [(False, 10.0)] * 2)).firing


def test_an_alarm_on_one_executed_version_is_known_as_such() -> None:
    whole = _alarm("errors", 0.0144)
    versioned = _alarm("errors", 0.0144)
    for query in versioned["Metrics"][1:]:
        query["MetricStat"]["Metric"]["Dimensions"] = [
            {"Name": "FunctionName", "Value": "fn"},
            {"Name": "ExecutedVersion", "Value": "7"},
        ]
    assert not LocalAlarm.from_properties("whole", whole).per_version
    assert LocalAlarm.from_properties("canary", versioned).per_version


def test_an_alarm_the_plane_cannot_evaluate_is_refused_by_name() -> None:
    props = _alarm("errors", 1)
    props["Metrics"][1]["MetricStat"]["Metric"]["MetricName"] = "Throttles"
    with pytest.raises(UnsupportedAlarm, match=r"alarm odd-one.*Throttles"):
        LocalAlarm.from_properties("odd-one", props)
    with pytest.raises(UnsupportedAlarm, match="threshold alarms only"):
        LocalAlarm.from_properties("anomaly", {"ComparisonOperator": "LessThanLowerThreshold", "Metrics": []})


def test_a_fault_can_target_one_published_version() -> None:
    plan = FaultPlan.parse(["evidence-verifier@2=ModelError"])
    assert plan.key_for("evidence-verifier", "2") == "evidence-verifier@2"
    assert plan.key_for("evidence-verifier", "1") == "evidence-verifier"
    with pytest.raises(FaultSpecError):
        FaultPlan.parse(["evidence-verifier@0=ModelError"])
    assert FaultPlan.parse_error("ModelError:0.5") == Fault(error="ModelError", rate=0.5)
    with pytest.raises(FaultSpecError, match="rate must be in"):
        FaultPlan.parse_error("ModelError:2")
