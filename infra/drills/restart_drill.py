"""The plane-restart drill: ``kill -9`` the local plane mid-workload, start it again on its state dir, check nothing
accepted was lost, the ledger was not rolled back and its signing key did not change.

The first plane is ``agentplane local serve`` in a process of its own; after the kill a plane in this process takes
the same state dir (``LocalPlane.start`` resumes it) so the conservation check can read its tables.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contracts.validation import first_error
from functions.runtime.ledger import read_export
from infra.cli import main as agentplane
from infra.client import call, expect, fetch_export, local_endpoint
from infra.drills.chaos import EVENTS, Driver, Outcome, ScenarioReport, _verdicts
from infra.drills.conservation import Submission, check
from infra.drills.scenario import Scenario, Workload
from infra.local.faults import FaultSpecError
from infra.local.plane import LocalPlane, PlaneOptions, wait_until
from infra.paths import REPO_ROOT
from infra.synth import ASSET_METADATA, synthesize

RESTART_KEY = "restart"  # a scenario file with this key is a restart drill, not a fault scenario


class Restart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checkpointed: int = Field(default=2, ge=1)  # runs that finish, and are digested and verified, before the kill
    signal: Literal["KILL", "TERM"] = "KILL"  # KILL: no chance to stop; TERM: a graceful stop
    start_timeout_s: float = Field(default=300, gt=0)


class RestartScenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    description: str = ""
    restart: Restart = Field(default_factory=Restart)
    workload: Workload = Field(default_factory=Workload)

    @model_validator(mode="after")
    def _runs_after_the_checkpoint(self) -> RestartScenario:
        if self.workload.submissions <= self.restart.checkpointed:
            raise ValueError(
                "workload.submissions must exceed restart.checkpointed: some runs are in flight at the kill"
            )
        return self

    @classmethod
    def load(cls, path: Path) -> RestartScenario:
        try:
            return cls.model_validate(yaml.safe_load(path.read_text()))
        except (OSError, yaml.YAMLError) as error:
            raise FaultSpecError(f"cannot read restart scenario {path}: {error}") from None
        except ValidationError as error:
            raise FaultSpecError(f"restart scenario {path}: {first_error(error, root='(top level)')}") from None


def is_restart_scenario(path: Path) -> bool:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return False  # the fault scenarios' loader names the problem
    return isinstance(raw, dict) and RESTART_KEY in raw


def load_restart_scenarios(paths: list[Path]) -> list[RestartScenario]:
    files = sorted(p for path in paths for p in ([path] if path.is_file() else path.glob("*.yaml")))
    return [RestartScenario.load(p) for p in files if is_restart_scenario(p)]


@contextlib.contextmanager
def served(
    state_dir: Path, assembly: Path, out: Path, *, fresh: bool, timeout: float
) -> Iterator[subprocess.Popen[bytes]]:
    """``agentplane local serve`` on ``state_dir`` in its own process, until it has written plane.json."""
    command = [sys.executable, "-m", "infra.cli", "local", "serve", "--port", "0", "--state-dir", str(state_dir)]
    command += ["--assembly", str(assembly), *(["--fresh"] if fresh else [])]
    with out.open("ab") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    try:

        def serving() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"the plane exited with {process.returncode}: {out.read_text()[-2000:]}")
            try:
                return bool(json.loads((state_dir / "plane.json").read_text()).get("pid") == process.pid)
            except (OSError, ValueError):
                return False

        if not wait_until(serving, timeout=timeout, interval=0.2):
            raise TimeoutError(f"the plane did not serve within {timeout:.0f} s: {out.read_text()[-2000:]}")
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=60)


def _checkpointed_verify(export_text: str, work: Path, name: str) -> int:
    """``agentplane audit verify`` of an export with the pinned key and the drill's checkpoint file."""
    path = work / f"{name}.jsonl"
    path.write_text(export_text)
    args = ["audit", "verify", str(path), "--public-key", str(work / "pinned.pem"), "--checkpoint"]
    return agentplane([*args, str(work / "checkpoint.json")])


def run_restart_drill(scenario: RestartScenario, work: Path, *, timeout: float = 180.0) -> ScenarioReport:
    """Drive ``scenario`` on a plane in ``work/state``, kill it mid-workload, resume the dir and check it."""
    started = time.monotonic()
    report = ScenarioReport(scenario.name, scenario.description)
    work.mkdir(parents=True, exist_ok=True)
    state_dir, assembly, out = work / "state", work / "cdk.out", work / "serve.out"
    if not (assembly / "manifest.json").is_file():
        synthesize(assembly, ASSET_METADATA)
    workload = scenario.workload
    bodies = [(EVENTS / workload.request).read_bytes()]
    if workload.high_risk_request:
        bodies.append((EVENTS / workload.high_risk_request).read_bytes())
    submissions: list[Submission] = []
    first_wave = scenario.restart.checkpointed

    with served(state_dir, assembly, out, fresh=True, timeout=scenario.restart.start_timeout_s) as process:
        url = json.loads((state_dir / "plane.json").read_text())["url"]
        driver = _RemoteDriver(url, state_dir, timeout=timeout)
        for i in range(workload.submissions):
            if i == first_wave:
                # The first wave ends, is digested, and verified with the key pinned: the checkpoint a witness keeps.
                driver.wait_all({eid for s in submissions for eid in s.execution_ids})
                expect(call(driver.admin, "POST", "/local/schedules/run"), 200)
                before = read_export(io.StringIO(export_text := fetch_export(driver.admin)))
                (work / "pinned.pem").write_text(before.public_key_pem)
                report.notes.append(f"checkpoint before the kill: {before.entry_count} entries")
                verified_before = _checkpointed_verify(export_text, work, "before") == 0
            key = f"{scenario.name}-{uuid.uuid4().hex[:12]}-{i}"
            submission = Submission(key)
            for _ in range(2 if i < workload.resubmitted else 1):
                execution_id = driver.submit(bodies[i % len(bodies)], key)
                if execution_id is not None:
                    submission.execution_ids.add(execution_id)
            submissions.append(submission)
        keys_before = json.loads((state_dir / "credentials.json").read_text())
        os.kill(process.pid, signal.SIGKILL if scenario.restart.signal == "KILL" else signal.SIGTERM)
        process.wait(timeout=60)
        report.notes.append(f"plane {process.pid} stopped by SIG{scenario.restart.signal} with runs in flight")

    accepted = {eid for s in submissions for eid in s.execution_ids}
    options = PlaneOptions(state_dir=state_dir, assembly_dir=assembly, schedule_scale=0)
    with LocalPlane(options) as plane:
        restored = plane.restored
        report.notes.append(restored.line())
        resumed = Driver(plane, timeout=timeout)
        resumed.wait_all(accepted)
        plane.settle()
        runs = resumed.wait_all(accepted)  # again, settled: the enrichment of each decision shows in its steps
        conservation = check(plane, submissions)
        report.conservation = conservation.as_dict()
        admin = local_endpoint(plane.url, plane.state_dir, "admin")
        after = read_export(io.StringIO(export_text := fetch_export(admin)))
        verified_after = _checkpointed_verify(export_text, work, "after") == 0
        keys_after = json.loads((plane.state_dir / "credentials.json").read_text())
    report.runs = dict(Counter(run["status"] for run in runs.values()))
    for execution_id, run in sorted(runs.items()):
        if run["status"] == "FAILED":
            failed_steps = [step["step"] for step in run["steps"] if step["status"] == "FAILED"]
            report.notes.append(f"{execution_id} FAILED: {(run.get('error') or {}).get('error')} at {failed_steps}")
    # The fault scenarios' verdicts (conservation, enrichment once per decision), then the restart's own.
    conserved = Scenario(name=scenario.name, description=scenario.description, workload=workload)
    report.checks = [
        *_verdicts(conserved, report, runs, conservation.ok),
        Outcome("runs were in flight at the kill and resumed", bool(restored.runs_resumed), restored.line()),
        Outcome("pre-kill checkpoint verified with the pinned key", verified_before),
        Outcome("ledger verifies against the pre-kill checkpoint (no rollback)", verified_after),
        Outcome(
            "signing key unchanged",
            (before.key_id, before.public_key_pem) == (after.key_id, after.public_key_pem),
            before.key_id,
        ),
        Outcome("persona keys unchanged", keys_before == keys_after),
        Outcome("every run ended", all(run["status"] != "RUNNING" for run in runs.values()), json.dumps(report.runs)),
    ]
    report.seconds = round(time.monotonic() - started, 2)
    return report


class _RemoteDriver(Driver):
    """The chaos driver for a plane in another process: the same calls, signed with its credentials.json."""

    def __init__(self, url: str, state_dir: Path, *, timeout: float) -> None:
        self.timeout = timeout
        self.submitter = local_endpoint(url, state_dir, "submitter")
        self.approver = local_endpoint(url, state_dir, "approver")
        self.admin = local_endpoint(url, state_dir, "admin")
