"""Canary rollouts on the local plane: an agent's new version takes a slice of traffic, then all of it, or is
rolled back when its deployment group's SLO alarm fires. Workflows run through their own ``live`` alias.

The rollouts' clock is driven by hand (a deployment minute is one tick of it), so every step is exact.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from contracts.loader import load_contracts
from infra.cli import main as agentplane
from infra.client import finished, request
from infra.local.agent_run import step_event
from infra.local.plane import LocalPlane, PlaneOptions
from tests.sample_events import load_event

pytestmark = pytest.mark.e2e

ROLLOUTS = "/v1/rollouts"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def plane(clock: Clock, plane_options: Callable[..., PlaneOptions]) -> Iterator[LocalPlane]:
    options = plane_options(
        schedule_scale=0,
        rollout_clock=clock,
        rollout_minute_s=60.0,
        rollout_tick_s=0,  # moved by the tests' tick(), never by a timer
    )
    with LocalPlane(options) as running:
        yield running


@pytest.fixture(autouse=True)
def no_faults(plane: LocalPlane) -> Iterator[None]:
    yield
    plane.options.faults.faults.clear()


def tick(plane: LocalPlane, clock: Clock, *, minutes: float = 0.0) -> None:
    clock.now += minutes * 60.0
    assert plane.deployments is not None
    plane.deployments.tick()


def rollouts(plane: LocalPlane) -> dict[str, dict[str, Any]]:
    answer = request(plane.url, "GET", ROLLOUTS, persona="auditor")
    assert answer.status == 200, answer.body
    return {entry["agent"]: entry for entry in answer.body["agents"]} | {
        f"workflow:{entry['workflow']}": entry for entry in answer.body["workflows"]
    }


def start(plane: LocalPlane, agent: str, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    code = agentplane(["rollout", "start", agent, "--api-url", plane.url, "--json", *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    started: dict[str, Any] = json.loads(out)
    return started


def alias_of(plane: LocalPlane, agent: str) -> str:
    target: str = rollouts(plane)[agent]["alias"]
    return target


def invoke_alias(plane: LocalPlane, agent: str, times: int) -> None:
    """Invocations through the agent's live alias, as a workflow step or the dispatcher makes them."""
    contract = load_contracts()[agent]
    sample = load_event(f"payloads/{contract.io.input}.json")
    alias = alias_of(plane, agent)
    for _ in range(times):
        plane.client("lambda").invoke(FunctionName=alias, Payload=json.dumps(step_event(contract, sample)))


def version_invocations(plane: LocalPlane, agent: str, version: str) -> tuple[int, int]:
    function = alias_of(plane, agent).split(":function:")[1].split(":")[0]
    stats = plane.lambdas.functions[function].versions.get(version)
    return (stats.invocations, stats.errors) if stats else (0, 0)


def test_every_lambda_agent_and_workflow_is_live_through_an_alias_on_one_version(plane: LocalPlane) -> None:
    live = rollouts(plane)

    for agent in ("document-intake", "evidence-verifier", "risk-scorer", "decision-recorder", "entity-tagger"):
        assert live[agent]["alias"].endswith(":live"), live[agent]
        assert live[agent]["versions"] == [{"version": "1", "weight": 1.0}]
        assert live[agent]["deployment_group"], f"{agent} has no deployment group"
        assert live[agent]["deployment"] is None
        assert live[agent]["published_version"] == "1"
    for workflow in ("doc-review", "quick-check"):
        entry = live[f"workflow:{workflow}"]
        assert entry["alias"].endswith(":live")
        assert entry["versions"] == [{"version": "1", "weight": 1.0}]
    # Runs start through the workflow alias and reach the agents through theirs.
    run = request(plane.url, "POST", "/v1/workflows/doc-review/executions", load_event("doc-review-low-risk.json"))
    assert run.status == 202, run.body
    done = finished(plane.url, run.body["execution_id"])
    assert done["status"] == "SUCCEEDED"
    assert version_invocations(plane, "risk-scorer", "1")[0] >= 1
    # AND each agent step records the published version that decided
    steps = {s["step"]: s for s in done["steps"]}
    assert steps["ScoreRisk"]["function_version"] == "1"


def test_a_healthy_canary_takes_its_slice_then_all_traffic(
    plane: LocalPlane, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a rollout of risk-scorer under the default policy: canary 10 % for 5 minutes
    started = start(plane, "risk-scorer", capsys)
    new = started["to_version"]
    assert (started["from_version"], started["status"], started["weight"]) == ("1", "InProgress", 0.1)

    # WHEN traffic flows through the alias
    invoke_alias(plane, "risk-scorer", 20)

    # THEN exactly one invocation in ten runs the new version, and the status says it is shifting
    assert version_invocations(plane, "risk-scorer", new) == (2, 0)
    live = rollouts(plane)["risk-scorer"]
    assert live["published_version"] == new  # the registry knows the version the rollout published
    assert live["versions"] == [{"version": "1", "weight": 0.9}, {"version": new, "weight": 0.1}]
    assert live["shifting"] is True
    assert live["deployment"]["status"] == "InProgress"
    assert (live["deployment"]["from_version"], live["deployment"]["to_version"]) == ("1", new)

    # WHEN the canary interval passes with the alarms quiet
    tick(plane, clock, minutes=4.9)
    assert rollouts(plane)["risk-scorer"]["shifting"] is True
    tick(plane, clock, minutes=0.1)

    # THEN the new version takes everything
    live = rollouts(plane)["risk-scorer"]
    assert live["versions"] == [{"version": new, "weight": 1.0}]
    assert live["deployment"]["status"] == "Succeeded"
    invoke_alias(plane, "risk-scorer", 3)
    assert version_invocations(plane, "risk-scorer", new) == (5, 0)
    # AND a run's decision says which version decided it
    run = request(plane.url, "POST", "/v1/workflows/doc-review/executions", load_event("doc-review-low-risk.json"))
    scored = {s["step"]: s for s in finished(plane.url, run.body["execution_id"])["steps"]}["ScoreRisk"]
    assert scored["function_version"] == new


def test_a_canary_whose_new_version_breaks_its_slo_rolls_back(
    plane: LocalPlane, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a rollout of evidence-verifier whose new version fails every call (an injected fault on it alone)
    started = start(plane, "evidence-verifier", capsys, "--fault", "ModelError")
    new, old = started["to_version"], started["from_version"]

    # WHEN a doc-review run dispatches its ten claims through the alias
    run = request(plane.url, "POST", "/v1/workflows/doc-review/executions", load_event("doc-review-request.json"))
    assert run.status == 202, run.body
    done = finished(plane.url, run.body["execution_id"], approve="approve")
    assert done["status"] == "SUCCEEDED"  # dispatch absorbed the new version's failures
    calls, errors = version_invocations(plane, "evidence-verifier", new)
    assert calls >= 1
    assert errors == calls

    # THEN the next evaluation finds the group's SLO alarm firing on the new version and rolls back
    tick(plane, clock, minutes=1)
    live = rollouts(plane)["evidence-verifier"]
    assert live["versions"] == [{"version": old, "weight": 1.0}]
    assert live["deployment"]["status"] == "Stopped"
    assert live["deployment"]["message"].startswith("rolled back: alarm ")
    assert "CanaryErrors" in live["deployment"]["message"]  # the new version's own errors, first
    assert "error ratio 1 " in live["deployment"]["message"]

    # AND the new version gets no more traffic
    invoke_alias(plane, "evidence-verifier", 10)
    assert version_invocations(plane, "evidence-verifier", new)[0] == calls

    # AND `agentplane rollout status` shows it
    assert agentplane(["rollout", "status", "--api-url", plane.url]) == 0
    shown = capsys.readouterr().out
    line = next(text for text in shown.splitlines() if text.strip().startswith("evidence-verifier "))
    assert f"v{old} 100%" in line
    assert "Stopped" in line
    assert "rolled back" in line


def test_rollouts_refuse_an_unknown_agent_and_a_second_rollout_in_progress(
    plane: LocalPlane, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    assert agentplane(["rollout", "start", "no-such-agent", "--api-url", plane.url]) == 1
    assert "no deployment group for 'no-such-agent'" in capsys.readouterr().err

    assert agentplane(["rollout", "start", "document-intake", "--fault", "no good", "--api-url", plane.url]) == 1
    assert "expected ErrorName[:rate]" in capsys.readouterr().err  # refused before anything is published

    start(plane, "document-intake", capsys)
    assert agentplane(["rollout", "start", "document-intake", "--api-url", plane.url]) == 1
    assert "is still in progress" in capsys.readouterr().err
    tick(plane, clock, minutes=5)
    assert rollouts(plane)["document-intake"]["deployment"]["status"] == "Succeeded"
