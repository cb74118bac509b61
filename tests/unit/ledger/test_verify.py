from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pytest

from functions.runtime.ledger import (
    ExportError,
    LocalSigner,
    VerifyReport,
    check_entry,
    make_entry,
    read_export,
    sign_digest,
    verify_export,
)
from tests.unit.ledger.ledger_fixture import (
    T0,
    Ledger,
    at,
    decision,
    digest_at,
    digest_line,
    edited,
    entry_at,
    entry_line,
    read,
    rewrite,
)

pytestmark = pytest.mark.unit


def verify(lines: list[str], **options: Any) -> VerifyReport:
    return verify_export(read(lines), **options)


def subjects(report: VerifyReport) -> list[str]:
    return [problem.subject for problem in report.problems]


def test_untouched_export_verifies(ledger: Ledger, lines: list[str]) -> None:
    # GIVEN the untouched export (its last two entries are newer than the last digest)
    # WHEN verified against the trusted key, shortly after the last digest
    report = verify(lines, trusted_public_key_pem=ledger.signer.public_key_pem(), now=T0 + timedelta(seconds=200))

    # THEN everything holds
    assert report.ok
    assert report.problems == []
    assert report.first_problem is None
    assert (report.entries, report.digests) == (20, 3)


def test_export_round_trips_through_text(ledger: Ledger, lines: list[str]) -> None:
    # GIVEN the export text
    # WHEN read
    export = read_export(io.StringIO("".join(lines)))

    # THEN the key, every entry (grouped by chain, in seq order) and every digest come back unchanged
    assert export.public_key_pem == ledger.signer.public_key_pem()
    assert export.key_id == ledger.signer.key_id
    assert sorted(export.entries) == ["chain-00", "chain-01", "chain-02"]
    assert export.entries["chain-01"] == ledger.chain("chain-01")
    assert export.digests == ledger.digests
    assert json.loads(lines[0]) == {
        "kind": "public_key",
        "key_id": ledger.signer.key_id,
        "pem": ledger.signer.public_key_pem(),
    }


def test_modified_record_is_found_at_the_entry(lines: list[str]) -> None:
    # GIVEN an export whose middle entry's record was edited (its hash and canonical text left alone)
    n = entry_at(lines, "chain-01", 3)
    lines[n] = edited(lines[n], lambda obj: obj["record"].update(status="FAILED"))

    # WHEN verified
    report = verify(lines)

    # THEN the first problem is that entry, and why
    assert not report.ok
    assert report.first_problem is not None
    assert report.first_problem.subject == "entry chain-01#3"
    assert report.first_problem.reason == "record differs from the hashed canonical text"


def test_modified_and_rehashed_entry_breaks_the_next_link(ledger: Ledger, lines: list[str]) -> None:
    # GIVEN an entry re-made with another record and its own hash recomputed (but not its successors')
    original = ledger.chain("chain-01")[2]
    forged = make_entry(
        **(original.model_dump(include={"chain_id", "seq", "record_id", "prev_hash", "appended_at"})),
        record={**original.record, "status": "FAILED"},
    )
    lines[entry_at(lines, "chain-01", 3)] = entry_line(forged)

    # WHEN verified
    report = verify(lines)

    # THEN the next entry no longer links to it, and the digest that covers it no longer matches
    assert report.first_problem is not None
    assert report.first_problem.subject == "entry chain-01#4"
    assert "does not link to chain-01#3" in report.first_problem.reason
    assert "digest 2" in subjects(report)


def test_deleted_entry_is_reported_missing(lines: list[str]) -> None:
    # GIVEN an export with a middle entry deleted
    del lines[entry_at(lines, "chain-02", 4)]

    # WHEN verified
    report = verify(lines)

    # THEN the gap is the first problem, named by the missing entry
    assert report.first_problem is not None
    assert report.first_problem.subject == "entry chain-02#4"
    assert "missing" in report.first_problem.reason
    assert any("which the export lacks (deleted)" in p.reason for p in report.problems if p.subject == "digest 2")


def test_inserted_entry_is_found(ledger: Ledger, lines: list[str]) -> None:
    # GIVEN a forged entry inserted mid-chain: a valid hash, linked to its predecessor, taking the next seq
    before = ledger.chain("chain-00")[2]
    forged = make_entry(
        chain_id="chain-00",
        seq=4,
        record_id="run-0/forged",
        record={**decision(0), "step_key": "forged"},
        prev_hash=before.entry_hash,
        appended_at=at(95),
    )
    n = entry_at(lines, "chain-00", 4)
    lines.insert(n, entry_line(forged))

    # WHEN verified
    report = verify(lines)

    # THEN two entries claim chain-00#4: that is the first problem
    assert report.first_problem is not None
    assert report.first_problem.subject == "entry chain-00#4"
    assert "fork" in report.first_problem.reason


def test_reordered_entries_are_found(lines: list[str]) -> None:
    # GIVEN two neighbouring entries of a chain swapped in the file
    a, b = entry_at(lines, "chain-01", 2), entry_at(lines, "chain-01", 3)
    lines[a], lines[b] = lines[b], lines[a]

    # WHEN verified
    report = verify(lines)

    # THEN the one out of place is reported, and nothing else (their content is intact)
    assert [str(p) for p in report.problems] == ["entry chain-01#2: out of order: found after chain-01#3"]


def test_truncated_tail_is_found_by_the_digest_that_covered_it(lines: list[str]) -> None:
    # GIVEN chain-02's last two entries (covered by digest 3) cut off the export
    for seq in (6, 5):
        del lines[entry_at(lines, "chain-02", seq)]

    # WHEN verified
    report = verify(lines)

    # THEN the chain itself looks whole, so the signed digest reports the truncation first
    assert report.first_problem is not None
    assert report.first_problem.subject == "digest 3"
    assert report.first_problem.reason == "covers chain-02#5..#6, which the export lacks (truncated)"
    assert not any(subject.startswith("entry") for subject in subjects(report))


def test_rewritten_chain_is_caught_only_by_the_signed_digests(ledger: Ledger, lines: list[str]) -> None:
    # GIVEN chain-01 rewritten from its first entry on, with every hash and link recomputed
    forged = rewrite(ledger.chain("chain-01"), lambda record: record.update(status="FAILED"))
    for entry in forged:
        lines[entry_at(lines, "chain-01", entry.seq)] = entry_line(entry)

    # WHEN verified
    report = verify(lines)

    # THEN every entry check passes; the first digest's Merkle root and heads expose the rewrite
    assert all(check_entry(entry) is None for entry in forged)
    assert not any(subject.startswith("entry") for subject in subjects(report))
    assert report.first_problem is not None
    assert report.first_problem.subject == "digest 1"
    assert subjects(report) == ["digest 1", "digest 1", "digest 2", "digest 2", "digest 3", "digest 3"]
    assert "chain was rewritten" in report.first_problem.reason
    assert "merkle_root does not match" in report.problems[1].reason


def test_fork_is_found(ledger: Ledger, lines: list[str]) -> None:
    # GIVEN a second entry for chain-01's head seq, linked to the same predecessor (a lost race, or a forgery)
    head, before = ledger.chain("chain-01")[-1], ledger.chain("chain-01")[-2]
    rival = make_entry(
        chain_id="chain-01",
        seq=head.seq,
        record_id="run-1/rival",
        record={**decision(1), "step_key": "rival"},
        prev_hash=before.entry_hash,
        appended_at=head.appended_at,
    )
    lines.insert(entry_at(lines, "chain-01", head.seq) + 1, entry_line(rival))

    # WHEN verified
    report = verify(lines)

    # THEN the fork is the first problem
    assert report.first_problem is not None
    assert str(report.first_problem) == f"entry chain-01#{head.seq}: fork: two entries hold seq {head.seq} of chain-01"


def test_duplicate_record_is_found(ledger: Ledger) -> None:
    # GIVEN a record appended twice (a redelivery the appender failed to recognise), on the chain's tail
    chain = ledger.chain("chain-00")
    again = make_entry(
        chain_id="chain-00",
        seq=chain[-1].seq + 1,
        record_id=chain[0].record_id,
        record=chain[0].record,
        prev_hash=chain[-1].entry_hash,
        appended_at=at(195),
    )

    # WHEN verified
    report = verify(ledger.lines(entries=[*ledger.entries, again]))

    # THEN the second copy is reported
    assert [str(p) for p in report.problems] == [
        f"entry chain-00#{again.seq}: record_id 'run-0/step-00' is recorded twice (also at chain-00#1)"
    ]


def test_stale_digest_replayed_as_current_is_found(ledger: Ledger) -> None:
    # GIVEN an export that stops at digest 1 although entries went on being appended for two more minutes
    lines = ledger.lines(digests=ledger.digests[:1])

    # WHEN verified
    report = verify(lines)

    # THEN digest 1 is reported stale: its newest entry is more than two intervals younger than it
    assert report.first_problem is not None
    assert report.first_problem.subject == "digest 1"
    assert report.first_problem.reason.startswith("stale: entries were appended until 2025-03-01T12:03:10+00:00")
    assert len(report.problems) == 1


def test_digest_older_than_two_intervals_before_now_is_stale(lines: list[str]) -> None:
    # GIVEN the untouched export, verified five minutes after its last digest (interval 60 s)
    report = verify(lines, now=T0 + timedelta(seconds=175 + 300))

    # THEN the last digest is reported stale
    assert [p.subject for p in report.problems] == ["digest 3"]
    assert "stale: the newest digest is 0:05:00 old" in report.problems[0].reason


def test_backdated_entry_after_the_last_digest_is_found(ledger: Ledger) -> None:
    # GIVEN an entry appended to a chain's tail but dated before the last digest, which does not cover it
    tail = ledger.chain("chain-02")[-1]
    late = make_entry(
        chain_id="chain-02",
        seq=tail.seq + 1,
        record_id="run-2/late",
        record={**decision(2), "step_key": "late"},
        prev_hash=tail.entry_hash,
        appended_at=at(170),
    )

    # WHEN verified
    report = verify(ledger.lines(entries=[*ledger.entries, late]))

    # THEN it is reported as not covered
    assert [str(p) for p in report.problems] == [
        f"entry chain-02#{late.seq}: chain-02#{late.seq} not covered by any digest, though appended before digest 3"
    ]


def test_digest_signed_by_another_key_is_found(ledger: Ledger, lines: list[str]) -> None:
    # GIVEN digest 2 re-signed by a key the export does not carry (under the same key id)
    impostor = LocalSigner.generate(key_id=ledger.signer.key_id)
    lines[digest_at(lines, 2)] = digest_line(sign_digest(ledger.digests[1].body, impostor))

    # WHEN verified
    report = verify(lines)

    # THEN the signature fails
    assert [str(p) for p in report.problems] == ["digest 2: signature does not verify under the public key"]


def test_swapped_public_key_is_found_against_the_trusted_key(ledger: Ledger) -> None:
    # GIVEN an export whose digests were all re-signed by an attacker who also swapped in their public key
    impostor = LocalSigner.generate(key_id=ledger.signer.key_id)
    resigned = [sign_digest(d.body, impostor) for d in ledger.digests]
    lines = ledger.lines(digests=resigned, public_key_pem=impostor.public_key_pem())

    # WHEN verified on its own terms, and against the trusted key
    alone = verify(lines)
    trusted = verify(lines, trusted_public_key_pem=ledger.signer.public_key_pem())

    # THEN on its own it is consistent; against the trusted key the swapped key is the first problem
    assert alone.ok
    assert not trusted.ok
    assert trusted.first_problem is not None
    assert trusted.first_problem.subject == "export"
    assert "not the trusted public key" in trusted.first_problem.reason
    assert subjects(trusted)[1:] == ["digest 1", "digest 2", "digest 3"]


def test_modified_digest_body_is_found(lines: list[str]) -> None:
    # GIVEN digest 2's body edited (its signed canonical text left alone)
    n = digest_at(lines, 2)
    lines[n] = edited(lines[n], lambda obj: obj["body"].update(merkle_root="ab" * 32))

    # WHEN verified
    report = verify(lines)

    # THEN the edit is found, and the signed text (which still verifies) is what the checks use
    assert [str(p) for p in report.problems] == ["digest 2: body differs from the signed body_canonical"]


def test_modified_signed_digest_text_is_found(lines: list[str]) -> None:
    # GIVEN digest 2's body and its canonical text edited alike
    def change(obj: dict[str, Any]) -> None:
        obj["body"]["interval_s"] = 3600
        obj["body_canonical"] = obj["body_canonical"].replace('"interval_s":60', '"interval_s":3600')

    n = digest_at(lines, 2)
    lines[n] = edited(lines[n], change)

    # WHEN verified
    report = verify(lines)

    # THEN the signature no longer holds, and the next digest no longer links to it
    assert [str(p) for p in report.problems][:2] == [
        "digest 2: signature does not verify under the public key",
        "digest 2: digest_hash is not the SHA-256 of body_canonical",
    ]
    assert "digest 3: previous_digest_hash does not link to digest 2" in [str(p) for p in report.problems]


def test_missing_middle_digest_is_found(ledger: Ledger) -> None:
    # GIVEN an export without digest 2
    lines = ledger.lines(digests=[ledger.digests[0], ledger.digests[2]])

    # WHEN verified
    report = verify(lines)

    # THEN the break in the digest chain comes first, then the entries only digest 2 covered
    assert [str(p) for p in report.problems] == [
        "digest 3: digest 2 missing before it: the digest chain is broken",
        "entry chain-00#3: chain-00#3..#4 not covered by any digest, though appended before digest 3",
        "entry chain-01#3: chain-01#3..#4 not covered by any digest, though appended before digest 3",
        "entry chain-02#3: chain-02#3..#4 not covered by any digest, though appended before digest 3",
    ]


def test_export_without_digests_signs_nothing(ledger: Ledger) -> None:
    # GIVEN entries and no digest
    # WHEN verified
    # THEN nothing vouches for them
    report = verify(ledger.lines(digests=[]))
    assert [str(p) for p in report.problems] == ["export: no digest: nothing signs these entries"]


def test_unreadable_public_key_is_reported(ledger: Ledger) -> None:
    # GIVEN an export whose key line holds no key
    report = verify(ledger.lines(public_key_pem="not a key"))

    # THEN the key is the first problem and no digest verifies
    assert subjects(report) == ["export", "digest 1", "digest 2", "digest 3"]


def test_trusted_key_must_be_a_key(lines: list[str]) -> None:
    # GIVEN a trusted key that is not a key
    # WHEN verifying
    # THEN the caller is told, rather than every digest failing
    with pytest.raises(ValueError, match="trusted_public_key_pem"):
        verify(lines, trusted_public_key_pem="not a key")


@pytest.mark.parametrize(
    ("index", "replace", "message"),
    [
        (3, lambda line: "{not json\n", "line 4: not JSON"),
        (3, lambda line: edited(line, lambda obj: None)[:60] + "\n", "line 4: not JSON"),  # the writer's layout, cut
        (3, lambda line: "[1, 2]\n", "line 4: not a JSON object"),
        (3, lambda line: edited(line, lambda obj: obj.update(kind="gossip")), "line 4: unknown kind 'gossip'"),
        (3, lambda line: edited(line, lambda obj: obj.update(seq="3")), "line 4: not a valid entry: seq"),
        (3, lambda line: edited(line, lambda obj: obj.update(note="x")), "line 4: not a valid entry: note"),
        (-1, lambda line: edited(line, lambda obj: obj["body"].pop("seq")), "line 24: not a valid digest: body.seq"),
        (0, lambda line: edited(line, lambda obj: obj.pop("pem")), "line 1: a public_key line holds"),
    ],
)
def test_malformed_line_is_refused_by_number(lines: list[str], index: int, replace: Any, message: str) -> None:
    # GIVEN an export with one malformed line
    lines[index] = replace(lines[index])

    # WHEN read
    # THEN the error names the line and what is wrong with it
    with pytest.raises(ExportError, match=message):
        read(lines)


def test_the_writers_layout_and_any_other_read_alike(lines: list[str]) -> None:
    # GIVEN the same export in the writer's compact layout (read on its fast path) and re-spaced by another tool
    spaced = [json.dumps(json.loads(line)) + "\n" for line in lines]
    assert lines[3].startswith('{"kind":"entry",')
    assert not spaced[3].startswith('{"kind":"entry",')

    # WHEN both are read
    # THEN they hold the same entries and digests, and an entry line before the key line is still refused
    assert read(lines) == read(spaced)
    with pytest.raises(ExportError, match="line 1: the public_key line must come first"):
        read(lines[3:])


def test_public_key_line_must_come_first_and_once(lines: list[str]) -> None:
    # GIVEN exports without the key line first, and with a second key line
    # WHEN read
    # THEN both are refused at the offending line
    with pytest.raises(ExportError, match="line 1: the public_key line must come first"):
        read(lines[1:])
    with pytest.raises(ExportError, match="line 25: the public_key line must come first, once"):
        read([*lines, lines[0]])


def test_empty_export_is_refused() -> None:
    # GIVEN a file with nothing in it
    # WHEN read
    # THEN it is refused
    with pytest.raises(ExportError, match="no public_key line"):
        read(["\n"])


def test_report_serialises_with_its_verdict(lines: list[str]) -> None:
    # GIVEN a report with a problem
    # WHEN dumped to JSON-ready data
    # THEN the verdict and the problems are in it
    del lines[entry_at(lines, "chain-02", 4)]
    dumped = verify(lines).model_dump()
    assert dumped["ok"] is False
    assert dumped["problems"][0] == {
        "subject": "entry chain-02#4",
        "reason": "chain-02#4 missing: deleted from the chain",
    }


def test_forged_huge_seq_costs_nothing(ledger: Ledger) -> None:
    # GIVEN an entry claiming seq 10**12, and an unsigned digest claiming to cover 10**12 entries
    tail = ledger.chain("chain-00")[-1]
    far = make_entry(
        chain_id="chain-00",
        seq=10**12,
        record_id="run-0/far",
        record={"x": 1},
        prev_hash=tail.entry_hash,
        appended_at=at(199),
    )
    lines = ledger.lines(entries=[*ledger.entries, far])
    n = digest_at(lines, 3)
    lines[n] = edited(
        lines[n], lambda obj: obj.update(body_canonical=obj["body_canonical"].replace("[5,6]", "[5,1000000000000]"))
    )

    # WHEN verified
    report = verify(lines)

    # THEN it finishes at once, reporting the gap as one run and the digest as unsigned
    found = [str(p) for p in report.problems]
    assert "entry chain-00#8: chain-00#8..#999999999999 missing: deleted from the chain" in found
    assert "digest 3: signature does not verify under the public key" in found
