"""Audit reads: the lineage of one trace (verified entry by entry), the full ledger export, and the content an
llm agent's turn records by digest."""

from __future__ import annotations

import json
import re
from typing import Any, Protocol

from contracts.capability import conversation_key
from functions.api.service import ProblemError
from functions.runtime.canonical import sha256_hex
from functions.runtime.decisions import step_name
from functions.runtime.ledger import (
    LedgerEntry,
    SignedDigest,
    check_entry,
    digest_line,
    entry_line,
    key_line,
    verify_signature,
)
from functions.runtime.ledger_store import DigestArchive, LedgerStore

SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ContentStore(Protocol):
    def get(self, key: str) -> bytes | None: ...


def content(sha256: str, *, store: ContentStore | None) -> dict[str, Any]:
    """What an llm turn sent or answered, by the digest its record holds, checked against that digest."""
    if not SHA256.match(sha256):
        raise ProblemError(400, "Bad digest", "a content digest is 64 lowercase hex characters", kind="bad-request")
    body = None if store is None else store.get(conversation_key(sha256))
    if body is None:
        raise ProblemError(404, "Unknown content", f"no content is stored under {sha256}", kind="not-found")
    if sha256_hex(body) != sha256:
        raise ProblemError(500, "Content altered", f"the object under {sha256} has another digest", kind="internal")
    return {"sha256": sha256, "content": json.loads(body)}


def _is_turn(record: dict[str, Any]) -> bool:
    """A model's turn (actor ``model:<id>``): its output is the turn's summary, content digests included."""
    return str(record.get("actor", "")).startswith("model:") and bool(record.get("output_json"))


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
                "function_version": record.get("function_version"),
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
                **({"turn": json.loads(str(record["output_json"]))} if _is_turn(record) else {}),
            }
        )
    return {
        "trace_id": trace_id,
        "verified": all(s["verification"] == "verified" for s in steps),
        "steps": steps,
    }


PAGE_BYTES = 4 * 1024 * 1024  # under Lambda's 6 MB response payload and API Gateway's 10 MB, as sent
_CURSOR = re.compile(r"^(?P<chain>[A-Za-z0-9_-]{1,64}):(?P<seq>[0-9]{1,12})$")
_DIGEST_CURSOR = re.compile(r"^digests\.(?P<after>[0-9]{1,12})$")  # '.' is never in a chain id
_HTML_ESCAPED = "<>&'"  # some JSON writers send these as \u003c (6 bytes)


def proxy_bytes(text: str) -> int:
    """The most bytes ``text`` takes as the body of a Lambda proxy response, however that is encoded.

    The response is JSON: the body is a JSON string, escaped (non-ASCII as ``\\uXXXX``, 12 bytes for an emoji;
    ``\\`` and ``"`` behind a backslash; control characters as ``\\u00XX``; HTML-safe writers also escape ``<>&'`` and
    ``/``), or base64 of its UTF-8 when the body is binary. Counting characters undercounts either by up to 12x.
    """
    escaped = len(json.dumps(text)) - 2 + 5 * sum(text.count(c) for c in _HTML_ESCAPED) + text.count("/")
    return max(escaped, 4 * -(-len(text.encode("utf-8")) // 3))


def _bad_cursor(cursor: str) -> ProblemError:
    return ProblemError(400, "Invalid cursor", f"cursor {cursor!r} is not one this export gave", kind="validation")


def export(
    *,
    store: LedgerStore,
    archive: DigestArchive,
    public_key_pem: str,
    key_id: str,
    cursor: str | None = None,
    page_bytes: int = PAGE_BYTES,
) -> tuple[str, str | None]:
    """One page of the export as JSON Lines, and the cursor of the next page (None on the last).

    Pages follow the chains in order, each chain by seq, then the digests in order; the first page starts with
    the public key, so the pages concatenated are one export (functions.runtime.ledger.export). A page holds
    at most ``page_bytes`` as sent (:func:`proxy_bytes`), except that a line larger than that goes out
    alone on its own page: every line gets out, and no line can stop the export.
    """
    chains = sorted(store.chains())
    start_chain, after_seq, after_digest = (chains[0] if chains else ""), 0, None
    if cursor is not None:
        found, digests_from = _CURSOR.match(cursor), _DIGEST_CURSOR.match(cursor)
        if digests_from is not None:
            after_digest = int(digests_from["after"])
        elif found is None or found["chain"] not in chains:
            raise _bad_cursor(cursor)
        else:
            start_chain, after_seq = found["chain"], int(found["seq"])
    page: list[str] = []
    size = 0

    def fits(line: str) -> bool:
        nonlocal size
        line_size = proxy_bytes(line)
        if page and size + line_size > page_bytes:
            return False
        page.append(line)
        size += line_size
        return True

    if cursor is None:
        fits(key_line(public_key_pem=public_key_pem, key_id=key_id))
    if after_digest is None:
        for chain_id in chains[chains.index(start_chain) :] if chains else []:
            for entry in store.entries(chain_id, after_seq=after_seq if chain_id == start_chain else 0):
                if not fits(entry_line(entry)):
                    return "".join(page), f"{chain_id}:{entry.seq - 1}"
    digests = archive.all()
    if after_digest is not None and after_digest > len(digests):
        raise _bad_cursor(str(cursor))
    for position, digest in enumerate(digests[after_digest or 0 :], start=after_digest or 0):
        if not fits(digest_line(digest)):
            return "".join(page), f"digests.{position}"
    return "".join(page), None
