"""Scheduled digests: what was appended since the last one plus every chain head, signed and linked."""

from __future__ import annotations

import io

import pytest

from functions.ledger_appender.service import append_record
from functions.ledger_digest.service import DigestRaceError, run_digest
from functions.runtime.ledger import LocalSigner, SignedDigest, read_export, verify_export, write_export
from functions.runtime.ledger_store import InMemoryDigestArchive, InMemoryLedgerStore

pytestmark = pytest.mark.unit

TRACE = "1-6b000000-0123456789abcdef01234567"


def fill(store: InMemoryLedgerStore, runs: range) -> None:
    for run in runs:
        for step in ("Intake", "ScoreRisk"):
            rec = {"correlation_id": f"run-{run}", "step_key": f"run-{run}/{step}", "trace_id": TRACE}
            append_record(rec, store=store, now=lambda: "2026-11-23T12:00:00+00:00")


def exported(store: InMemoryLedgerStore, archive: InMemoryDigestArchive, signer: LocalSigner) -> bool:
    buffer = io.StringIO()
    entries = [e for chain in store.chains() for e in store.entries(chain)]
    write_export(
        buffer, public_key_pem=signer.public_key_pem(), key_id=signer.key_id, entries=entries, digests=archive.all()
    )
    report = verify_export(read_export(io.StringIO(buffer.getvalue())))
    return report.ok


def test_each_digest_covers_only_what_is_new_and_links_to_the_last() -> None:
    store, archive, signer = InMemoryLedgerStore(), InMemoryDigestArchive(), LocalSigner.generate()
    fill(store, range(5))

    first = run_digest(store=store, signer=signer, archive=archive, now="2026-11-23T12:05:00+00:00", interval_s=900)
    fill(store, range(5, 7))
    second = run_digest(store=store, signer=signer, archive=archive, now="2026-11-23T12:20:00+00:00", interval_s=900)

    assert (first.body.seq, second.body.seq) == (1, 2)
    assert second.body.previous_digest_hash == first.digest_hash
    covered_first = sum(last - start + 1 for start, last in first.body.ranges.values())
    covered_second = sum(last - start + 1 for start, last in second.body.ranges.values())
    assert (covered_first, covered_second) == (10, 4)
    assert set(second.body.heads) == set(store.chains())
    assert exported(store, archive, signer)


def test_a_digest_with_nothing_new_still_signs_the_heads() -> None:
    store, archive, signer = InMemoryLedgerStore(), InMemoryDigestArchive(), LocalSigner.generate()
    fill(store, range(2))
    run_digest(store=store, signer=signer, archive=archive, now="2026-11-23T12:05:00+00:00", interval_s=900)

    quiet = run_digest(store=store, signer=signer, archive=archive, now="2026-11-23T12:20:00+00:00", interval_s=900)

    assert quiet.body.ranges == {}
    assert quiet.body.heads == archive.get(1).body.heads


class PublishedFirst(InMemoryDigestArchive):
    """Another run publishes the same digest number just before this one does."""

    def __init__(self, rival: SignedDigest | None = None) -> None:
        super().__init__()
        self.rival = rival

    def put(self, digest: SignedDigest) -> None:
        if self.rival is not None:
            super().put(self.rival)
            self.rival = None
        super().put(digest)


def test_a_concurrent_digest_is_discarded_and_the_published_one_adopted() -> None:
    store, signer = InMemoryLedgerStore(), LocalSigner.generate()
    fill(store, range(3))
    rival_archive = InMemoryDigestArchive()
    rival = run_digest(
        store=store_copy(store),
        signer=signer,
        archive=rival_archive,
        now="2026-11-23T12:04:00+00:00",
        interval_s=900,
    )
    archive = PublishedFirst(rival)

    with pytest.raises(DigestRaceError):
        run_digest(store=store, signer=signer, archive=archive, now="2026-11-23T12:05:00+00:00", interval_s=900)

    assert archive.all() == [rival]
    assert store.cursor().seq == 1
    assert store.cursor().digest_hash == rival.digest_hash


def store_copy(store: InMemoryLedgerStore) -> InMemoryLedgerStore:
    twin = InMemoryLedgerStore()
    twin.items = {chain: dict(entries) for chain, entries in store.items.items()}
    twin.traces = dict(store.traces)
    twin.heads = dict(store.heads)
    twin.markers = set(store.markers)
    return twin
