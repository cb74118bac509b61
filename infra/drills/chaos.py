"""Chaos scenarios on the local plane: inject a scenario's faults, drive its workload, check what the plane did.

A scenario passes when no accepted run is lost, the declared retries and catches show in the runs and their
histories, dead-lettered events replay, duplicated deliveries leave one record each, and the ledger verifies.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.client import call, local_endpoint, submit
from infra.drills.conservation import Submission, check, ledger_detail
from infra.drills.load import drain
from infra.drills.scenario import Scenario
from infra.local.plane import LocalPlane
from infra.paths import REPO_ROOT

EVENTS = REPO_ROOT / "events"


@dataclass
class Outcome:
    check: str
    ok: bool
    detail: str = ""


@dataclass
class ScenarioReport:
    scenario: str
    description: str
    runs: dict[str, int] = field(default_factory=dict)
    quick_checks: dict[str, int] = field(default_factory=dict)
    faults_fired: dict[str, int] = field(default_factory=dict)
    retried_states: dict[str, int] = field(default_factory=dict)
    failed_attempts: dict[str, dict[str, int]] = field(default_factory=dict)  # state -> error -> attempts
    caught_runs: int = 0
    fallbacks: dict[str, int] = field(default_factory=dict)  # implementation dispatch fell back to -> steps
    dead_lettered: int = 0
    replayed: int = 0
    conservation: dict[str, Any] = field(default_factory=dict)
    checks: list[Outcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        body = {k: v for k, v in self.__dict__.items() if k != "checks"}
        return {**body, "checks": [c.__dict__ for c in self.checks], "ok": self.ok}


def _state_of(by_id: dict[int, dict[str, Any]], event: dict[str, Any] | None) -> str | None:
    """The task state an event of its history belongs to: the state entered last before it, walking back."""
    seen = 0
    while event is not None and seen < len(by_id):
        if event["type"] == "TaskStateEntered":
            return str(event["stateEnteredEventDetails"]["name"])
        event = by_id.get(event.get("previousEventId", 0))
        seen += 1
    return None


def retried_states(history: list[dict[str, Any]]) -> Counter[str]:
    """State name -> how many times its task was scheduled again after a failed attempt (its Retry fired)."""
    by_id = {event["id"]: event for event in history}
    scheduled: Counter[str] = Counter()
    entered: Counter[str] = Counter()
    for event in history:
        if event["type"] == "TaskStateEntered":
            entered[event["stateEnteredEventDetails"]["name"]] += 1
        elif event["type"] == "LambdaFunctionScheduled":
            name = _state_of(by_id, event)
            if name is not None:
                scheduled[name] += 1
    return Counter({name: scheduled[name] - entered[name] for name in scheduled if scheduled[name] > entered[name]})


# A Lambda task's failed attempt, and where its history event keeps the error.
_FAILED_ATTEMPTS = {
    "LambdaFunctionFailed": "lambdaFunctionFailedEventDetails",
    "LambdaFunctionTimedOut": "lambdaFunctionTimedOutEventDetails",
    "LambdaFunctionStartFailed": "lambdaFunctionStartFailedEventDetails",
    "LambdaFunctionScheduleFailed": "lambdaFunctionScheduleFailedEventDetails",
}


def failed_attempts(history: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    """State name -> the errors its task's attempts failed with (what each Retry, or the Catch, answered)."""
    by_id = {event["id"]: event for event in history}
    failures: dict[str, Counter[str]] = {}
    for event in history:
        details = _FAILED_ATTEMPTS.get(event["type"])
        name = _state_of(by_id, event) if details else None
        if details and name is not None:
            error = str(event.get(details, {}).get("error", "unknown"))
            failures.setdefault(name, Counter())[error] += 1
    return failures


class Driver:
    """Drives one scenario's workload over signed HTTP, as the submitter and approver personas would."""

    def __init__(self, plane: LocalPlane, *, timeout: float = 120.0) -> None:
        self.plane = plane
        self.timeout = timeout
        self.submitter = local_endpoint(plane.url, plane.state_dir, "submitter")
        self.approver = local_endpoint(plane.url, plane.state_dir, "approver")

    def submit(self, body: bytes, key: str) -> str | None:
        # At capacity (admission control) the driver waits its turn, as a client would: each run is then admitted
        # when the plane can finish it, which is what the scenario's faults are measured against.
        answer = submit(self.submitter, "doc-review", body, {"Idempotency-Key": key}, patience=self.timeout)
        return str(answer.body["execution_id"]) if answer.status == 202 else None

    def quick_check(self, claim: str) -> int:
        body = json.dumps({"claim": claim}).encode()
        return call(self.submitter, "POST", "/v1/workflows/quick-check/invoke", body).status

    def wait_all(self, execution_ids: set[str]) -> dict[str, dict[str, Any]]:
        """Each run once it has ended (approving what waits for a person), or as it stood at the deadline."""
        return drain(self.submitter, self.approver, execution_ids, timeout=self.timeout, reason="chaos: reviewed")


def run_scenario(plane: LocalPlane, scenario: Scenario, *, timeout: float = 120.0) -> ScenarioReport:
    started = time.monotonic()
    report = ScenarioReport(scenario.name, scenario.description)
    driver = Driver(plane, timeout=timeout)
    workload = scenario.workload
    bodies = [(EVENTS / workload.request).read_bytes()]
    if workload.high_risk_request:
        bodies.append((EVENTS / workload.high_risk_request).read_bytes())
    dead_before, replayed_before = plane.events.stats.dead_lettered, plane.events.stats.replayed

    plane.options.faults.use(scenario.plan())
    try:
        submissions: list[Submission] = []
        for i in range(workload.submissions):
            key = f"{scenario.name}-{uuid.uuid4().hex[:12]}-{i}"
            body = bodies[i % len(bodies)]
            submission = Submission(key)
            for _ in range(2 if i < workload.resubmitted else 1):  # a client retrying with the same key
                execution_id = driver.submit(body, key)
                if execution_id is not None:
                    submission.execution_ids.add(execution_id)
            submissions.append(submission)
        quick = Counter(driver.quick_check(f"Northwind Analytics claim {i}.") for i in range(workload.quick_checks))
        report.quick_checks = {str(status): n for status, n in sorted(quick.items())}
        accepted = {eid for s in submissions for eid in s.execution_ids}
        runs = driver.wait_all(accepted)
        plane.settle()
        report.faults_fired = dict(plane.options.faults.observed)
    finally:
        plane.options.faults.clear()  # the fault is fixed; what it parked is replayed below

    report.dead_lettered = plane.events.stats.dead_lettered - dead_before
    plane.settle()
    plane.events.replay_dead_letters()
    plane.settle()
    report.replayed = plane.events.stats.replayed - replayed_before
    runs = driver.wait_all(accepted)  # again: the replayed enrichment shows in the runs' steps

    sfn = plane.client("stepfunctions")
    machine = plane.physical("DocReviewStateMachine", "AWS::StepFunctions::StateMachine")
    retried: Counter[str] = Counter()
    failures: dict[str, Counter[str]] = {}
    for execution_id in accepted:
        arn = machine.replace(":stateMachine:", ":execution:") + f":{execution_id}"
        history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        retried.update(retried_states(history))
        for state, errors in failed_attempts(history).items():
            failures.setdefault(state, Counter()).update(errors)
    report.retried_states = dict(retried)
    report.failed_attempts = {state: dict(errors) for state, errors in sorted(failures.items())}
    report.runs = dict(Counter(run["status"] for run in runs.values()))
    report.caught_runs = sum(any(s["step"] == "RecordFailure" for s in run["steps"]) for run in runs.values())
    report.fallbacks = dict(
        Counter(
            step["route"]["chosen"]
            for run in runs.values()
            for step in run["steps"]
            if step.get("route", {}).get("reason", "").startswith("fallback")
        )
    )

    conservation = check(plane, submissions)
    report.conservation = conservation.as_dict()
    report.checks = _verdicts(scenario, report, runs, conservation.ok)
    for endpoint in scenario.endpoints:
        if not any(kind.startswith(f"{endpoint}:") for kind in report.faults_fired):
            report.notes.append(f"endpoint {endpoint}: not invoked by this plane's workflows; its faults did not fire")
    report.seconds = round(time.monotonic() - started, 2)
    return report


def _verdicts(
    scenario: Scenario, report: ScenarioReport, runs: dict[str, dict[str, Any]], conserved: bool
) -> list[Outcome]:
    expect = scenario.expect
    c = report.conservation
    checks = [
        Outcome("no run lost", not c["lost"] and c["settled"], f"lost {c['lost']}" if c["lost"] else ""),
        Outcome(
            "one execution per idempotency key",
            not c["keys_answered_twice"] and not c["keys_stored_twice"],
            f"{c['idempotency_keys']} keys",
        ),
        Outcome(
            "ledger entries = decision records",
            c["ledger_entries"] == c["decision_records"] and not c["decisions_not_in_ledger"],
            ledger_detail(c),
        ),
        Outcome("ledger verifies", c["ledger_verified"], c["ledger_problem"] or ""),
        Outcome(
            "outcomes as declared",
            all(run["status"] in expect.outcomes or run["status"] == "RUNNING" for run in runs.values()),
            json.dumps(report.runs),
        ),
    ]
    checks.extend(
        Outcome(f"Retry fired on {state}", report.retried_states.get(state, 0) > 0) for state in expect.retried
    )
    checks.extend(
        Outcome(f"fell back to {name}", report.fallbacks.get(name, 0) > 0, f"{report.fallbacks.get(name, 0)} steps")
        for name in expect.fell_back
    )
    if expect.caught:
        checks.append(Outcome("Catch recorded the failure", report.caught_runs > 0, f"{report.caught_runs} runs"))
    if expect.dead_lettered:
        checks.append(
            Outcome(
                "dropped events dead-lettered and replayed",
                report.dead_lettered > 0 and report.replayed >= report.dead_lettered,
                f"{report.dead_lettered} dead-lettered, {report.replayed} replayed",
            )
        )
    succeeded = [run for run in runs.values() if run["status"] == "SUCCEEDED"]
    enriched = [sum(s["agent"] == "entity-tagger" for s in run["steps"]) for run in succeeded]
    checks.append(
        Outcome(
            "every decision enriched exactly once",
            all(n == 1 for n in enriched),
            f"{sum(n == 1 for n in enriched)}/{len(enriched)} runs",
        )
    )
    if expect.duplicates_absorbed:
        fired = sum(n for kind, n in report.faults_fired.items() if ":duplicate" in kind)
        checks.append(Outcome("duplicates absorbed", fired > 0 and conserved, f"{fired} duplicated deliveries"))
    return checks


def load_scenarios(paths: list[Path]) -> list[Scenario]:
    from infra.drills.restart_drill import is_restart_scenario  # its drill runs them (bench/chaos.py)

    files = sorted(p for path in paths for p in ([path] if path.is_file() else path.glob("*.yaml")))
    return [Scenario.load(p) for p in files if not is_restart_scenario(p)]
