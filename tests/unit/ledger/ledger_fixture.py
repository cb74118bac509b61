"""A small signed ledger for the ledger tests (3 chains, 20 entries, 3 digests) and ways to tamper with its export.

Timeline (seconds after T0, digest interval 60 s): entry i is appended at 10 * i on chain ``chain-0{i % 3}``;
digests are made at 55, 115 and 175, so entries 18 and 19 (at 180 and 190) are not digested yet.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from functions.runtime.ledger import (
    GENESIS_HASH,
    ChainHead,
    Export,
    LedgerEntry,
    LocalSigner,
    SignedDigest,
    build_digest,
    make_entry,
    read_export,
    record_id_for,
    sign_digest,
    write_export,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
INTERVAL_S = 60
ENTRY_COUNT = 20
DIGEST_TIMES = (55, 115, 175)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def decision(i: int) -> dict[str, Any]:
    """A decision record as the recorder writes it (numbers arrive from DynamoDB as Decimal)."""
    run = f"run-{i % 3}"
    return {
        "correlation_id": run,
        "step_key": f"step-{i // 3:02d}",
        "trace_id": f"trace-{i % 3}",
        "agent": "risk-scorer",
        "status": "SUCCEEDED",
        "actor": "agent:risk-scorer",
        "duration_ms": Decimal("12.5"),
        "tokens": Decimal(i * 100),
        "approved": i % 2 == 0,
        "output_json": json.dumps({"score": i, "note": "café ☕"}),
    }


@dataclass(frozen=True)
class Ledger:
    signer: LocalSigner
    entries: list[LedgerEntry]  # in append order
    digests: list[SignedDigest]

    def chain(self, chain_id: str) -> list[LedgerEntry]:
        return [entry for entry in self.entries if entry.chain_id == chain_id]

    def lines(
        self,
        *,
        entries: Sequence[LedgerEntry] | None = None,
        digests: Sequence[SignedDigest] | None = None,
        public_key_pem: str | None = None,
    ) -> list[str]:
        """The export's lines: the key, the entries chain by chain in seq order, the digests."""
        chosen = sorted(self.entries, key=lambda e: (e.chain_id, e.seq)) if entries is None else entries
        buffer = io.StringIO()
        write_export(
            buffer,
            public_key_pem=self.signer.public_key_pem() if public_key_pem is None else public_key_pem,
            key_id=self.signer.key_id,
            entries=chosen,
            digests=self.digests if digests is None else digests,
        )
        return buffer.getvalue().splitlines(keepends=True)


def append(
    entries: list[LedgerEntry],
    heads: dict[str, ChainHead],
    *,
    chain_id: str,
    record: dict[str, Any],
    appended_at: str,
) -> LedgerEntry:
    """Append to a chain as the appender does: next seq after the head, linked to the head's hash."""
    head = heads.get(chain_id)
    entry = make_entry(
        chain_id=chain_id,
        seq=head.seq + 1 if head else 1,
        record_id=record_id_for(record["correlation_id"], record["step_key"]),
        record=record,
        prev_hash=head.entry_hash if head else GENESIS_HASH,
        appended_at=appended_at,
    )
    entries.append(entry)
    heads[chain_id] = ChainHead(seq=entry.seq, entry_hash=entry.entry_hash)
    return entry


def build_ledger(signer: LocalSigner) -> Ledger:
    entries: list[LedgerEntry] = []
    digests: list[SignedDigest] = []
    heads: dict[str, ChainHead] = {}
    since: list[LedgerEntry] = []
    times = list(DIGEST_TIMES)
    for i in range(ENTRY_COUNT):
        while times and times[0] <= 10 * i:
            digests.append(_digest(signer, digests, since, heads, times.pop(0)))
            since = []
        since.append(append(entries, heads, chain_id=f"chain-0{i % 3}", record=decision(i), appended_at=at(10 * i)))
    return Ledger(signer=signer, entries=entries, digests=digests)


def _digest(
    signer: LocalSigner,
    digests: list[SignedDigest],
    since: list[LedgerEntry],
    heads: dict[str, ChainHead],
    seconds: float,
) -> SignedDigest:
    body = build_digest(
        seq=len(digests) + 1,
        previous=digests[-1] if digests else None,
        entries_since=since,
        heads=dict(heads),
        created_at=at(seconds),
        interval_s=INTERVAL_S,
        key_id=signer.key_id,
    )
    return sign_digest(body, signer)


def read(lines: Sequence[str]) -> Export:
    return read_export(lines)


def find(lines: Sequence[str], kind: str, predicate: Callable[[dict[str, Any]], bool]) -> int:
    """Index of the one line of ``kind`` that ``predicate`` picks."""
    hits = [n for n, line in enumerate(lines) if (obj := json.loads(line))["kind"] == kind and predicate(obj)]
    assert len(hits) == 1, hits
    return hits[0]


def entry_at(lines: Sequence[str], chain_id: str, seq: int) -> int:
    return find(lines, "entry", lambda obj: obj["chain_id"] == chain_id and obj["seq"] == seq)


def digest_at(lines: Sequence[str], seq: int) -> int:
    return find(lines, "digest", lambda obj: obj["body"]["seq"] == seq)


def edited(line: str, change: Callable[[dict[str, Any]], None]) -> str:
    obj = json.loads(line)
    change(obj)
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


def entry_line(entry: LedgerEntry) -> str:
    return json.dumps({"kind": "entry", **entry.model_dump()}, ensure_ascii=False) + "\n"


def digest_line(digest: SignedDigest) -> str:
    return json.dumps({"kind": "digest", **digest.model_dump(mode="json")}) + "\n"


def rewrite(entries: Sequence[LedgerEntry], change: Callable[[dict[str, Any]], None]) -> list[LedgerEntry]:
    """The chain an attacker would write: every record passed through ``change``, hashes and links recomputed."""
    out: list[LedgerEntry] = []
    for entry in sorted(entries, key=lambda e: e.seq):
        record = dict(entry.record)
        change(record)
        out.append(
            make_entry(
                chain_id=entry.chain_id,
                seq=entry.seq,
                record_id=entry.record_id,
                record=record,
                prev_hash=out[-1].entry_hash if out else GENESIS_HASH,
                appended_at=entry.appended_at,
            )
        )
    return out
