"""Admission control: how many runs of a workflow process at once, who gives a slot back, and what the stack derives
the limit from."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from contracts.loader import load_contracts
from contracts.models import DocReviewRequest
from contracts.workflow import WORKFLOWS_DIR, load_workflow
from functions.api.admission import AdmissionLimit, max_in_flight_cap, retry_after_s
from functions.api.service import AtCapacityError, Workflow, load_workflows, submit
from functions.runtime.admission import DynamoAdmissionSlots, InMemoryAdmissionSlots, admission_key
from functions.runtime.executions import InMemoryExecutionStore
from infra.components.public_api import UNRESERVED_MAX_IN_FLIGHT, admission_limit, reserved_concurrency
from infra.workflows.resolve import workflow_agents
from tests.sample_events import load_event
from tests.unit.test_api_service import FakeEngine

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 2, 3, 0, 0, 500_000, tzinfo=UTC)
NOW_MS = round(NOW.timestamp() * 1000)
LIMIT = AdmissionLimit(max_in_flight=2, window_ms=5_000)
WORKFLOWS = {
    "doc-review": Workflow("doc-review", "arn:sm:doc-review", DocReviewRequest, ttl_ms=60_000, admission=LIMIT)
}


def send(engine: FakeEngine, slots: InMemoryAdmissionSlots, run: int, *, at: datetime = NOW, key: str = "") -> str:
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
        admission=slots,
    ).execution_id


def test_runs_past_the_limit_are_refused_until_one_leaves_processing() -> None:
    engine, slots = FakeEngine(), InMemoryAdmissionSlots()
    send(engine, slots, 1)
    send(engine, slots, 2)

    # GIVEN two runs processing WHEN a third comes, however much later (a rate would have admitted it by now)
    with pytest.raises(AtCapacityError) as refused:
        send(engine, slots, 3, at=NOW + timedelta(seconds=30))

    # THEN it is refused, told to come back after one run's processing time, and nothing starts
    assert refused.value.status == 503
    assert refused.value.retry_after == 5
    assert [s["name"] for s in engine.started] == ["run-1", "run-2"]
    # AND once a run's decision is recorded (or it waits for a person) its slot admits the next
    slots.release("doc-review", "run-1")
    assert send(engine, slots, 4, at=NOW + timedelta(seconds=31)) == "run-4"


def test_a_slot_never_given_back_is_free_when_the_runs_deadline_passes() -> None:
    engine, slots = FakeEngine(), InMemoryAdmissionSlots()
    send(engine, slots, 1)
    send(engine, slots, 2)

    # the runs' deadline (ttl_ms 60 s) is the slot's lease: a run stopped from outside does not hold it forever
    with pytest.raises(AtCapacityError):
        send(engine, slots, 3, at=NOW + timedelta(milliseconds=59_999))
    assert send(engine, slots, 4, at=NOW + timedelta(milliseconds=60_000)) == "run-4"


def test_a_run_that_fails_to_start_gives_its_slot_back() -> None:
    class Refusing(FakeEngine):
        def start(self, **kwargs: object) -> str:
            raise RuntimeError("StartExecution failed")

    slots = InMemoryAdmissionSlots()
    with pytest.raises(RuntimeError):
        send(Refusing(), slots, 1)

    assert slots.slots["doc-review"] == {}


def test_retry_after_is_one_runs_processing_time_in_whole_seconds_never_zero() -> None:
    assert retry_after_s(LIMIT) == 5
    assert retry_after_s(AdmissionLimit(max_in_flight=1, window_ms=5_350)) == 6
    assert retry_after_s(AdmissionLimit(max_in_flight=1, window_ms=1)) == 1


Slots = tuple[DynamoAdmissionSlots, Any]


@pytest.fixture
def dynamo_slots() -> Iterator[Slots]:
    with mock_aws():
        table = boto3.resource("dynamodb", region_name="us-east-1").create_table(
            TableName="executions",
            KeySchema=[{"AttributeName": "execution_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "execution_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield DynamoAdmissionSlots(table), table


def test_the_table_holds_one_item_per_workflow_with_each_runs_lease(dynamo_slots: Slots) -> None:
    slots, table = dynamo_slots
    assert slots.admit("doc-review", "run-1", now_ms=NOW_MS, lease_ms=1_000, limit=2)
    assert slots.admit("doc-review", "run-2", now_ms=NOW_MS, lease_ms=1_000, limit=2)

    assert not slots.admit("doc-review", "run-3", now_ms=NOW_MS + 1, lease_ms=1_000, limit=2)
    item = table.get_item(Key={"execution_id": admission_key("doc-review")})["Item"]
    assert {run: int(until) for run, until in item["slots"].items()} == {
        "run-1": NOW_MS + 1_000,
        "run-2": NOW_MS + 1_000,
    }

    # a release frees the slot, a second release (a redelivered recorder) changes nothing
    slots.release("doc-review", "run-1")
    slots.release("doc-review", "run-1")
    slots.release("doc-review", "never-admitted")
    assert slots.admit("doc-review", "run-3", now_ms=NOW_MS + 2, lease_ms=1_000, limit=2)
    # an ended lease is dropped when the next run is admitted
    assert slots.admit("doc-review", "run-4", now_ms=NOW_MS + 1_000, lease_ms=1_000, limit=2)
    item = table.get_item(Key={"execution_id": admission_key("doc-review")})["Item"]
    assert sorted(item["slots"]) == ["run-3", "run-4"]
    # other workflows count apart
    assert slots.admit("quick-check", "run-5", now_ms=NOW_MS, lease_ms=1_000, limit=1)


class RacingTable:
    """The table as one API instance sees it while another admits a run between its first read and its write."""

    def __init__(self, table: Any, other: DynamoAdmissionSlots) -> None:
        self._table, self._other, self.reads = table, other, 0
        self.meta, self.put_item = table.meta, table.put_item

    def get_item(self, **kwargs: Any) -> Any:
        self.reads += 1
        read = self._table.get_item(**kwargs)
        if self.reads == 1:
            assert self._other.admit("doc-review", "run-2", now_ms=NOW_MS, lease_ms=1_000, limit=2)
        return read  # the first read is stale by now


def test_an_admission_that_read_a_stale_count_reads_again_instead_of_overwriting(dynamo_slots: Slots) -> None:
    slots, table = dynamo_slots
    assert slots.admit("doc-review", "run-1", now_ms=NOW_MS, lease_ms=1_000, limit=2)
    racing = RacingTable(table, DynamoAdmissionSlots(table))

    # WHEN this admission writes on its stale read (one slot free) THEN the write is refused, it reads again and
    # sees the limit reached, and run-2's slot is not overwritten
    assert not DynamoAdmissionSlots(racing).admit("doc-review", "run-3", now_ms=NOW_MS, lease_ms=1_000, limit=2)
    assert racing.reads == 2
    item = table.get_item(Key={"execution_id": admission_key("doc-review")})["Item"]
    assert sorted(item["slots"]) == ["run-1", "run-2"]


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
