"""Personas on the local plane over real HTTP: SigV4 with local keys, each persona's routes, who reads which run."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.cli import main as agentplane
from infra.client import Answer, finished, request
from infra.local.plane import LocalPlane, PlaneOptions
from tests.sample_events import load_event

pytestmark = pytest.mark.e2e

PROBLEM_JSON = "application/problem+json"
RUN = "/v1/workflows/doc-review/executions"


@pytest.fixture(scope="module")
def plane(plane_options: Callable[..., PlaneOptions]) -> Iterator[LocalPlane]:
    with LocalPlane(plane_options(schedule_scale=0)) as running:
        yield running


@pytest.fixture(scope="module")
def alices_run(plane: LocalPlane) -> dict[str, Any]:
    """A finished run started by the plane's submitter key."""
    started = request(plane.url, "POST", RUN, load_event("doc-review-low-risk.json"), persona="submitter")
    assert started.status == 202, started.body
    return finished(plane.url, started.body["execution_id"])


@pytest.fixture(scope="module")
def bob(plane: LocalPlane) -> dict[str, str]:
    """A second submitter: a second key the plane issues for the persona, with its own session name."""
    assert plane.auth is not None
    key = plane.auth.issue("submitter")
    assert key.session == "submitter-2"
    return {"access_key_id": key.access_key_id, "secret_access_key": key.secret_access_key}


def assert_problem(answer: Answer, status: int) -> dict[str, Any]:
    assert answer.status == status, answer.body
    assert answer.content_type == PROBLEM_JSON
    body: dict[str, Any] = answer.body
    return body


def test_unsigned_requests_are_401_and_health_stays_open(plane: LocalPlane) -> None:
    for method, path in [("POST", RUN), ("GET", "/v1/executions/x"), ("GET", "/v1/audit/export")]:
        body = assert_problem(request(plane.url, method, path, {}, persona=None), 401)
        assert body["type"].endswith("/unauthenticated")

    assert request(plane.url, "GET", "/v1/health", persona=None).status == 200


def test_a_key_the_plane_did_not_issue_is_401(plane: LocalPlane) -> None:
    forged = {"access_key_id": "AKIALOCALFORGED00000", "secret_access_key": "guess"}

    answer = request(plane.url, "GET", "/v1/capabilities", credentials=forged)

    assert_problem(answer, 401)


def test_a_persona_outside_its_routes_is_403_and_starts_nothing(plane: LocalPlane) -> None:
    machine = plane.physical("DocReviewStateMachine", "AWS::StepFunctions::StateMachine")
    before = len(plane.client("stepfunctions").list_executions(stateMachineArn=machine)["executions"])

    auditor_runs = request(plane.url, "POST", RUN, load_event("doc-review-request.json"), persona="auditor")
    approver_runs = request(plane.url, "POST", RUN, load_event("doc-review-request.json"), persona="approver")
    submitter_audits = request(plane.url, "GET", "/v1/audit/export", persona="submitter")

    assert "auditor persona may not POST" in assert_problem(auditor_runs, 403)["detail"]
    assert assert_problem(approver_runs, 403)["type"].endswith("/forbidden")
    assert_problem(submitter_audits, 403)
    after = len(plane.client("stepfunctions").list_executions(stateMachineArn=machine)["executions"])
    assert after == before


def test_a_submitter_reads_its_own_run_and_another_submitter_cannot_tell_it_exists(
    plane: LocalPlane, alices_run: dict[str, Any], bob: dict[str, str]
) -> None:
    # GIVEN Alice's run and Bob, a second identity with the submitter persona
    run_id = alices_run["execution_id"]

    # WHEN each asks for Alice's run, and for a run that does not exist
    alice_sees = request(plane.url, "GET", f"/v1/executions/{run_id}", persona="submitter")
    bob_sees = request(plane.url, "GET", f"/v1/executions/{run_id}", credentials=bob)
    bob_missing = request(plane.url, "GET", "/v1/executions/no-such-run", credentials=bob)

    # THEN Alice reads it, with who submitted it; Bob gets the same 404 as for a run that does not exist
    assert alice_sees.status == 200
    assert plane.auth is not None
    role = plane.auth.personas["submitter"].role_name
    assert alice_sees.body["submitted_by"] == f"arn:aws:sts::123456789012:assumed-role/{role}/submitter"
    hidden, missing = assert_problem(bob_sees, 404), assert_problem(bob_missing, 404)
    assert (hidden["title"], hidden["type"]) == (missing["title"], missing["type"])
    assert run_id not in json.dumps(bob_sees.headers)


def test_bobs_own_run_is_his_and_alices_idempotency_key_is_not(plane: LocalPlane, bob: dict[str, str]) -> None:
    body = load_event("doc-review-low-risk.json")
    alices = request(plane.url, "POST", RUN, body, {"Idempotency-Key": "rbac-1"}, persona="submitter")

    # Bob replaying Alice's key with Alice's body does not learn her run
    replay = request(plane.url, "POST", RUN, body, {"Idempotency-Key": "rbac-1"}, credentials=bob)
    bobs = request(plane.url, "POST", RUN, body, credentials=bob)
    mine = request(plane.url, "GET", f"/v1/executions/{bobs.body['execution_id']}", credentials=bob)

    assert alices.status == 202
    assert alices.body["execution_id"] not in json.dumps(assert_problem(replay, 422))
    assert bobs.status == 202
    assert mine.status == 200
    assert mine.body["submitted_by"].endswith("/submitter-2")


@pytest.mark.parametrize("persona", ["auditor", "approver", "admin"])
def test_readers_read_any_run(plane: LocalPlane, alices_run: dict[str, Any], persona: str) -> None:
    answer = request(plane.url, "GET", f"/v1/executions/{alices_run['execution_id']}", persona=persona)

    assert answer.status == 200
    assert answer.body["execution_id"] == alices_run["execution_id"]


def test_the_auditor_reads_the_audit_routes(plane: LocalPlane, alices_run: dict[str, Any], tmp_path: Path) -> None:
    plane.settle()
    export = tmp_path / "ledger.jsonl"

    lineage = request(plane.url, "GET", f"/v1/audit/traces/{alices_run['trace_id']}", persona="auditor")
    exported = agentplane(["audit", "export", "--out", str(export), "--state-dir", str(plane.state_dir)])

    assert lineage.status == 200, lineage.body
    assert {s["step"] for s in lineage.body["steps"]} >= {"Intake", "ScoreRisk", "RecordDecision"}
    assert exported == 0
    assert alices_run["execution_id"] in export.read_text()


def test_credentials_file_has_a_working_key_per_persona(plane: LocalPlane) -> None:
    path = plane.state_dir / "credentials.json"

    written = json.loads(path.read_text())

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(written) == {"submitter", "approver", "auditor", "admin"}
    for persona, key in written.items():
        assert set(key) == {"access_key_id", "secret_access_key", "api_key"}, persona
        signing = {"access_key_id": key["access_key_id"], "secret_access_key": key["secret_access_key"]}
        answer = request(
            plane.url, "GET", "/v1/capabilities", headers={"x-api-key": key["api_key"]}, credentials=signing
        )
        assert answer.status == 200, (persona, answer.body)
    assert len({key["api_key"] for key in written.values()}) == len(written)  # one usage plan each


@pytest.mark.parametrize("api_key", [None, "not-a-key-of-this-plane"])
def test_a_signed_request_without_a_known_api_key_is_forbidden(plane: LocalPlane, api_key: str | None) -> None:
    headers = {"X-Api-Key": api_key} if api_key else {"x-api-key": ""}

    answer = request(plane.url, "GET", "/v1/capabilities", headers=headers, persona="submitter")

    assert answer.status == 403
    assert answer.content_type == "application/problem+json"
    assert "API key" in answer.body["detail"]


def test_the_cli_signs_as_the_commands_persona(
    plane: LocalPlane, alices_run: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    state = ["--state-dir", str(plane.state_dir)]

    status = agentplane(["status", alices_run["execution_id"], "--json", *state])
    as_auditor = agentplane(
        ["run", "doc-review", "--input", "events/doc-review-request.json", "--persona", "auditor", *state]
    )
    explained = agentplane(["audit", "explain", alices_run["trace_id"], "--json", *state])

    assert status == 0
    assert as_auditor == 1
    assert explained in (0, 1)  # 1 while the newest steps await a digest
    out, err = capsys.readouterr()
    assert alices_run["execution_id"] in out
    assert "403 Forbidden: the auditor persona may not POST" in err


LOCAL_ROUTES = [
    ("POST", "/local/schedules/run"),
    ("POST", "/local/dead-letters/replay"),
    ("GET", "/local/traces?trace_id=1-00000000-000000000000000000000000"),
    ("POST", "/local/rollouts?agent=evidence-verifier&fault=ModelError"),
]


@pytest.mark.parametrize(("method", "path"), LOCAL_ROUTES, ids=[p.split("?")[0] for _, p in LOCAL_ROUTES])
def test_the_planes_own_routes_are_signed_and_for_the_admin_only(plane: LocalPlane, method: str, path: str) -> None:
    # GIVEN the plane's own routes (a rollout with a fault, every trace, schedules, dead-letter replay)
    unsigned = request(plane.url, method, path, persona=None)
    forged = request(
        plane.url, method, path, credentials={"access_key_id": "AKIALOCALFORGED00000", "secret_access_key": "x"}
    )
    by_persona = {p: request(plane.url, method, path, persona=p) for p in ("submitter", "approver", "auditor")}

    # THEN they answer as the API's routes do: 401 unsigned or forged, 403 for every persona but admin
    assert assert_problem(unsigned, 401)["type"].endswith("/unauthenticated")
    assert_problem(forged, 401)
    for persona, answer in by_persona.items():
        assert f"the {persona} persona may not {method}" in assert_problem(answer, 403)["detail"]
    assert plane.deployments is not None
    assert not plane.deployments.deployments  # no rollout was started


def test_the_admin_calls_the_planes_own_routes(plane: LocalPlane) -> None:
    answer = request(plane.url, "GET", "/local/traces?trace_id=1-00000000-000000000000000000000000", persona="admin")

    assert answer.status == 200, answer.body
    assert answer.body["spans"] == []
