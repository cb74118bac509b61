"""Chaos scenario files and the fault plan they become: what each fault does, and what a bad file is told."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.drills.chaos import failed_attempts, load_scenarios, retried_states
from infra.drills.conservation import Conservation, ledger_detail
from infra.drills.scenario import Scenario
from infra.local.faults import (
    MALFORMED_OUTPUT,
    THROTTLE_ERROR,
    TIMEOUT_ERROR,
    EndpointFault,
    Fault,
    FaultPlan,
    FaultSpecError,
)
from infra.paths import REPO_ROOT

pytestmark = pytest.mark.unit

SCENARIOS = REPO_ROOT / "chaos" / "scenarios"


def test_every_shipped_scenario_loads_and_declares_what_it_expects() -> None:
    scenarios = load_scenarios([SCENARIOS])

    names = {s.name for s in scenarios}
    assert {"transient-errors", "agent-down", "dropped-events", "duplicates", "endpoint-throttling"} <= names
    by_name = {s.name: s for s in scenarios}
    assert by_name["transient-errors"].expect.retried == ["ScoreRisk"]
    assert by_name["dropped-events"].agents["entity-tagger"].drop_rate == 1.0
    assert by_name["endpoint-throttling"].endpoints["summarizer"].throttle_rate == 0.3


@pytest.mark.parametrize(
    ("text", "says"),
    [
        pytest.param("name: x\nagents: {risk-scorer: {error_rate: 2}}\n", "agents.risk-scorer.error_rate", id="rate"),
        pytest.param("name: x\nagents: {risk-scorer: {jitter: 1}}\n", "agents.risk-scorer.jitter", id="unknown"),
        pytest.param("name: Bad Name\n", "name", id="name"),
        pytest.param("name: x\nexpect: {outcomes: [LOST]}\n", "expect.outcomes.0", id="outcome"),
        pytest.param("name: [x\n", "is not YAML", id="yaml"),
    ],
)
def test_a_bad_scenario_is_refused_naming_the_field(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)

    with pytest.raises(FaultSpecError) as raised:
        Scenario.load(path)

    assert str(raised.value).startswith(f"scenario {path}")
    assert says in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_scenario_becomes_the_plan_the_plane_asks() -> None:
    scenario = Scenario.model_validate(
        {
            "name": "mix",
            "seed": 3,
            "agents": {"risk-scorer": {"error": "Lambda.ServiceException", "error_rate": 0.5, "latency_ms": 2}},
            "endpoints": {"summarizer": {"throttle_rate": 1.0}},
        }
    )

    plan = scenario.plan()

    assert plan.seed == 3
    assert plan.faults["risk-scorer"] == Fault(error="Lambda.ServiceException", rate=0.5, latency_ms=2)
    assert plan.endpoints["summarizer"] == EndpointFault(throttle_rate=1.0)


def raised_by(plan: FaultPlan, agent: str) -> str:
    with pytest.raises(Exception) as raised:  # noqa: PT011 - injected errors are classes named at run time
        plan.before_invoke(agent)
    return type(raised.value).__name__


def test_timeouts_errors_and_throttling_raise_what_aws_reports() -> None:
    plan = FaultPlan(
        faults={"slow": Fault(timeout_rate=1.0), "broken": Fault(error="ModelError")},
        endpoints={"summarizer": EndpointFault(throttle_rate=1.0)},
    )

    assert raised_by(plan, "slow") == TIMEOUT_ERROR
    assert raised_by(plan, "broken") == "ModelError"
    with pytest.raises(Exception) as throttled:  # noqa: PT011
        plan.before_endpoint("summarizer")
    assert type(throttled.value).__name__ == THROTTLE_ERROR
    assert plan.injected == {"broken": 1}
    assert plan.observed == {"slow:timeout": 1, "broken:error": 1, "summarizer:throttle": 1}
    plan.before_invoke("healthy")  # no fault declared: nothing happens
    plan.before_endpoint("other")


def test_malformed_output_replaces_the_answer_and_delivery_faults_are_counted() -> None:
    plan = FaultPlan(faults={"verifier": Fault(malformed_rate=1.0), "tagger": Fault(drop_rate=1.0, duplicate_rate=1.0)})

    assert plan.after_invoke("verifier", {"label": "supported"}) == MALFORMED_OUTPUT
    assert plan.after_invoke("tagger", {"ok": True}) == {"ok": True}
    assert plan.drops_event("tagger")
    assert plan.event_copies("tagger") == 2
    assert plan.invocations("tagger") == 2
    assert plan.invocations("verifier") == 1
    assert not plan.drops_event("verifier")


def test_a_plan_is_swapped_and_cleared_in_place() -> None:
    # GIVEN the plan object the plane's parts hold
    held = FaultPlan.parse(["risk-scorer=ModelError"])
    raised_by(held, "risk-scorer")

    # WHEN a scenario's plan is put in its place, then cleared
    held.use(FaultPlan(faults={"evidence-verifier": Fault(error="Boom")}, seed=1))
    assert set(held.faults) == {"evidence-verifier"}
    assert held.injected == {}
    held.clear()

    # THEN the same object injects nothing any more
    held.before_invoke("evidence-verifier")
    assert held.faults == {}


def test_fault_rates_follow_the_seed() -> None:
    def schedule(seed: int) -> list[bool]:
        plan = FaultPlan(faults={"a": Fault(drop_rate=0.5)}, seed=seed)
        return [plan.drops_event("a") for _ in range(40)]

    assert schedule(11) == schedule(11)
    assert 5 < sum(schedule(11)) < 35


def history(*events: tuple[str, int, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"type": kind, "id": i + 1, "previousEventId": prev, **extra} for i, (kind, prev, extra) in enumerate(events)
    ]


def entered(name: str) -> dict[str, Any]:
    return {"stateEnteredEventDetails": {"name": name}}


def test_a_retry_shows_as_a_task_scheduled_again_in_the_history() -> None:
    events = history(
        ("TaskStateEntered", 0, entered("Intake")),  # 1
        ("LambdaFunctionScheduled", 1, {}),  # 2
        ("LambdaFunctionSucceeded", 2, {}),  # 3
        ("TaskStateEntered", 3, entered("ScoreRisk")),  # 4
        ("LambdaFunctionScheduled", 4, {}),  # 5
        ("LambdaFunctionFailed", 5, {}),  # 6
        ("LambdaFunctionScheduled", 6, {}),  # 7: the Retry
        ("LambdaFunctionFailed", 7, {}),  # 8
        ("LambdaFunctionScheduled", 8, {}),  # 9: and again
        ("LambdaFunctionSucceeded", 9, {}),  # 10
    )

    assert retried_states(events) == {"ScoreRisk": 2}
    assert retried_states(events[:4]) == {}


def test_each_failed_attempt_is_counted_under_its_state_and_error() -> None:
    def failed(error: str) -> dict[str, Any]:
        return {"lambdaFunctionFailedEventDetails": {"error": error, "cause": "..."}}

    events = history(
        ("TaskStateEntered", 0, entered("ScoreRisk")),  # 1
        ("LambdaFunctionScheduled", 1, {}),  # 2
        ("LambdaFunctionFailed", 2, failed("Lambda.ServiceException")),  # 3
        ("LambdaFunctionScheduled", 3, {}),  # 4: the Retry
        ("LambdaFunctionTimedOut", 4, {"lambdaFunctionTimedOutEventDetails": {"error": "States.Timeout"}}),  # 5
        ("LambdaFunctionScheduled", 5, {}),  # 6: and again
        ("LambdaFunctionFailed", 6, failed("Lambda.ServiceException")),  # 7: caught
        ("TaskStateEntered", 7, entered("RecordFailure")),  # 8
        ("LambdaFunctionScheduled", 8, {}),  # 9
        ("LambdaFunctionSucceeded", 9, {}),  # 10
    )

    assert failed_attempts(events) == {"ScoreRisk": {"Lambda.ServiceException": 2, "States.Timeout": 1}}
    assert failed_attempts(events[:2]) == {}


def test_a_ledger_gap_names_the_missing_records_and_the_appenders_failed_batches() -> None:
    # GIVEN conservation figures with the ledger whole, and with records missing and a batch given up on
    whole = Conservation(decision_records=3, ledger_entries=3).as_dict()
    missing = [f"run-{n}/Step" for n in range(7)]
    gap = Conservation(
        decision_records=10, ledger_entries=3, decisions_not_in_ledger=missing, appender_failed_batches=2
    ).as_dict()

    # THEN the whole one gives the counts alone; the gap names five of the missing records and the queue
    assert ledger_detail(whole) == "3 entries, 3 records"
    assert ledger_detail(gap) == (
        "3 entries, 10 records; not in the ledger: run-0/Step, run-1/Step, run-2/Step, run-3/Step, run-4/Step; "
        "2 batches in the appender's on-failure queue"
    )
