"""Health-aware dispatch on the local plane: a sick primary is routed around, and says so; recovery closes it.

Faults are injected into the primary's function (and then its approximate handler) while the plane runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from contracts.registry import Circuit
from functions.runtime.registry import DynamoRegistry
from infra.cli import main as agentplane
from infra.client import finished, request
from infra.local.faults import Fault
from infra.local.plane import LocalPlane, PlaneOptions
from tests.e2e.test_approvals import decide, waiting_approval
from tests.sample_events import load_event

pytestmark = pytest.mark.e2e

RUN = "/v1/workflows/doc-review/executions"
PRIMARY = "evidence-verifier"
APPROXIMATE = "evidence-verifier~approximate"


LLM = "fact-checker-llm"
# These tests follow the heuristic verifier's own chain (primary, approximate, person): the LLM fact-checker, which
# ranks first when healthy, is out of rotation, its circuit held open (tests/e2e/test_llm_agent.py covers it).
OUT_OF_ROTATION = Circuit(state="open", opened_at=datetime.now(UTC) + timedelta(days=1), reason="held open by the test")


@pytest.fixture(scope="module")
def plane(plane_options: Callable[..., PlaneOptions]) -> Iterator[LocalPlane]:
    with LocalPlane(plane_options(schedule_scale=0)) as running:
        registry(running).set_circuit(LLM, OUT_OF_ROTATION)
        yield running


@pytest.fixture(autouse=True)
def healthy(plane: LocalPlane) -> Iterator[None]:
    yield
    plane.options.faults.faults.clear()
    registry(plane).set_circuit(PRIMARY, Circuit())
    registry(plane).set_circuit(APPROXIMATE, Circuit())


def registry(plane: LocalPlane) -> DynamoRegistry:
    name = plane.physical("RegistryTable", "AWS::DynamoDB::Table")
    return DynamoRegistry(boto3.resource("dynamodb").Table(name), cache_s=0)


def run_doc_review(plane: LocalPlane, *, approve: str | None = None, enriched: bool = False) -> dict[str, Any]:
    answer = request(plane.url, "POST", RUN, load_event("doc-review-request.json"), persona="submitter")
    assert answer.status == 202, answer.body
    return finished(plane.url, answer.body["execution_id"], approve=approve, enriched=enriched)


def verify_steps(run: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in run["steps"] if s["step"].startswith("VerifyClaim/")]


def implementations(plane: LocalPlane) -> dict[str, dict[str, Any]]:
    listing = request(plane.url, "GET", "/v1/capabilities", persona="auditor").body["capabilities"]
    return {i["implementation"]: i for c in listing for i in c["implementations"]}


def test_the_registry_lists_every_implementation_from_deploy(plane: LocalPlane) -> None:
    found = implementations(plane)

    assert {PRIMARY, APPROXIMATE, "risk-scorer", "document-intake", "decision-recorder"} <= set(found)
    assert found[APPROXIMATE]["variant"] == "approximate"
    assert found[PRIMARY]["circuit"]["state"] == "closed"


def test_a_healthy_run_goes_to_the_primary(plane: LocalPlane) -> None:
    run = run_doc_review(plane, approve="approve")

    routes = [s["route"] for s in verify_steps(run)]
    assert len(routes) == 10
    assert {r["chosen"] for r in routes} == {PRIMARY}
    assert all(r["tried"] == [] for r in routes)


def test_a_failing_primary_is_routed_around_and_the_ledger_says_so(plane: LocalPlane) -> None:
    plane.options.faults.faults[PRIMARY] = Fault("ModelError")

    run = run_doc_review(plane, enriched=True, approve="approve")  # degraded evidence waits for a person
    assert request(plane.url, "POST", "/local/schedules/run").status == 200  # sign a digest now

    assert run["status"] == "SUCCEEDED"
    routes = [s["route"] for s in verify_steps(run)]
    assert {r["chosen"] for r in routes} == {APPROXIMATE}
    assert all(r["reason"] == "fallback: approximate result" for r in routes)
    tried = [t for r in routes for t in r["tried"]]
    skipped = [note for r in routes for note in r["skipped"]]
    assert tried  # the first calls failed on the primary...
    assert all(t["implementation"] == PRIMARY and t["error"].startswith("ModelError") for t in tried)
    assert any(note.startswith(f"{PRIMARY}: circuit open") for note in skipped)  # ...then it opened and was skipped
    assert implementations(plane)[PRIMARY]["circuit"]["state"] == "open"
    lineage = request(plane.url, "GET", f"/v1/audit/traces/{run['trace_id']}", persona="auditor").body
    assert lineage["verified"] is True
    actors = {s["actor"] for s in lineage["steps"] if s["step"].startswith("VerifyClaim/")}
    assert actors == {f"agent:{APPROXIMATE}"}
    chained = [s["route"] for s in lineage["steps"] if s["step"].startswith("VerifyClaim/")]
    assert {r["chosen"] for r in chained} == {APPROXIMATE}  # the choice and its reason are in the ledger


def test_a_decision_on_degraded_evidence_waits_for_a_person_and_says_what_was_degraded(plane: LocalPlane) -> None:
    # GIVEN the full verifier fails: every claim falls back to the approximate handler (not-enough-info, which on its
    # own scores this memo medium and accepts it with notes, missing its refuted claim)
    plane.options.faults.faults[PRIMARY] = Fault("ModelError")
    answer = request(plane.url, "POST", RUN, load_event("doc-review-request.json"), persona="submitter")
    assert answer.status == 202, answer.body
    run_id = answer.body["execution_id"]

    # WHEN the run is followed
    approval = waiting_approval(plane, run_id)

    # THEN it waits at the approval gate, the person seeing why: degraded steps raised it to high
    risk = approval["subject"]["risk"]
    assert risk["level"] == "high"
    assert any("degraded or fallback implementation" in reason for reason in risk["reasons"])
    assert decide(plane, approval, "approve").status == 200
    run = finished(plane.url, run_id)
    # AND the decision record names every degraded verdict and the implementation that gave it
    assert run["status"] == "SUCCEEDED"
    assert run["decision"]["approval"]["decision"] == "approve"
    degraded = run["decision"]["degraded"]
    assert len(degraded) == 10
    assert all(f"{APPROXIMATE} (fallback: approximate result)" in note for note in degraded)
    assert {v["degraded"] is not None for v in run["output"]["verdicts"]} == {True}
    recorded = next(s for s in run["steps"] if s["step"] == "RecordDecision")
    assert recorded["status"] == "SUCCEEDED"


def test_recovery_closes_the_circuit(plane: LocalPlane) -> None:
    # GIVEN the primary is healthy again, and its circuit opened long enough ago for the cool-down to be over
    opened = Circuit(
        state="open",
        consecutive_failures=3,
        recent="FFF",
        opened_at=datetime.now(UTC) - timedelta(minutes=5),
        reason="3 consecutive failures",
    )
    registry(plane).set_circuit(PRIMARY, opened)
    # A dispatcher instance reads the registry at most every 5 s: a view from before the override (circuit
    # closed) would send the next claims to the primary as healthy, not as a trial. New instances read it afresh.
    plane.lambdas.recycle(plane.physical("RegistryDispatcher", "AWS::Lambda::Function"))

    # WHEN runs come in
    trial = None
    deadline = time.monotonic() + 300
    while trial is None and time.monotonic() < deadline:
        run = run_doc_review(plane, approve="approve")
        trial = next((s for s in verify_steps(run) if s["route"]["reason"] == "circuit half-open: trial request"), None)

    # THEN a trial request went to the primary, succeeded, and closed the circuit
    assert trial is not None, "no trial request reached the primary"
    assert trial["route"]["chosen"] == PRIMARY
    assert implementations(plane)[PRIMARY]["circuit"]["state"] == "closed"


def test_when_no_implementation_can_check_a_claim_a_person_decides(plane: LocalPlane) -> None:
    plane.options.faults.faults[PRIMARY] = Fault("ModelError")
    plane.options.faults.faults[APPROXIMATE] = Fault("ModelError")

    run = run_doc_review(plane, approve="approve")

    escalations = [s for s in verify_steps(run) if s["status"] == "ESCALATED"]
    assert len(escalations) == 10
    assert {s["actor"] for s in escalations} == {"system:dispatcher"}
    assert {s["route"]["chosen"] for s in escalations} == {"human"}
    assert run["output"]["risk"]["level"] == "high"
    assert all(v["escalated"] for v in run["output"]["verdicts"])
    assert run["decision"]["approval"]["decision"] == "approve"  # the approval gate was the person


def test_the_cli_lists_the_registry(plane: LocalPlane, capsys: pytest.CaptureFixture[str]) -> None:
    assert agentplane(["capabilities", "--api-url", plane.url]) == 0

    rows = {line.split()[1]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows[APPROXIMATE][0] == "fact-check,confidence-scoring"
    assert rows[PRIMARY][-1] == "closed"
