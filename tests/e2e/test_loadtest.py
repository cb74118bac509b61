"""A small bounded `make loadtest` run: Locust against a local plane, a surge half-way, then conservation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from infra.paths import REPO_ROOT

pytestmark = pytest.mark.e2e

SUBMIT = "POST /v1/workflows/doc-review/executions"


def test_a_short_surge_run_reports_routes_slos_and_conservation(tmp_path: Path) -> None:
    # GIVEN the load command, bounded: 3 users (one approver), 8 s, the submitters doubled at 4 s
    command = [
        sys.executable,
        str(REPO_ROOT / "bench" / "loadtest.py"),
        "--users=3",
        "--duration=8",
        "--surge",
        f"--out={tmp_path / 'results'}",
        f"--state-dir={tmp_path / 'state'}",
    ]

    # WHEN it runs (its plane and Locust stop with it)
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)

    # THEN it succeeds and writes one report
    assert done.returncode == 0, done.stderr[-2000:]
    [path] = (tmp_path / "results").glob("loadtest-surge-*.json")
    report = json.loads(path.read_text())
    # with every route of the mix measured, and its percentiles in order
    routes = report["routes"]
    assert {SUBMIT, "POST /v1/workflows/quick-check/invoke", "GET /v1/approvals"} <= routes.keys()
    assert all(r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"] for r in routes.values())
    assert report["totals"]["requests"] == sum(r["count"] for r in routes.values())
    # and the surge split in two halves
    assert report["surge"]["at_s"] == 4
    assert report["surge"]["before"]["totals"]["requests"] > 0
    assert report["surge"]["after"]["totals"]["requests"] > 0
    # and a verdict per contract and per route, against targets the report states
    assert "laptop targets" in report["targets"]["statement"]
    contracts = report["slo"]["contracts"]
    assert contracts["document-intake"]["verdict"] in {"met", "missed"}  # every accepted run's first step
    assert all((c["verdict"] in {"met", "missed"}) == (c["steps"] > 0) for c in contracts.values()), contracts
    assert report["slo"]["routes"][SUBMIT]["target_p95_ms"] == 1000
    # and conservation held: every accepted run accounted for, the ledger complete and verified
    conservation = report["conservation"]
    assert conservation["ok"] is True
    assert conservation["accepted"] == report["runs"]["accepted"] > 0
    assert conservation["lost"] == []
    assert conservation["ledger_entries"] == conservation["decision_records"]


def test_a_burst_is_refused_or_finished_never_accepted_and_failed(tmp_path: Path) -> None:
    # GIVEN the burst profile, small: 30 submissions 8 at a time against a plane admitting 1 run per window (the
    # shared test machine may run other planes: one admitted run at a time keeps this about admission alone)
    command = [
        sys.executable,
        str(REPO_ROOT / "bench" / "loadtest.py"),
        "--burst",
        "--submissions=30",
        "--concurrency=8",
        "--max-in-flight=1",
        f"--out={tmp_path / 'results'}",
        f"--state-dir={tmp_path / 'state'}",
    ]

    # WHEN it runs
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)

    # THEN it succeeds and its report accounts for every submission
    assert done.returncode == 0, done.stderr[-2000:]
    [path] = (tmp_path / "results").glob("loadtest-burst-*.json")
    report = json.loads(path.read_text())
    submissions, runs = report["submissions"], report["runs"]
    assert submissions["refused"] + submissions["accepted"] == 30
    assert submissions["other_answers"] == []
    # the burst is beyond the limit: some are refused, each with a time to retry
    assert submissions["refused_by_status"]["503"] > 0
    assert submissions["refused_without_retry_after"] == 0
    # and every accepted run finished with a recorded decision: none failed for the plane's own saturation
    assert runs["failed"] == 0
    assert runs["succeeded"] == submissions["accepted"] > 0
    assert report["conservation"]["ok"] is True
    assert report["conservation"]["lost"] == []
