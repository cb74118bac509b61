"""Chaos scenarios on the local plane: each shipped scenario's faults, and what the plane must do about them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from infra.drills.chaos import ScenarioReport, load_scenarios, run_scenario
from infra.drills.scenario import Scenario
from infra.local.plane import LocalPlane, PlaneOptions
from infra.paths import REPO_ROOT

pytestmark = pytest.mark.e2e

SCENARIOS = {s.name: s for s in load_scenarios([REPO_ROOT / "chaos" / "scenarios"])}


@pytest.fixture(scope="module")
def plane(plane_options: Callable[..., PlaneOptions]) -> Iterator[LocalPlane]:
    with LocalPlane(plane_options(schedule_scale=0)) as running:
        yield running


@pytest.fixture(scope="module")
def reports(plane: LocalPlane) -> Callable[[str], ScenarioReport]:
    """Each shipped scenario runs once on the module's plane; tests read its report."""
    done: dict[str, ScenarioReport] = {}

    def report(name: str) -> ScenarioReport:
        if name not in done:
            done[name] = run_scenario(plane, SCENARIOS[name], timeout=90)
        return done[name]

    return report


def failed(report: ScenarioReport) -> list[str]:
    return [f"{c.check}: {c.detail}" for c in report.checks if not c.ok]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_plane_survives_each_scenario(reports: Callable[[str], ScenarioReport], name: str) -> None:
    # GIVEN a shipped scenario WHEN its faults are injected under its workload
    report = reports(name)

    # THEN every check holds: no run lost, one execution per key, every decision in a ledger that verifies,
    # and the retries, catches, dead letters and duplicates it declares were seen
    assert report.ok, failed(report)
    conservation = report.conservation
    assert conservation["accepted"] == SCENARIOS[name].workload.submissions
    assert conservation["lost"] == []
    assert conservation["ledger_verified"] is True
    assert conservation["ledger_entries"] == conservation["decision_records"]


def test_transient_errors_are_retried_on_the_failing_step(reports: Callable[[str], ScenarioReport]) -> None:
    report = reports("transient-errors")

    assert report.faults_fired.get("risk-scorer:error", 0) > 0
    assert report.retried_states.get("ScoreRisk", 0) > 0
    # and the injected error stays on its agent: no other step failed with it (on a loaded machine another step
    # may time out and be retried, which is the plane doing its job, not the fault spreading)
    with_fault = {state for state, errors in report.failed_attempts.items() if "Lambda.ServiceException" in errors}
    assert with_fault == {"ScoreRisk"}


def test_a_failing_agent_takes_the_catch_path_on_every_run(reports: Callable[[str], ScenarioReport]) -> None:
    report = reports("agent-down")

    assert report.runs == {"FAILED": 3}
    assert report.caught_runs == 3
    assert report.conservation["finished"] == 3  # each failure recorded as the run's decision


def test_dropped_events_wait_in_the_dlq_and_replay_once(
    plane: LocalPlane, reports: Callable[[str], ScenarioReport]
) -> None:
    report = reports("dropped-events")

    assert report.dead_lettered == 3  # one decision.recorded per run
    assert report.replayed == 3
    assert plane.events.replay_dead_letters() == 0  # the queue is empty once replayed
    enriched = next(c for c in report.checks if c.check == "every decision enriched exactly once")
    assert enriched.ok
    assert enriched.detail == "3/3 runs"


def test_duplicated_deliveries_leave_one_record_each(reports: Callable[[str], ScenarioReport]) -> None:
    report = reports("duplicates")

    assert report.faults_fired["entity-tagger:duplicate-event"] == 3
    assert report.faults_fired["risk-scorer:duplicate-invoke"] == 3
    assert report.conservation["keys_answered_twice"] == []
    assert report.conservation["idempotency_keys"] == 3


def test_endpoint_faults_are_reported_as_not_exercised_without_an_endpoint(
    reports: Callable[[str], ScenarioReport],
) -> None:
    report = reports("endpoint-throttling")

    assert report.notes == ["endpoint summarizer: not invoked by this plane's workflows; its faults did not fire"]


def test_a_declared_retry_that_never_happened_fails_the_scenario(plane: LocalPlane) -> None:
    # GIVEN a scenario that expects a Retry but injects nothing
    quiet = Scenario.model_validate(
        {"name": "no-faults", "workload": {"submissions": 1, "resubmitted": 0}, "expect": {"retried": ["ScoreRisk"]}}
    )

    report = run_scenario(plane, quiet, timeout=90)

    # THEN the scenario fails on that check alone
    assert not report.ok
    assert failed(report) == ["Retry fired on ScoreRisk: "]


def test_a_failing_primary_is_routed_to_its_fallback_on_every_run(reports: Callable[[str], ScenarioReport]) -> None:
    report = reports("primary-down")

    assert report.runs == {"SUCCEEDED": 3}
    assert report.caught_runs == 0
    assert report.fallbacks["evidence-verifier~approximate"] >= 3  # every claim of every run
