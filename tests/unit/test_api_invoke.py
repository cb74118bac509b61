"""The synchronous hot path's logic, with a fake engine."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.models import DocReviewRequest, QuickCheckRequest
from functions.api.invoke import SyncRun, invoke
from functions.api.service import ProblemError, RunInput, Workflow

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
WORKFLOWS = {
    "quick-check": Workflow("quick-check", "arn:sm:quick", QuickCheckRequest, ttl_ms=10_000, synchronous=True),
    "doc-review": Workflow("doc-review", "arn:sm:doc", DocReviewRequest, ttl_ms=60_000),
}


class FakeEngine:
    def __init__(self, run: SyncRun) -> None:
        self.run = run
        self.inputs: list[dict[str, Any]] = []

    def run_sync(self, *, state_machine_arn: str, run: RunInput) -> SyncRun:
        self.inputs.append(json.loads(run.to_json()))
        return self.run


def call(name: str, body: Any, engine: FakeEngine) -> dict[str, Any]:
    return invoke(
        name,
        json.dumps(body),
        trace_id="1-6b000000-0123456789abcdef01234567",
        workflows=WORKFLOWS,
        engine=engine,
        now=NOW,
        new_id=lambda: "run-1",
    )


def test_a_synchronous_run_answers_with_its_output_within_its_budget() -> None:
    engine = FakeEngine(SyncRun("arn:exec", "SUCCEEDED", output=json.dumps({"verdict": {"label": "supported"}})))

    answer = call("quick-check", {"claim": "Northwind Analytics was founded in 2012."}, engine)

    assert answer["output"] == {"verdict": {"label": "supported"}}
    assert engine.inputs[0]["deadline"] == "2026-11-23T12:00:10+00:00"
    assert engine.inputs[0]["request"] == {"claim": "Northwind Analytics was founded in 2012."}


def test_a_failed_run_is_a_502_problem_naming_the_error() -> None:
    engine = FakeEngine(SyncRun("arn:exec", "FAILED", error="DeadlineExceeded", cause="stale"))

    with pytest.raises(ProblemError) as problem:
        call("quick-check", {"claim": "x"}, engine)

    assert problem.value.status == 502
    assert "DeadlineExceeded" in problem.value.detail


@pytest.mark.parametrize(
    ("name", "body", "status"),
    [
        pytest.param("doc-review", {"claim": "x"}, 409, id="asynchronous workflow"),
        pytest.param("nope", {"claim": "x"}, 404, id="unknown workflow"),
        pytest.param("quick-check", {"claim": ""}, 400, id="empty claim"),
        pytest.param("quick-check", {"claim": "x", "approved": True}, 400, id="mass assignment"),
    ],
)
def test_wrong_requests_are_problems_and_run_nothing(name: str, body: Any, status: int) -> None:
    engine = FakeEngine(SyncRun("arn:exec", "SUCCEEDED", output="{}"))

    with pytest.raises(ProblemError) as problem:
        call(name, body, engine)

    assert problem.value.status == status
    assert engine.inputs == []
