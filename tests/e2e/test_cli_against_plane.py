"""The CLI against a real local plane process: serve, run, status, stop; and the demo itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.client import request

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "infra.cli"]


def agentplane(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)


def wait_for_plane(state_dir: Path, server: subprocess.Popen[str], timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"local serve exited early: {server.stderr.read() if server.stderr else ''}")
        state = state_dir / "plane.json"
        if state.is_file():
            url: str = json.loads(state.read_text())["url"]
            if request(url, "GET", "/v1/health").status == 200:
                return url
        time.sleep(0.1)
    raise AssertionError("the local plane did not become ready")


def test_serve_run_status_and_stop(tmp_path: Path) -> None:
    # GIVEN `agentplane local serve` on a free port
    server = subprocess.Popen(
        [*CLI, "local", "serve", "--port", "0", "--state-dir", str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        url = wait_for_plane(tmp_path, server)
        assert url.startswith("http://127.0.0.1:")

        # WHEN a run is started and followed with the CLI, which finds the plane through its state dir
        ran = agentplane(
            "run", "doc-review", "--input", "events/doc-review-low-risk.json", "--wait", "--state-dir", str(tmp_path)
        )

        # THEN it prints the steps and the decision
        assert ran.returncode == 0, ran.stderr
        assert "SUCCEEDED" in ran.stdout
        assert "ACCEPT" in ran.stdout
        execution_id = ran.stdout.split()[1]
        status = agentplane("status", execution_id, "--json", "--state-dir", str(tmp_path))
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["decision"]["outcome"] == "accept"
    finally:
        # AND SIGTERM stops the plane cleanly
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert server.returncode == 0
    assert not (tmp_path / "plane.json").exists()


def test_the_demo_completes_a_review(tmp_path: Path) -> None:
    demo = agentplane("demo", "--state-dir", str(tmp_path))

    assert demo.returncode == 0, demo.stderr
    assert "status SUCCEEDED" in demo.stdout
    for step in ("Intake", "VerifyClaim/0", "ScoreRisk", "RecordDecision", "entity-tagging"):
        assert step in demo.stdout
    assert "approval: approved by the approver persona" in demo.stdout
    assert "ACCEPT" in demo.stdout
    assert "decision.recorded handled by entity-tagger" in demo.stdout
    assert "Traceback" not in demo.stderr


def test_the_rollout_demo_rolls_a_failing_canary_back(tmp_path: Path) -> None:
    demo = agentplane("rollout", "demo", "evidence-verifier", "--new-fault", "ModelError", "--state-dir", str(tmp_path))

    assert demo.returncode == 0, demo.stderr
    assert "canary 10% for 5 min, then all, the new version failing with ModelError" in demo.stdout
    assert "Stopped: rolled back: alarm " in demo.stdout
    assert "10% to version 2" in demo.stdout
    assert "Traceback" not in demo.stderr


def test_run_against_no_plane_is_one_clear_line(tmp_path: Path) -> None:
    ran = agentplane(
        "run", "doc-review", "--input", "events/doc-review-request.json", "--api-url", "http://127.0.0.1:9"
    )

    assert ran.returncode == 1
    assert ran.stderr.count("\n") == 1
    assert "cannot reach the plane" in ran.stderr
