"""The approval gate end to end on the local plane: approve, reject, double use, self-approval, changed
arguments, timeout and a late approval — each over signed HTTP, as the persona who would act."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from infra.cli import main as agentplane
from infra.client import finished, request
from infra.local.plane import LocalPlane, PlaneOptions
from tests.sample_events import load_event

pytestmark = pytest.mark.e2e

RUN = "/v1/workflows/doc-review/executions"


@pytest.fixture(scope="module")
def plane(plane_options: Callable[..., PlaneOptions]) -> Iterator[LocalPlane]:
    with LocalPlane(plane_options(schedule_scale=0)) as running:
        yield running


def submit(plane: LocalPlane, persona: str = "submitter") -> str:
    answer = request(plane.url, "POST", RUN, load_event("doc-review-request.json"), persona=persona)
    assert answer.status == 202, answer.body
    execution_id: str = answer.body["execution_id"]
    return execution_id


def waiting_approval(plane: LocalPlane, execution_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = request(plane.url, "GET", "/v1/approvals?status=PENDING", persona="approver").body["approvals"]
        mine = [a for a in pending if a["execution_id"] == execution_id]
        if mine:
            return mine[0]
        time.sleep(0.05)
    raise AssertionError(f"no approval opened for {execution_id}")


def decide(plane: LocalPlane, approval: dict[str, Any], decision: str, persona: str = "approver", **extra: Any) -> Any:
    body = {"decision": decision, "reason": f"test: {decision}", "args_sha256": approval["args_sha256"], **extra}
    return request(plane.url, "POST", f"/v1/approvals/{approval['approval_id']}", body, persona=persona)


def test_a_high_risk_run_waits_and_its_pending_approval_says_what_and_until_when(plane: LocalPlane) -> None:
    run_id = submit(plane)

    approval = waiting_approval(plane, run_id)

    assert request(plane.url, "GET", f"/v1/executions/{run_id}", persona="submitter").body["status"] == "RUNNING"
    assert approval["subject"]["risk"]["level"] == "high"
    assert approval["policy_version"] == "2026-12-02"
    assert approval["expires_at"] > approval["requested_at"]
    assert "task_token" not in approval
    decide(plane, approval, "approve")


def test_a_rejection_settles_the_run_as_rejected_and_is_recorded(plane: LocalPlane) -> None:
    run_id = submit(plane)
    approval = waiting_approval(plane, run_id)

    answer = decide(plane, approval, "reject")
    run = finished(plane.url, run_id)

    assert answer.status == 200
    assert run["status"] == "SUCCEEDED"
    assert run["decision"]["outcome"] == "reject"
    step = next(s for s in run["steps"] if s["step"] == "Approval")
    assert step["actor"].endswith("/approver")


def test_an_approval_cannot_be_used_twice(plane: LocalPlane) -> None:
    approval = waiting_approval(plane, submit(plane))

    first = decide(plane, approval, "approve")
    second = decide(plane, approval, "reject")

    assert (first.status, second.status) == (200, 409)
    assert second.content_type == "application/problem+json"


def test_changed_arguments_void_the_approval(plane: LocalPlane) -> None:
    approval = waiting_approval(plane, submit(plane))

    void = decide(plane, approval, "approve", args_sha256="0" * 64)

    assert void.status == 409
    assert void.body["type"].endswith("/arguments-changed")
    assert decide(plane, approval, "approve").status == 200  # reviewed again: still pending, now settled


def test_an_approval_must_say_what_was_reviewed(plane: LocalPlane) -> None:
    approval = waiting_approval(plane, submit(plane))

    unsaid = request(
        plane.url,
        "POST",
        f"/v1/approvals/{approval['approval_id']}",
        {"decision": "approve", "reason": "looks fine"},
        persona="approver",
    )

    assert unsaid.status == 400
    assert unsaid.content_type == "application/problem+json"
    assert "args_sha256" in unsaid.body["detail"]
    assert decide(plane, approval, "approve").status == 200  # still pending: nothing was decided


def test_the_cli_decides_on_what_waits_when_not_told_a_digest(
    plane: LocalPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    approval = waiting_approval(plane, submit(plane))

    code = agentplane(["approvals", "approve", approval["approval_id"], "--reason", "cli", "--api-url", plane.url])

    assert code == 0
    assert f"deciding on args {approval['args_sha256']}" in capsys.readouterr().out


def test_no_one_approves_a_run_they_submitted(plane: LocalPlane) -> None:
    approval = waiting_approval(plane, submit(plane, persona="admin"))

    mine = decide(plane, approval, "approve", persona="admin")

    assert mine.status == 403
    assert decide(plane, approval, "approve").status == 200


def test_one_person_holding_two_personas_cannot_approve_their_own_run(plane: LocalPlane) -> None:
    # GIVEN carol, who holds both the submitter and the approver persona (two keys, one person)
    assert plane.auth is not None
    keys = {p: plane.auth.issue(p, person="carol") for p in ("submitter", "approver")}
    as_carol = {
        p: {"access_key_id": k.access_key_id, "secret_access_key": k.secret_access_key} for p, k in keys.items()
    }
    started = request(plane.url, "POST", RUN, load_event("doc-review-request.json"), credentials=as_carol["submitter"])
    assert started.status == 202, started.body
    approval = waiting_approval(plane, started.body["execution_id"])

    # WHEN carol approves it as an approver
    body = {"decision": "approve", "reason": "mine", "args_sha256": approval["args_sha256"]}
    mine = request(
        plane.url, "POST", f"/v1/approvals/{approval['approval_id']}", body, credentials=as_carol["approver"]
    )

    # THEN she is refused as the person who submitted it; another approver decides
    assert mine.status == 403
    assert mine.body["title"] == "Self-approval refused"
    assert decide(plane, approval, "approve").status == 200


def test_only_approvers_decide(plane: LocalPlane) -> None:
    approval = waiting_approval(plane, submit(plane))

    assert decide(plane, approval, "approve", persona="submitter").status == 403
    assert decide(plane, approval, "approve", persona="auditor").status == 403
    assert request(plane.url, "GET", "/v1/approvals", persona="submitter").status == 403
    assert decide(plane, approval, "approve").status == 200


def test_an_unknown_approval_or_a_bad_decision_is_a_problem(plane: LocalPlane) -> None:
    unknown = request(
        plane.url,
        "POST",
        "/v1/approvals/nope",
        {"decision": "approve", "reason": "x", "args_sha256": "0" * 64},
        persona="approver",
    )
    bad = request(plane.url, "POST", "/v1/approvals/nope", {"decision": "maybe", "reason": "x"}, persona="approver")

    assert unknown.status == 404
    assert bad.status == 400
