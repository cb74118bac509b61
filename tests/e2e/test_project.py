"""A team's project outside this repository, from `new project` to a verified ledger, using only the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from infra.paths import REPO_ROOT

pytestmark = pytest.mark.e2e

CLI = [sys.executable, "-m", "infra.cli"]


def agentplane(cwd: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    # The project's folder is the working directory: nothing of this repository is on its path but the CLI.
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


def until(what: str, probe: Any, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    made = agentplane(tmp_path, "new", "project", "tickets")
    assert made.returncode == 0, made.stderr
    return tmp_path / "tickets"


# single: the plane and the project in one stack; split: the plane's core stack, and the project's own beside it.
LAYOUTS = {"single": "agentplane", "split": "agentplane-tickets"}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_a_project_outside_the_repo_runs_to_a_verified_ledger(project: Path, tmp_path: Path, layout: str) -> None:
    assert not project.resolve().is_relative_to(REPO_ROOT)
    # GIVEN the scaffold: two contracts, a handler package, a JSON Schema payload, a workflow with an approval
    assert sorted(p.name for p in (project / "agents").iterdir()) == ["tickets-resolver.yaml", "tickets-triage.yaml"]
    assert (project / "src" / "tickets_agents" / "schemas" / "ticket.json").is_file()
    checked = agentplane(project, "workflows", "check", "--project", ".")
    assert checked.returncode == 0, checked.stderr
    assert "1 workflow specs valid against 4 contracts" in checked.stdout  # its two and the plane's two recorders

    out = tmp_path / "cdk.out"
    synthesized = agentplane(project, "synth", "--project", ".", "--layout", layout, "--out", str(out))
    assert synthesized.returncode == 0, synthesized.stderr
    template = json.loads((out / f"{LAYOUTS[layout]}.template.json").read_text())
    machines = [r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    assert [m["Metadata"]["agentplane:workflow"] for m in machines] == ["tickets-tickets"]
    checked = agentplane(project, "preflight", "--assembly", str(out), "--project", ".")
    assert "largest sample events/tickets-tickets-" in checked.stdout, checked.stdout + checked.stderr  # its samples
    if layout == "split":  # the plane's own stack holds no agent or workflow of the project's
        core = (out / "agentplane.template.json").read_text()
        assert "tickets" not in core

    # WHEN the plane serves the project, a low-urgency ticket runs through, and an urgent one waits for a person
    state = tmp_path / "state"
    server = subprocess.Popen(
        [
            *CLI,
            "local",
            "serve",
            "--project",
            ".",
            "--layout",
            layout,
            "--port",
            "0",
            "--state-dir",
            str(state),
            "--fresh",
        ],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        until("the plane", lambda: (state / "plane.json").is_file() or server.poll() is not None, timeout=240)
        assert server.poll() is None, server.stderr.read() if server.stderr else ""
        where = ("--state-dir", str(state))
        low = agentplane(
            project, "run", "tickets-tickets", "--input", "events/tickets-tickets-low.json", "--wait", *where
        )
        assert low.returncode == 0, low.stderr
        assert "status SUCCEEDED" in low.stdout
        assert "tickets-triage" in low.stdout
        assert "tickets-resolver" in low.stdout

        started = agentplane(
            project, "run", "tickets-tickets", "--input", "events/tickets-tickets-request.json", *where
        )
        assert started.returncode == 0, started.stderr
        execution = json.loads(started.stdout)["execution_id"]

        def pending() -> list[dict[str, Any]]:
            listed = agentplane(project, "approvals", "list", "--json", *where)
            return [a for a in json.loads(listed.stdout or "[]") if a["execution_id"] == execution]

        [approval] = until("the approval", pending)
        assert approval["subject"]["triage"]["urgency"] == "high"
        approved = agentplane(
            project,
            "approvals",
            "approve",
            approval["approval_id"],
            "--reason",
            "on-call paged",
            "--args-sha256",
            approval["args_sha256"],
            *where,
        )
        assert approved.returncode == 0, approved.stderr

        def finished() -> dict[str, Any] | None:
            shown = json.loads(agentplane(project, "status", execution, "--json", *where).stdout)
            return shown if shown["status"] != "RUNNING" else None

        run = until("the urgent run", finished)
        assert run["status"] == "SUCCEEDED", run
        assert run["output"]["resolution"] == {
            "ticket_id": "T-001",
            "action": "page-on-call",
            "note": "approval: approve",
        }

        # the project's agents are discoverable, with their cards, though the API ships no contract of theirs
        listed = agentplane(project, "capabilities", "--json", *where)
        assert listed.returncode == 0, listed.stderr
        cards = {c["name"]: c for c in json.loads(listed.stdout)["capabilities"]}
        assert {"tickets-triage", "tickets-resolver"} <= cards.keys()
        assert cards["tickets-triage"]["card"]["skills"][0]["id"] == "tickets-triage"
        assert cards["tickets-triage"]["io"]["input"] == "TicketsTicket"

        # THEN every decision is on the ledger, and the ledger verifies against a signed digest
        assert agentplane(project, "audit", "digest", *where).returncode == 0
        verified = agentplane(project, "audit", "verify", *where)
        assert verified.returncode == 0, verified.stderr
        assert "chains, Merkle roots and signatures hold" in verified.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


def test_a_project_with_a_broken_type_is_one_line(project: Path) -> None:
    contract = project / "agents" / "tickets-triage.yaml"
    contract.write_text(contract.read_text().replace("schemas/ticket.json", "schemas/missing.json"))

    synthesized = agentplane(project, "synth", "--project", ".", "--out", str(project / "cdk.out"))

    assert synthesized.returncode == 1
    assert synthesized.stderr.count("\n") == 1
    assert "io.input" in synthesized.stderr
    assert "missing.json: cannot read" in synthesized.stderr
