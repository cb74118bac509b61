"""Admission control: how many runs a workflow admits per window, and what the stack derives it from."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from contracts.loader import load_contracts
from contracts.models import DocReviewRequest
from contracts.workflow import WORKFLOWS_DIR, load_workflow
from functions.api.admission import AdmissionLimit, InMemoryAdmissionCounter, max_in_flight_cap, retry_after_s
from functions.api.service import AtCapacityError, Workflow, load_workflows, submit
from functions.runtime.executions import InMemoryExecutionStore
from infra.components.public_api import UNRESERVED_MAX_IN_FLIGHT, admission_limit, reserved_concurrency
from infra.workflows.resolve import workflow_agents
from tests.sample_events import load_event
from tests.unit.test_api_service import FakeEngine

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 2, 3, 0, 0, 500_000, tzinfo=UTC)
LIMIT = AdmissionLimit(max_in_flight=2, window_ms=5_000)
WORKFLOWS = {
    "doc-review": Workflow("doc-review", "arn:sm:doc-review", DocReviewRequest, ttl_ms=60_000, admission=LIMIT)
}


def send(engine: FakeEngine, counter: InMemoryAdmissionCounter, run: int, *, at: datetime = NOW, key: str = "") -> str:
    return submit(
        "doc-review",
        json.dumps(load_event("doc-review-low-risk.json")),
        idempotency_key=key or None,
        trace_id="1-6b000000-0123456789abcdef01234567",
        workflows=WORKFLOWS,
        engine=engine,
        executions=InMemoryExecutionStore(),
        now=at,
        new_id=lambda: f"run-{run}",
        admission=counter,
    ).execution_id


def test_a_window_admits_its_limit_then_refuses_until_the_next_window() -> None:
    engine, counter = FakeEngine(), InMemoryAdmissionCounter()
    send(engine, counter, 1)
    send(engine, counter, 2)

    with pytest.raises(AtCapacityError) as refused:
        send(engine, counter, 3, at=NOW + timedelta(seconds=1))

    assert refused.value.status == 503
    assert refused.value.retry_after == 4  # the 5 s window began at 03:00:00 and ends at 03:00:05
    assert [s["name"] for s in engine.started] == ["run-1", "run-2"]
    # the next window admits again: capacity comes back as the admitted runs leave processing
    assert send(engine, counter, 4, at=NOW + timedelta(seconds=5)) == "run-4"


def test_retry_after_is_whole_seconds_to_the_windows_end_and_never_zero() -> None:
    assert retry_after_s(NOW, LIMIT) == 5
    assert retry_after_s(NOW + timedelta(milliseconds=4_499), LIMIT) == 1
    assert retry_after_s(NOW + timedelta(milliseconds=4_500), LIMIT) == 5  # a new window


def test_the_limit_is_the_smallest_reserved_pool_per_the_steps_p95_back_to_back() -> None:
    contracts = load_contracts()
    doc_review = load_workflow(WORKFLOWS_DIR / "doc-review.yaml")
    steps = [contracts[name] for name in workflow_agents(doc_review, contracts)]

    limit = admission_limit(steps)

    reserved = [r for r in map(reserved_concurrency, steps) if r]
    assert reserved  # doc-review's agents reserve concurrency: the limit comes from the contracts
    assert limit.max_in_flight == min(reserved)
    assert limit.window_ms == sum(c.slo.p95_ms for c in steps)
    unreserved = [c for c in steps if not reserved_concurrency(c)]
    assert admission_limit(unreserved).max_in_flight == UNRESERVED_MAX_IN_FLIGHT


def test_the_local_plane_caps_every_limit_to_its_pools() -> None:
    raw = json.dumps(
        {
            "doc-review": {
                "state_machine_arn": "arn:sm:doc-review",
                "input_model": "DocReviewRequest",
                "ttl_ms": 60_000,
                "max_in_flight": 10,
                "admission_window_ms": 5_350,
            }
        }
    )

    assert load_workflows(raw)["doc-review"].admission == AdmissionLimit(10, 5_350)
    assert load_workflows(raw, max_in_flight_cap=4)["doc-review"].admission == AdmissionLimit(4, 5_350)
    assert max_in_flight_cap({"AGENTPLANE_MAX_IN_FLIGHT": "4"}) == 4
    assert max_in_flight_cap({}) is None
    with pytest.raises(RuntimeError, match="positive whole number"):
        max_in_flight_cap({"AGENTPLANE_MAX_IN_FLIGHT": "0"})
