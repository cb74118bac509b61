"""Append decision records to their hash chain: order from the conditional head write, not stream order."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from functions.runtime.decisions import step_in_run
from functions.runtime.ledger import chain_for, make_entry, record_id_for
from functions.runtime.ledger_store import LedgerStore


class LedgerContentionError(RuntimeError):
    """The chain head kept moving: the record is reported as failed and redelivered, never dropped."""


class NotADecisionRecordError(ValueError):
    pass


@dataclass(frozen=True)
class Appended:
    outcome: Literal["appended", "duplicate"]
    record_id: str
    chain_id: str
    seq: int | None = None


def append_record(
    record: Mapping[str, Any], *, store: LedgerStore, now: Callable[[], str], max_attempts: int = 10
) -> Appended:
    """Append one decision record once; a redelivered record adds nothing."""
    try:
        correlation_id, step_key, trace_id = record["correlation_id"], record["step_key"], record["trace_id"]
    except KeyError as missing:
        raise NotADecisionRecordError(f"record lacks {missing.args[0]}") from None
    record_id = record_id_for(str(correlation_id), step_in_run(str(step_key), str(correlation_id)))
    chain_id = chain_for(str(correlation_id))
    for _ in range(max_attempts):
        head = store.head(chain_id)
        entry = make_entry(
            chain_id=chain_id,
            seq=head.seq + 1,
            record_id=record_id,
            record=dict(record),
            prev_hash=head.entry_hash,
            appended_at=now(),
        )
        outcome = store.append(entry, trace_id=str(trace_id), expected_head_seq=head.seq)
        if outcome == "appended":
            return Appended("appended", record_id, chain_id, entry.seq)
        if outcome == "duplicate":
            return Appended("duplicate", record_id, chain_id)
    raise LedgerContentionError(f"{chain_id}: head kept moving for {max_attempts} attempts appending {record_id}")


def process_stream_batch(
    records: list[Mapping[str, Any]], append_one: Callable[[Mapping[str, Any]], object]
) -> dict[str, list[dict[str, str]]]:
    """Stop at the first failure and report its sequence number: the stream redelivers from there, so records
    of one run are never chained out of order, and the ones already appended come back as duplicates."""
    for record in records:
        try:
            append_one(record)
        except Exception:
            return {"batchItemFailures": [{"itemIdentifier": str(record["dynamodb"]["SequenceNumber"])}]}
    return {"batchItemFailures": []}
