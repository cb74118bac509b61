"""A signed digest over everything appended since the last one, plus every chain head, linked to its predecessor."""

from __future__ import annotations

from functions.runtime.ledger import ChainHead, SignedDigest, Signer, build_digest, sign_digest
from functions.runtime.ledger_store import DigestArchive, DigestCursor, DigestExistsError, LedgerStore


class DigestRaceError(RuntimeError):
    """Another run published this digest number first; this run's digest is discarded unpublished."""


def run_digest(
    *, store: LedgerStore, signer: Signer, archive: DigestArchive, now: str, interval_s: int
) -> SignedDigest:
    cursor = store.cursor()
    heads = store.chains()
    entries = [
        entry
        for chain_id, head in heads.items()
        for entry in store.entries(chain_id, after_seq=cursor.covered.get(chain_id, 0))
        if entry.seq <= head.seq  # appended after the heads were read: the next digest covers it
    ]
    body = build_digest(
        seq=cursor.seq + 1,
        previous=archive.get(cursor.seq) if cursor.seq else None,
        entries_since=entries,
        heads={chain_id: ChainHead(seq=h.seq, entry_hash=h.entry_hash) for chain_id, h in heads.items()},
        created_at=now,
        interval_s=interval_s,
        key_id=signer.key_id,
    )
    signed = sign_digest(body, signer)
    try:
        archive.put(signed)  # write-once: of two racing runs, only one publishes digest N
    except DigestExistsError:
        # Another run published digest N (and perhaps crashed before moving the cursor): adopt it.
        existing = archive.get(body.seq)
        store.advance_cursor(cursor, _cursor_after(existing))
        raise DigestRaceError(f"digest {body.seq} was published by a concurrent run") from None
    store.advance_cursor(cursor, _cursor_after(signed))
    return signed


def _cursor_after(digest: SignedDigest) -> DigestCursor:
    return DigestCursor(
        seq=digest.body.seq,
        digest_hash=digest.digest_hash,
        covered={chain_id: head.seq for chain_id, head in digest.body.heads.items()},
    )
