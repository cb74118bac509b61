"""The DynamoDB adapters of the runtime: decision records and the executions view, against moto."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from contracts.models import Decision
from functions.runtime.canonical import canonical_json, sha256_hex
from functions.runtime.decisions import DecisionRecord, DynamoDecisionStore
from functions.runtime.executions import DynamoExecutionStore, ExecutionItem
from tests.integration.fakes import TRACE_ID, Plane, scan

pytestmark = pytest.mark.integration

RUN = "3f6c2a9e-8d41-4b7a-9c05-1e2d7f4a6b80"
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def record(step_key: str, *, started: datetime = T0, output: dict[str, Any] | None = None) -> DecisionRecord:
    input_json = canonical_json({"step": step_key})
    return DecisionRecord(
        correlation_id=RUN,
        step_key=step_key,
        trace_id=TRACE_ID,
        causation_id=step_key,
        agent="risk-scorer",
        agent_version="1.0.0",
        capability="risk-scoring",
        capability_version="1.0.0",
        status="SUCCEEDED",
        actor="agent:risk-scorer",
        input_json=input_json,
        input_sha256=sha256_hex(input_json.encode()),
        output_json=canonical_json(output or {"level": "low"}),
        started_at=started,
        finished_at=started + timedelta(milliseconds=12),
        duration_ms=12.345,
    )


class PagedTable:
    """The decisions table, answering queries a few items at a time as DynamoDB does past 1 MB."""

    def __init__(self, table: Any, page_size: int) -> None:
        self._table = table
        self.page_size = page_size
        self.queries = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    def query(self, **kwargs: Any) -> Any:
        self.queries += 1
        return self._table.query(Limit=self.page_size, **kwargs)


def decision() -> Decision:
    return Decision(
        decision_id="d-1",
        workflow="doc-review",
        outcome="accept",
        risk_level="low",
        summary="all claims supported",
        decided_at=T0,
    )


def execution(execution_id: str = RUN) -> ExecutionItem:
    return ExecutionItem(
        execution_id=execution_id,
        workflow="doc-review",
        execution_arn=f"arn:aws:states:us-east-1:123456789012:execution:doc-review:{execution_id}",
        trace_id=TRACE_ID,
        submitted_at=T0.isoformat(),
        request_sha256="a" * 64,
    )


def test_decision_put_is_conditional_and_never_overwrites(plane: Plane) -> None:
    # GIVEN a recorded decision
    store = DynamoDecisionStore(plane.decisions)
    first = record(f"{RUN}/ScoreRisk", output={"level": "low"})
    assert store.put(first) is True

    # WHEN a different record with the same key is put
    written = store.put(record(f"{RUN}/ScoreRisk", started=T0 + timedelta(seconds=5), output={"level": "high"}))

    # THEN the put reports it did not write, and the first record is what the table holds
    assert written is False
    assert store.get(RUN, f"{RUN}/ScoreRisk") == first
    assert len(scan(plane.decisions)) == 1


def test_decision_round_trips_through_dynamodb_unchanged(plane: Plane) -> None:
    # GIVEN a record with a fractional duration and an output
    store = DynamoDecisionStore(plane.decisions)
    original = record(f"{RUN}/Intake", output={"claims": [1, 2], "title": "memo"})

    # WHEN it is written and read back
    store.put(original)
    found = store.get(RUN, f"{RUN}/Intake")

    # THEN nothing changed on the way (the duration is stored as text, to the microsecond), unknown keys read None
    assert found == original
    assert scan(plane.decisions)[0]["duration_ms"] == "12.345"
    assert found is not None
    assert found.output() == {"claims": [1, 2], "title": "memo"}
    assert store.get(RUN, f"{RUN}/Nope") is None


def test_decision_list_pages_through_the_run_in_start_order(plane: Plane) -> None:
    # GIVEN five steps of one run whose sort keys are not in start order, and another run's step
    paged = PagedTable(plane.decisions, page_size=2)
    store = DynamoDecisionStore(paged)
    starts = {"a-RecordDecision": 4, "b-Intake": 0, "c-VerifyClaim/1": 1, "d-VerifyClaim/0": 1, "e-ScoreRisk": 3}
    for key, second in starts.items():
        store.put(record(key, started=T0 + timedelta(seconds=second)))
    other = record("x-Intake").model_copy(update={"correlation_id": "another-run"})
    store.put(other)

    # WHEN the run's records are listed
    listed = store.list(RUN)

    # THEN every page was read, and the records come in start order (ties by step key), this run's only
    assert paged.queries >= 3
    assert [r.step_key for r in listed] == [
        "b-Intake",
        "c-VerifyClaim/1",
        "d-VerifyClaim/0",
        "e-ScoreRisk",
        "a-RecordDecision",
    ]
    assert store.list("no-such-run") == []


def test_claim_key_reserves_once_then_names_the_owner(plane: Plane) -> None:
    # GIVEN an idempotency key claimed by a first run
    store = DynamoExecutionStore(plane.executions)
    assert store.claim_key("doc-review", "key-1", execution_id="run-1", request_sha256="1" * 64) is None

    # WHEN a second run claims the same key
    owner = store.claim_key("doc-review", "key-1", execution_id="run-2", request_sha256="2" * 64)

    # THEN it learns the first run's id and request hash; the marker is no execution
    assert owner == ("run-1", "1" * 64)
    assert store.get("idempotency-key#doc-review#key-1") is None
    # AND the same key in another workflow is a different key
    assert store.claim_key("other-flow", "key-1", execution_id="run-3", request_sha256="3" * 64) is None


def test_released_key_can_be_claimed_again(plane: Plane) -> None:
    # GIVEN a key claimed for a run that then failed to start
    store = DynamoExecutionStore(plane.executions)
    store.claim_key("doc-review", "key-1", execution_id="run-1", request_sha256="1" * 64)

    # WHEN it is released
    store.release_key("doc-review", "key-1")

    # THEN the next run gets it
    assert store.claim_key("doc-review", "key-1", execution_id="run-2", request_sha256="2" * 64) is None
    assert store.claim_key("doc-review", "key-1", execution_id="run-3", request_sha256="3" * 64) == ("run-2", "2" * 64)


def test_set_decision_updates_an_existing_execution(plane: Plane) -> None:
    # GIVEN a started run
    store = DynamoExecutionStore(plane.executions)
    store.put(execution())

    # WHEN its decision is set
    store.set_decision(RUN, decision())

    # THEN the view shows it
    found = store.get(RUN)
    assert found is not None
    assert found.decision == decision()
    assert found.workflow == "doc-review"


def test_set_decision_on_a_missing_execution_raises(plane: Plane) -> None:
    # GIVEN no run with this id
    store = DynamoExecutionStore(plane.executions)

    # WHEN its decision is set THEN the conditional update fails instead of creating a half item
    with pytest.raises(ClientError) as raised:
        store.set_decision("no-such-run", decision())
    assert raised.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert scan(plane.executions) == []


def test_execution_put_refuses_to_replace_a_run(plane: Plane) -> None:
    # GIVEN a recorded run
    store = DynamoExecutionStore(plane.executions)
    store.put(execution())

    # WHEN an item with the same id is put THEN the conditional put fails
    with pytest.raises(ClientError) as raised:
        store.put(execution().model_copy(update={"workflow": "other"}))
    assert raised.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert store.get(RUN) == execution()
