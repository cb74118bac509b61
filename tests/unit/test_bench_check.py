"""`make bench-check`: a missing report or figure is "not measured", told apart from a missed target."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from infra.paths import REPO_ROOT

pytestmark = pytest.mark.unit


def load_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_check", REPO_ROOT / "bench" / "check.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write(results: Path, name: str, report: dict[str, object]) -> None:
    results.mkdir(exist_ok=True)
    (results / f"{name}-20261202T000000Z.json").write_text(json.dumps(report))


def test_no_reports_at_all_are_not_measured_not_missed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check = load_check()
    assert check.main(["--results", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert out.count("NO REPORT") == len(check.CHECKS)
    assert "MISS" not in out
    assert f"0 target(s) met, 0 missed, {len(check.CHECKS)} not measured" in out


def test_a_report_older_than_a_figure_is_not_measured_and_a_missed_target_still_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    check = load_check()
    # GIVEN a ledger report from before verify was timed with the reading, and a proof that misses
    write(tmp_path, "ledger", {"verify_entries_per_s": 60_000, "proof": {"verify_ms_p50": 2.0}})

    # WHEN checked
    assert check.main(["--results", str(tmp_path)]) == 1

    # THEN the old figure is not taken for the new one, and the miss is a miss
    out = capsys.readouterr().out
    assert "NO FIGURE  ledger verify including reading the export" in out
    assert "MISS       inclusion proof verify at 10^6 leaves, ms: 2" in out
    assert f"0 target(s) met, 1 missed, {len(check.CHECKS) - 1} not measured" in out


def test_local_plane_targets_are_read_from_their_phases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check = load_check()
    # GIVEN a local-plane report with 1 and 4 submitters (no 8), both claim counts, and 300 runs stored
    write(
        tmp_path,
        "local-plane",
        {
            "runs_per_s": 12.0,
            "concurrency": [{"submitters": 1, "runs_per_s": 5.0}, {"submitters": 4, "runs_per_s": 9.0}],
            "claims_latency": [{"claims": 10, "latency_ms_p50": 100.0}, {"claims": 100, "latency_ms_p50": 1200.0}],
            "after_stored": {"runs_held_before": 300},
            "cpu_per_run_after_stored_vs_fresh": 1.01,
        },
    )

    # WHEN checked
    assert check.main(["--results", str(tmp_path)]) == 1
    out = capsys.readouterr().out

    # THEN each figure comes from its own phase: a ratio that meets, one that misses, and what was not measured
    assert "ok         local plane doc-review runs/s, sequential: 12" in out
    assert "ok         local plane runs/s with 4 submitters / with 1: 1.8" in out
    assert "MISS       local plane 100-claim latency / 10-claim latency: 12" in out
    assert "NO FIGURE  local plane doc-review runs/s with 8 concurrent submitters" in out
    assert "NO FIGURE  local plane CPU per run after 500 stored runs / fresh" in out  # 300 stored is not 500
