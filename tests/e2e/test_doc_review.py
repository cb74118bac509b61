"""doc-review end to end on the local plane, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts.workflow import WORKFLOWS_DIR, load_workflow
from infra.client import finished, request
from infra.local.faults import Fault
from infra.local.plane import LocalPlane, PlaneOptions
from tests.sample_events import load_event

pytestmark = pytest.mark.e2e

DOC_REVIEW_FAILURE = load_workflow(WORKFLOWS_DIR / "doc-review.yaml").failure
assert DOC_REVIEW_FAILURE is not None

PROBLEM_JSON = "application/problem+json"


@pytest.fixture(scope="module")
def plane(plane_options: Callable[..., PlaneOptions]) -> Iterator[LocalPlane]:
    with LocalPlane(plane_options()) as running:
        yield running


def executions_started(plane: LocalPlane) -> int:
    machine = plane.physical("DocReviewStateMachine", "AWS::StepFunctions::StateMachine")
    return len(plane.client("stepfunctions").list_executions(stateMachineArn=machine)["executions"])


def start(plane: LocalPlane, body: dict[str, Any], **headers: str) -> str:
    answer = request(plane.url, "POST", "/v1/workflows/doc-review/executions", body, headers)
    assert answer.status == 202, answer.body
    execution_id: str = answer.body["execution_id"]
    return execution_id


def test_health_answers_once_ready(plane: LocalPlane) -> None:
    answer = request(plane.url, "GET", "/v1/health")
    assert answer.status == 200
    assert answer.body["workflows"] == ["doc-review", "quick-check"]


def test_a_review_runs_every_agent_and_records_the_decision(plane: LocalPlane) -> None:
    # GIVEN the sample vendor memo
    # WHEN it is submitted and followed to the end
    run = finished(plane.url, start(plane, load_event("doc-review-request.json")), enriched=True, approve="approve")

    # THEN every step ran, in order, under the contract's agent and version
    assert run["status"] == "SUCCEEDED"
    steps = [s["step"] for s in run["steps"]]
    assert steps[0] == "Intake"
    claims = [s for s in steps if re.fullmatch(r"VerifyClaim/\d+", s)]  # not the fact-checker's turns and tools
    assert sorted(claims) == sorted(f"VerifyClaim/{i}" for i in range(10))
    assert (
        steps.index("ScoreRisk")
        < steps.index("Approval")
        < steps.index("RecordDecision")
        < steps.index("entity-tagging")
    )
    by_step = {s["step"]: s for s in run["steps"]}
    assert by_step["VerifyClaim/0"]["agent"] == "fact-checker-llm"  # ranked first of the fact-checkers
    assert by_step["VerifyClaim/0"]["capability"] == "fact-check"
    assert by_step["VerifyClaim/0/tool/1.0"]["agent"] == "evidence-verifier"  # its tool, through dispatch
    unfinished = [s for s in run["steps"] if s["status"] != "SUCCEEDED" or s["duration_ms"] < 0]
    assert unfinished == []
    # AND the policy's high risk (one confidently refuted claim) stopped for a person, whose approval settled it
    assert run["output"]["risk"]["recommended_outcome"] == "escalate"
    assert run["decision"]["outcome"] == "accept"
    assert run["decision"]["approval"]["decision"] == "approve"
    assert run["decision"]["approval"]["actor"].startswith("human:")
    assert by_step["Approval"]["actor"].startswith("human:")
    assert run["decision"]["risk_level"] == "high"
    labels = {v["claim_id"]: v["label"] for v in run["output"]["verdicts"]}
    assert labels["c-006"] == "refuted"
    assert labels["c-009"] == "not-enough-info"
    # AND the trace id given at submission is the one every step carried
    assert run["trace_id"].startswith("1-")


def test_a_status_read_with_wait_answers_once_the_run_has_ended(plane: LocalPlane) -> None:
    execution_id = start(plane, load_event("doc-review-low-risk.json"))

    answer = request(plane.url, "GET", f"/v1/executions/{execution_id}?wait=20")

    assert answer.status == 200, answer.body
    assert answer.body["status"] == "SUCCEEDED"  # one read, no polling: it held until the run ended
    assert answer.body["decision"]["outcome"] == "accept"
    assert any(s["step"] == "RecordDecision" for s in answer.body["steps"])


def test_a_wait_past_the_cap_is_a_problem(plane: LocalPlane) -> None:
    execution_id = start(plane, load_event("doc-review-low-risk.json"))

    answer = request(plane.url, "GET", f"/v1/executions/{execution_id}?wait=60")

    assert answer.status == 400
    assert answer.content_type == PROBLEM_JSON
    assert "wait must be a number of seconds from 0 to 20" in answer.body["detail"]


def test_the_enrichment_event_is_handled_once(plane: LocalPlane) -> None:
    run = finished(plane.url, start(plane, load_event("doc-review-low-risk.json")), enriched=True)
    assert plane.settle(timeout=10)

    tagging = [s for s in run["steps"] if s["agent"] == "entity-tagger"]
    assert len(tagging) == 1
    assert run["decision"]["outcome"] == "accept"


def test_a_failing_agent_is_caught_and_the_failure_recorded(plane: LocalPlane) -> None:
    # GIVEN the risk scorer (bound directly, no fallback) fails every call with an error no retry can fix
    plane.options.faults.faults["risk-scorer"] = Fault(error="ModelError")
    try:
        run = finished(plane.url, start(plane, load_event("doc-review-request.json")))
    finally:
        del plane.options.faults.faults["risk-scorer"]

    # THEN the run fails with the agent's error, after the Catch path recorded it
    assert run["status"] == "FAILED"
    assert run["error"]["error"] == "ModelError"
    steps = {s["step"]: s for s in run["steps"]}
    assert steps["RecordFailure"]["agent"] == "failure-recorder"
    assert steps["RecordFailure"]["status"] == "SUCCEEDED"
    assert "RecordDecision" not in steps
    assert run["decision"]["outcome"] == "failed"
    assert "ModelError" in run["decision"]["summary"]


def test_a_failing_failure_recorder_keeps_the_runs_own_error(plane: LocalPlane) -> None:
    # GIVEN the risk scorer fails, and so does every attempt to record that failure
    faults = plane.options.faults.faults
    faults["risk-scorer"] = Fault(error="ModelError")
    faults["failure-recorder"] = Fault(error="RecorderDown")
    injected_before = plane.options.faults.injected.get("failure-recorder", 0)
    try:
        run = finished(plane.url, start(plane, load_event("doc-review-request.json")))
    finally:
        del faults["risk-scorer"], faults["failure-recorder"]

    # THEN the recorder was retried, and the run still ends with the risk scorer's error and cause
    assert plane.options.faults.injected.get("failure-recorder", 0) - injected_before == DOC_REVIEW_FAILURE.attempts + 1
    assert run["status"] == "FAILED"
    assert run["error"]["error"] == "ModelError"
    assert run["error"]["cause"] is not None
    assert "risk-scorer raised ModelError" in run["error"]["cause"]
    assert "RecorderDown" not in run["error"]["cause"]


MEMO = load_event("doc-review-request.json")["document"]["text"]
MULTI_BYTE = "Der Anbieter hält seit 2019 die Zertifizierung ISO 27001 für alle Rechenzentren in Köln 😀. "


def body_of(text: str, metadata: dict[str, str] | None = None) -> dict[str, Any]:
    return {"document": {"title": "Größe 😀 review", "text": text[:100_000]}, "metadata": metadata or {}}


@pytest.mark.parametrize(
    "body",
    [
        body_of(MEMO, {f"key-{n}": "ü😀" * 5_000 for n in range(20)}),  # the longest metadata values
        body_of((MEMO + " ") * 200),  # a 100,000-character text
        body_of(MULTI_BYTE * 1200),  # 100,000 multi-byte characters, every sentence a claim
    ],
    ids=["long-metadata", "longest-text", "multi-byte-text"],
)
def test_every_body_the_model_accepts_runs_to_a_recorded_decision(plane: LocalPlane, body: dict[str, Any]) -> None:
    # GIVEN a body at the request model's limits, far over what a run's state (256 KiB) could hold inline
    answer = request(plane.url, "POST", "/v1/workflows/doc-review/executions", body)
    assert answer.status == 202, answer.body

    # WHEN it is followed (a person approves if it waits)
    run = finished(plane.url, answer.body["execution_id"], timeout=120, approve="approve")

    # THEN it ran every step to a recorded decision: the state carried references, not the body
    assert run["status"] == "SUCCEEDED", run["error"]
    assert run["decision"]["outcome"] in ("accept", "accept-with-notes")
    steps = {s["step"]: s for s in run["steps"]}
    assert steps["RecordDecision"]["status"] == "SUCCEEDED"


def test_claims_past_what_a_run_can_carry_go_to_a_person(plane: LocalPlane) -> None:
    # GIVEN a text with far more checkable claims than a run's state can carry
    answer = request(plane.url, "POST", "/v1/workflows/doc-review/executions", body_of(MULTI_BYTE * 1200))
    assert answer.status == 202, answer.body

    run = finished(plane.url, answer.body["execution_id"], timeout=120, approve="approve")

    # THEN the claims left out are named in the decision, and a person was asked
    assert run["decision"]["approval"]["decision"] == "approve"
    left_out = [note for note in run["decision"]["degraded"] if note.startswith("Intake: ")]
    assert len(left_out) == 1
    assert "were not checked" in left_out[0]


def test_a_step_that_times_out_ends_the_run_with_its_timeout_recorded(plane: LocalPlane) -> None:
    # GIVEN the risk scorer answers later than its task's timeout (States.Timeout, a reserved error name)
    plane.options.faults.faults["risk-scorer"] = Fault(latency_ms=(risk_scorer_timeout_s(plane) + 1) * 1000)
    try:
        run = finished(plane.url, start(plane, load_event("doc-review-low-risk.json")))
    finally:
        del plane.options.faults.faults["risk-scorer"]

    # THEN the failure is recorded under its own name, and the run ends with it (unprefixed: a Fail state may not
    # raise "States.*") and a cause that says the whole of it
    assert run["decision"]["outcome"] == "failed"
    assert "States.Timeout" in run["decision"]["summary"]
    assert run["error"]["error"] == "Timeout"
    assert run["error"]["cause"].startswith("States.Timeout: ")


def risk_scorer_timeout_s(plane: LocalPlane) -> int:
    machine = plane.physical("DocReviewStateMachine", "AWS::StepFunctions::StateMachine")
    definition = json.loads(plane.client("stepfunctions").describe_state_machine(stateMachineArn=machine)["definition"])
    timeout: int = definition["States"]["ScoreRisk"]["TimeoutSeconds"]
    return timeout


def test_transient_lambda_errors_are_retried(plane: LocalPlane) -> None:
    # GIVEN the risk scorer's invocations fail transiently about half the time
    plane.options.faults.faults["risk-scorer"] = Fault(error="Lambda.ServiceException", rate=0.5)
    injected_before = plane.options.faults.injected.get("risk-scorer", 0)
    try:
        runs = [finished(plane.url, start(plane, load_event("doc-review-low-risk.json"))) for _ in range(4)]
    finally:
        del plane.options.faults.faults["risk-scorer"]

    # THEN faults were injected, and the Retry (3 attempts, backoff with jitter) carried most runs through
    assert plane.options.faults.injected.get("risk-scorer", 0) > injected_before
    assert sum(run["status"] == "SUCCEEDED" for run in runs) >= 3


def test_a_document_without_claims_fails_through_the_catch_path(plane: LocalPlane) -> None:
    run = finished(plane.url, start(plane, load_event("doc-review-no-claims.json")))

    assert run["status"] == "FAILED"
    assert run["error"]["error"] == "NoClaimsFound"
    failed = [s for s in run["steps"] if s["status"] == "FAILED"]
    assert [s["step"] for s in failed] == ["Intake"]
    assert failed[0]["error"]["type"] == "NoClaimsFound"
    assert run["decision"]["outcome"] == "failed"


@pytest.mark.parametrize(
    ("body", "content_type", "field"),
    [
        pytest.param(load_event("doc-review-malformed.json"), "application/json", "document.title", id="wrong type"),
        pytest.param({"document": {"text": "Some text."}}, "application/json", "document.title", id="missing field"),
        pytest.param({"document": {"title": "t", "text": "x"}, "extra": 1}, "application/json", "extra", id="unknown"),
        pytest.param({"document": {"title": 1, "text": "x"}}, "text/plain", "document.title", id="other content type"),
    ],
)
def test_a_malformed_body_is_refused_naming_the_field_and_starts_nothing(
    plane: LocalPlane, body: dict[str, Any], content_type: str, field: str
) -> None:
    before = executions_started(plane)

    answer = request(plane.url, "POST", "/v1/workflows/doc-review/executions", body, {"Content-Type": content_type})

    assert answer.status == 400
    assert answer.content_type == PROBLEM_JSON
    assert answer.body["status"] == 400
    assert field in [error["field"] for error in answer.body["errors"]]
    assert answer.body["detail"].startswith(answer.body["errors"][0]["field"])
    assert executions_started(plane) == before


def test_a_body_that_is_not_json_is_refused(plane: LocalPlane) -> None:
    answer = request(plane.url, "POST", "/v1/workflows/doc-review/executions", b"{not json")
    assert answer.status == 400
    assert answer.content_type == PROBLEM_JSON


def test_an_unknown_workflow_is_404_and_starts_nothing(plane: LocalPlane) -> None:
    before = executions_started(plane)

    answer = request(plane.url, "POST", "/v1/workflows/no-such-flow/executions", load_event("doc-review-request.json"))

    assert answer.status == 404
    assert answer.content_type == PROBLEM_JSON
    assert "no-such-flow" in answer.body["detail"]
    assert executions_started(plane) == before


def test_an_idempotency_key_starts_one_run(plane: LocalPlane) -> None:
    before = executions_started(plane)
    body = load_event("doc-review-low-risk.json")
    path = "/v1/workflows/doc-review/executions"

    first = request(plane.url, "POST", path, body, {"Idempotency-Key": "e2e-key-1"})
    second = request(plane.url, "POST", path, body, {"Idempotency-Key": "e2e-key-1"})
    reused = request(plane.url, "POST", path, load_event("doc-review-request.json"), {"Idempotency-Key": "e2e-key-1"})

    assert first.status == second.status == 202
    assert second.body["execution_id"] == first.body["execution_id"]
    assert reused.status == 422
    assert executions_started(plane) == before + 1


def test_unknown_routes_and_executions_are_problems(plane: LocalPlane) -> None:
    missing = request(plane.url, "GET", "/v1/executions/does-not-exist")
    nowhere = request(plane.url, "GET", "/v2/nothing")
    wrong_method = request(plane.url, "DELETE", "/v1/health")

    assert (missing.status, missing.content_type) == (404, PROBLEM_JSON)
    assert (nowhere.status, nowhere.content_type) == (403, PROBLEM_JSON)  # API Gateway: no such route
    assert wrong_method.status == 405


def test_capabilities_list_every_contract(plane: LocalPlane) -> None:
    answer = request(plane.url, "GET", "/v1/capabilities")

    assert answer.status == 200
    names = {c["name"]: c for c in answer.body["capabilities"]}
    shipped = [*Path("contracts/agents").glob("*.yaml"), *Path("contracts/core").glob("*.yaml")]
    assert set(names) == {p.stem for p in shipped}
    assert names["evidence-verifier"]["capabilities"] == ["fact-check", "confidence-scoring"]
