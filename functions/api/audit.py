"""Audit reads: the lineage of one trace (verified entry by entry) and the full ledger export."""

from __future__ import annotations

import io
import json
from typing import Any

from functions.api.service import ProblemError
from functions.runtime.decisions import step_name
from functions.runtime.ledger import LedgerEntry, SignedDigest, check_entry, verify_signature, write_export
from functions.runtime.ledger_store import DigestArchive, LedgerStore


def _covering(entry: LedgerEntry, digests: list[SignedDigest]) -> SignedDigest | None:
    for digest in digests:
        span = digest.body.ranges.get(entry.chain_id)
        if span is not None and span[0] <= entry.seq <= span[1]:
            return digest
    return None


def _chain_hashes(entries: list[LedgerEntry], store: LedgerStore) -> dict[tuple[str, int], str]:
    """Entry hashes from just before the trace's first entry to its last, one ranged read per chain."""
    spans: dict[str, tuple[int, int]] = {}
    for entry in entries:
        first, last = spans.get(entry.chain_id, (entry.seq, entry.seq))
        spans[entry.chain_id] = (min(first, entry.seq), max(last, entry.seq))
    return {
        (chain_id, e.seq): e.entry_hash
        for chain_id, (first, last) in spans.items()
        for e in store.entries(chain_id, after_seq=max(0, first - 2), until_seq=last)
    }


def lineage(trace_id: str, *, store: LedgerStore, archive: DigestArchive, public_key_pem: str) -> dict[str, Any]:
    """Each step of a trace as the ledger holds it: who decided, on what (digests), how long, and whether it verifies.

    An entry verifies when its hash matches its canonical bytes, it links to its predecessor, and a digest
    whose signature holds covers it. Entries appended since the last digest are reported as pending.
    """
    entries = store.entries_for_trace(trace_id)
    if not entries:
        raise ProblemError(404, "Unknown trace", f"the ledger holds nothing for trace {trace_id!r}", kind="not-found")
    digests = archive.all()
    valid = {d.body.seq: verify_signature(d, public_key_pem) for d in digests}
    hashes = _chain_hashes(entries, store)
    steps = []
    for entry in entries:
        record = entry.record
        problem = check_entry(entry)
        if problem is None and entry.seq > 1 and hashes.get((entry.chain_id, entry.seq - 1)) != entry.prev_hash:
            problem = "does not link to the entry before it"
        digest = _covering(entry, digests)
        if problem is None and digest is not None and not valid[digest.body.seq]:
            problem = f"digest {digest.body.seq} has an invalid signature"
        steps.append(
            {
                "record_id": entry.record_id,
                "step": step_name(str(record.get("step_key", "")), str(record.get("correlation_id", ""))),
                "agent": record.get("agent"),
                "agent_version": record.get("agent_version"),
                "capability": record.get("capability"),
                "actor": record.get("actor"),
                "status": record.get("status"),
                "input_sha256": record.get("input_sha256"),
                "output_sha256": record.get("output_sha256"),
                "duration_ms": record.get("duration_ms"),
                "started_at": record.get("started_at"),
                "chain": entry.chain_id,
                "seq": entry.seq,
                "entry_hash": entry.entry_hash,
                "digest": None if digest is None else digest.body.seq,
                "verification": "failed" if problem else ("pending-digest" if digest is None else "verified"),
                **({"problem": problem} if problem else {}),
                **({"route": json.loads(str(record["route_json"]))} if record.get("route_json") else {}),
            }
        )
    return {
        "trace_id": trace_id,
        "verified": all(s["verification"] == "verified" for s in steps),
        "steps": steps,
    }


def export(*, store: LedgerStore, archive: DigestArchive, public_key_pem: str, key_id: str) -> str:
    """Every entry of every chain and every digest, as JSON Lines (see functions.runtime.ledger.export)."""
    entries = [entry for chain_id in store.chains() for entry in store.entries(chain_id)]
    buffer = io.StringIO()
    write_export(buffer, public_key_pem=public_key_pem, key_id=key_id, entries=entries, digests=archive.all())
    return buffer.getvalue()
