"""Checkpoints: a rollback behind what was verified before is caught; an empty export is refused unless expected."""

from __future__ import annotations

from datetime import timedelta

import pytest

from functions.runtime.ledger import (
    Checkpoint,
    LocalSigner,
    checkpoint_of,
    merkle,
    verify_export,
)
from functions.runtime.ledger.checkpoint import digest_log_leaves
from functions.runtime.ledger.digest import key_fingerprint
from tests.unit.ledger.ledger_fixture import T0, Ledger, read

pytestmark = pytest.mark.unit


def rolled_back(ledger: Ledger) -> list[str]:
    """The export as of digest 2: digest 3 and every entry appended after digest 2 (at 115 s) dropped."""
    kept = [entry for entry in ledger.entries if entry.appended_at <= (T0 + timedelta(seconds=110)).isoformat()]
    return ledger.lines(entries=sorted(kept, key=lambda e: (e.chain_id, e.seq)), digests=ledger.digests[:2])


def test_a_verified_export_gives_the_checkpoint_of_its_newest_digest(ledger: Ledger, lines: list[str]) -> None:
    # GIVEN the untouched export (3 digests)
    # WHEN verified
    report = verify_export(read(lines))

    # THEN its checkpoint is digest 3 and the root of the log of the three digests, under the export's key
    assert report.ok
    assert report.checkpoint is not None
    assert report.checkpoint.digest_seq == 3
    assert report.checkpoint.digest_hash == ledger.digests[2].digest_hash
    assert report.checkpoint.tree_size == 3
    assert report.checkpoint.root == merkle.root(digest_log_leaves(ledger.digests)).hex()
    assert report.checkpoint.key_fingerprint == key_fingerprint(ledger.signer.public_key_pem())
    assert Checkpoint.model_validate_json(report.checkpoint.model_dump_json()) == report.checkpoint


def test_a_rollback_is_invisible_without_a_checkpoint_and_caught_with_one(ledger: Ledger, lines: list[str]) -> None:
    # GIVEN a checkpoint kept after verifying the whole export, and the same ledger rolled back to digest 2
    checkpoint = checkpoint_of(read(lines))
    assert checkpoint is not None
    older = read(rolled_back(ledger))

    # WHEN the rolled-back export is verified with the key pinned, shortly after digest 2, without and with it
    pinned = {"trusted_public_key_pem": ledger.signer.public_key_pem(), "now": T0 + timedelta(seconds=120)}
    alone = verify_export(older, **pinned)
    against = verify_export(older, **pinned, checkpoint=checkpoint)

    # THEN on its own it is a consistent older ledger; against the checkpoint it is a rollback, and no new
    # checkpoint is given
    assert alone.ok
    assert not against.ok
    assert [str(p) for p in against.problems] == [
        "checkpoint: rolled back: the newest digest is 2, the checkpoint already verified digest 3 "
        "(dropped digests and the entries only they cover)"
    ]
    assert against.checkpoint is None


def test_an_export_that_extends_the_checkpoint_verifies_and_moves_it_on(ledger: Ledger, lines: list[str]) -> None:
    # GIVEN a checkpoint kept at digest 2, and the ledger grown since (digest 3)
    checkpoint = checkpoint_of(read(rolled_back(ledger)))
    assert checkpoint is not None
    assert checkpoint.digest_seq == 2

    # WHEN the newer export is verified against it
    report = verify_export(read(lines), checkpoint=checkpoint)

    # THEN it verifies (its digest log extends the checkpoint's) and the checkpoint moves to digest 3
    assert report.ok
    assert report.checkpoint is not None
    assert (report.checkpoint.digest_seq, report.checkpoint.tree_size) == (3, 3)


def test_an_export_at_the_checkpoint_itself_verifies(lines: list[str]) -> None:
    checkpoint = checkpoint_of(read(lines))

    report = verify_export(read(lines), checkpoint=checkpoint)

    assert report.ok
    assert report.checkpoint == checkpoint


def test_replaced_digest_history_does_not_extend_the_checkpoint(lines: list[str]) -> None:
    # GIVEN a checkpoint whose digest log (of 2 digests) is not the export's first two digests
    checkpoint = checkpoint_of(read(lines))
    assert checkpoint is not None
    other_log = merkle.root([merkle.leaf_hash(b"another digest 1"), merkle.leaf_hash(b"another digest 2")])
    replaced = checkpoint.model_copy(update={"digest_seq": 2, "tree_size": 2, "root": other_log.hex()})

    # WHEN the export is verified against it
    report = verify_export(read(lines), checkpoint=replaced)

    # THEN the consistency proof from 2 to 3 digests fails
    assert [p.subject for p in report.problems] == ["checkpoint"]
    assert report.problems[0].reason.startswith("the digest log does not extend the checkpoint's (size 2, root ")


def test_a_checkpoint_pins_the_key_it_verified_with(ledger: Ledger, lines: list[str]) -> None:
    # GIVEN a checkpoint kept under another signing key
    checkpoint = checkpoint_of(read(lines))
    assert checkpoint is not None
    other = key_fingerprint(LocalSigner.generate().public_key_pem())

    # WHEN the export is verified against it
    report = verify_export(read(lines), checkpoint=checkpoint.model_copy(update={"key_fingerprint": other}))

    # THEN the export's key is refused as not the one trusted before
    assert [p.subject for p in report.problems] == ["checkpoint"]
    assert report.problems[0].reason.startswith("the export's key (fingerprint ")
    assert report.problems[0].reason.endswith(f"is not the key the checkpoint trusted ({other[:16]})")


def test_an_empty_export_is_refused_unless_expected(ledger: Ledger, lines: list[str]) -> None:
    # GIVEN an export holding only the key line: no entries, no digests
    empty = read(ledger.lines(entries=[], digests=[]))

    # WHEN verified, without and with allow_empty, and against a checkpoint
    refused = verify_export(empty, trusted_public_key_pem=ledger.signer.public_key_pem())
    allowed = verify_export(empty, allow_empty=True)
    against = verify_export(empty, allow_empty=True, checkpoint=checkpoint_of(read(lines)))

    # THEN it fails unless an empty ledger is expected; it has nothing to checkpoint; behind a checkpoint it is
    # a rollback even when allowed
    assert [str(p) for p in refused.problems] == ["export: holds no entries: an empty ledger, or all of it withheld"]
    assert allowed.ok
    assert allowed.checkpoint is None
    assert [p.subject for p in against.problems] == ["checkpoint"]
    assert "the newest digest is none, the checkpoint already verified digest 3" in against.problems[0].reason
