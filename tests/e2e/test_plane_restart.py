"""`kill -9` of a served local plane mid-workload, then a plane on the same state dir: the plane-restart drill."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.drills.chaos import load_scenarios
from infra.drills.restart_drill import Restart, RestartScenario, load_restart_scenarios, run_restart_drill
from infra.drills.scenario import Workload
from infra.paths import REPO_ROOT

pytestmark = pytest.mark.e2e


def test_runs_in_flight_at_a_kill_are_resumed_and_conserved(tmp_path: Path) -> None:
    # GIVEN a small workload: one run checkpointed in the ledger, then a low- and a high-risk run (one resubmitted)
    scenario = RestartScenario(
        name="e2e-restart",
        restart=Restart(checkpointed=1, signal="KILL", start_timeout_s=240),
        workload=Workload(submissions=3, resubmitted=1, high_risk_request="doc-review-request.json"),
    )

    # WHEN `agentplane local serve` is killed with -9 right after accepting them, and a plane resumes its dir
    report = run_restart_drill(scenario, tmp_path, timeout=180)

    # THEN nothing accepted was lost or run twice, the ledger extends the pre-kill checkpoint under the same key
    failed = [f"{c.check}: {c.detail}" for c in report.checks if not c.ok]
    assert report.ok, failed
    assert report.conservation["accepted"] == 3
    assert report.conservation["lost"] == []
    assert report.conservation["ledger_entries"] == report.conservation["decision_records"]
    assert report.runs == {"SUCCEEDED": 3}, report.notes  # a resumed step answers its recorded decision


def test_the_shipped_restart_scenario_is_the_drills_not_a_fault_scenarios() -> None:
    scenarios = REPO_ROOT / "chaos" / "scenarios"
    assert [s.name for s in load_restart_scenarios([scenarios])] == ["plane-restart"]
    assert "plane-restart" not in {s.name for s in load_scenarios([scenarios])}
