"""The ledger appender: each decision record lands once, in one chain that never forks."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from functions.ledger_appender.service import LedgerContentionError, append_record, process_stream_batch
from functions.runtime.ledger import GENESIS_HASH, LedgerEntry, check_entry, make_entry
from functions.runtime.ledger_store import AppendOutcome, InMemoryLedgerStore

pytestmark = pytest.mark.unit

RUN = "run-1"
TRACE = "1-6b000000-0123456789abcdef01234567"


def record(step: str, run: str = RUN) -> dict[str, Any]:
    return {"correlation_id": run, "step_key": f"{run}/{step}", "trace_id": TRACE, "agent": "risk-scorer"}


def clock() -> Any:
    ticks = itertools.count()
    return lambda: f"2026-11-23T12:00:{next(ticks):02d}+00:00"


def chain_of(store: InMemoryLedgerStore) -> list[LedgerEntry]:
    [chain] = store.items
    return store.entries(chain)


def test_records_are_chained_in_append_order_with_links() -> None:
    store, now = InMemoryLedgerStore(), clock()

    for step in ("Intake", "VerifyClaim/0", "ScoreRisk"):
        append_record(record(step), store=store, now=now)

    entries = chain_of(store)
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[0].prev_hash == GENESIS_HASH
    assert [e.prev_hash for e in entries[1:]] == [e.entry_hash for e in entries[:-1]]
    assert all(check_entry(e) is None for e in entries)


def test_a_redelivered_record_adds_nothing() -> None:
    store, now = InMemoryLedgerStore(), clock()

    first = append_record(record("Intake"), store=store, now=now)
    again = append_record(record("Intake"), store=store, now=now)

    assert (first.outcome, again.outcome) == ("appended", "duplicate")
    assert len(chain_of(store)) == 1


def test_out_of_order_delivery_chains_each_record_once() -> None:
    store, now = InMemoryLedgerStore(), clock()
    steps = ["Intake", "VerifyClaim/0", "VerifyClaim/1", "ScoreRisk"]

    for step in [*reversed(steps), *steps]:  # reordered, then everything redelivered
        append_record(record(step), store=store, now=now)

    entries = chain_of(store)
    assert sorted(e.record["step_key"] for e in entries) == sorted(f"{RUN}/{s}" for s in steps)
    assert [e.seq for e in entries] == [1, 2, 3, 4]


class RacingStore(InMemoryLedgerStore):
    """A rival appender moves the head between this appender's read and its conditional write."""

    def __init__(self, rivals: int) -> None:
        super().__init__()
        self.rivals = rivals

    def append(self, entry: LedgerEntry, *, trace_id: str, expected_head_seq: int) -> AppendOutcome:
        if self.rivals:
            self.rivals -= 1
            head = self.head(entry.chain_id)
            rival = make_entry(
                chain_id=entry.chain_id,
                seq=head.seq + 1,
                record_id=f"rival-{self.rivals}",
                record={"rival": self.rivals},
                prev_hash=head.entry_hash,
                appended_at=entry.appended_at,
            )
            super().append(rival, trace_id=trace_id, expected_head_seq=head.seq)
        return super().append(entry, trace_id=trace_id, expected_head_seq=expected_head_seq)


def test_a_race_on_the_head_never_forks_the_chain() -> None:
    store = RacingStore(rivals=2)

    result = append_record(record("Intake"), store=store, now=clock())

    entries = chain_of(store)
    assert result.seq == 3
    assert [e.seq for e in entries] == [1, 2, 3]
    assert [e.prev_hash for e in entries[1:]] == [e.entry_hash for e in entries[:-1]]


def test_endless_contention_fails_the_record_instead_of_dropping_it() -> None:
    with pytest.raises(LedgerContentionError):
        append_record(record("Intake"), store=RacingStore(rivals=100), now=clock(), max_attempts=3)


def test_a_batch_stops_at_the_first_failure_and_reports_its_sequence_number() -> None:
    seen: list[str] = []

    def append_one(stream_record: Any) -> None:
        seen.append(stream_record["dynamodb"]["SequenceNumber"])
        if stream_record["dynamodb"]["SequenceNumber"] == "200":
            raise RuntimeError("throttled")

    batch = [{"dynamodb": {"SequenceNumber": n}} for n in ("100", "200", "300")]

    assert process_stream_batch(batch, append_one) == {"batchItemFailures": [{"itemIdentifier": "200"}]}
    assert seen == ["100", "200"]  # 300 is redelivered after 200, never chained ahead of it
    assert process_stream_batch(batch[:1], append_one) == {"batchItemFailures": []}
