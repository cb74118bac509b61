"""`agentplane audit verify`: empty exports, trust on first use, checkpoints against rollback, digest age."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from functions.api.audit import export
from functions.ledger_appender.service import append_record
from functions.ledger_digest.service import run_digest
from functions.runtime.ledger import LocalSigner, key_line
from functions.runtime.ledger.digest import key_fingerprint
from functions.runtime.ledger_store import InMemoryDigestArchive, InMemoryLedgerStore
from infra import cli

pytestmark = pytest.mark.unit

INTERVAL_S = 900


class Plane:
    """A ledger as the plane keeps it, appended to and digested at chosen times before now."""

    def __init__(self) -> None:
        self.store, self.archive, self.signer = InMemoryLedgerStore(), InMemoryDigestArchive(), LocalSigner.generate()
        self.runs = 0

    def append(self, count: int, *, age_s: float) -> None:
        at = (datetime.now(UTC) - timedelta(seconds=age_s)).isoformat()
        for _ in range(count):
            self.runs += 1
            record = {"correlation_id": f"run-{self.runs}", "step_key": f"run-{self.runs}/Intake", "actor": "agent:x"}
            append_record({**record, "trace_id": "t"}, store=self.store, now=lambda: at)

    def digest(self, *, age_s: float) -> None:
        at = (datetime.now(UTC) - timedelta(seconds=age_s)).isoformat()
        run_digest(store=self.store, signer=self.signer, archive=self.archive, now=at, interval_s=INTERVAL_S)

    def export_to(self, path: Path) -> Path:
        text, following = export(
            store=self.store,
            archive=self.archive,
            public_key_pem=self.signer.public_key_pem(),
            key_id=self.signer.key_id,
            page_bytes=10**9,
        )
        assert following is None
        path.write_text(text, encoding="utf-8")
        return path


def verify(*args: str) -> int:
    return cli.main(["audit", "verify", *args])


def err_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


def fresh(tmp_path: Path) -> tuple[Plane, Path]:
    plane = Plane()
    plane.append(3, age_s=120)
    plane.digest(age_s=60)
    return plane, plane.export_to(tmp_path / "ledger.jsonl")


def pinned(plane: Plane, tmp_path: Path) -> Path:
    key = tmp_path / "trusted.pem"
    key.write_text(plane.signer.public_key_pem())
    return key


def test_an_export_with_no_entries_is_refused_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an export holding only its key line, and the key pinned
    signer = LocalSigner.generate()
    empty = tmp_path / "empty.jsonl"
    empty.write_text(key_line(public_key_pem=signer.public_key_pem(), key_id=signer.key_id))
    key = tmp_path / "trusted.pem"
    key.write_text(signer.public_key_pem())

    # WHEN verified without and with --allow-empty
    refused = verify(str(empty), "--public-key", str(key))
    refusal = err_lines(capsys)
    allowed = verify(str(empty), "--public-key", str(key), "--allow-empty")

    # THEN it fails in one line unless an empty ledger is expected
    assert refused == 1
    assert refusal == [
        "agentplane: ledger does NOT verify: export: holds no entries: an empty ledger, or all of it withheld "
        "(1 problem(s))"
    ]
    assert allowed == 0
    assert "verified: 0 entries, 0 digests" in capsys.readouterr().out


def test_without_a_pinned_key_it_warns_of_trust_on_first_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a fresh, intact export
    plane, ledger = fresh(tmp_path)

    # WHEN verified without a pinned key, then with it
    unpinned = verify(str(ledger))
    warned = err_lines(capsys)
    with_key = verify(str(ledger), "--public-key", str(pinned(plane, tmp_path)))

    # THEN both verify; only the first warns, in one line naming the key's fingerprint
    assert unpinned == with_key == 0
    assert len(warned) == 1
    assert warned[0].startswith("agentplane: warning: no pinned key: trusting the export's own key")
    assert key_fingerprint(plane.signer.public_key_pem()) in warned[0]
    assert err_lines(capsys) == []


def test_a_checkpoint_is_kept_and_a_rollback_behind_it_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the export as it was at digest 1, and the export after the ledger grew and digest 2 was signed
    plane = Plane()
    plane.append(2, age_s=300)
    plane.digest(age_s=280)
    earlier = plane.export_to(tmp_path / "earlier.jsonl")
    plane.append(2, age_s=200)
    plane.digest(age_s=100)
    later = plane.export_to(tmp_path / "later.jsonl")
    key, checkpoint = pinned(plane, tmp_path), tmp_path / "checkpoint.json"

    # WHEN the later export is verified keeping a checkpoint, and then the earlier one is (with the key pinned)
    first = verify(str(later), "--public-key", str(key), "--checkpoint", str(checkpoint))
    kept = checkpoint.read_text()
    capsys.readouterr()
    second = verify(str(earlier), "--public-key", str(key), "--checkpoint", str(checkpoint))

    # THEN the first writes the checkpoint at digest 2; the earlier export, on its own a valid ledger, is refused
    # as a rollback in one line, and the checkpoint is left as it was
    assert first == 0
    assert json.loads(kept)["digest_seq"] == 2
    assert json.loads(kept)["tree_size"] == 2
    assert second == 1
    [line] = err_lines(capsys)
    assert line.startswith("agentplane: ledger does NOT verify: checkpoint: rolled back: the newest digest is 1, ")
    assert checkpoint.read_text() == kept
    assert verify(str(earlier), "--public-key", str(key)) == 0


def test_a_checkpoint_moves_on_and_pins_the_key_first_used(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a checkpoint written on first use (no key pinned), and the ledger grown since
    plane, ledger = fresh(tmp_path)
    checkpoint = tmp_path / "checkpoint.json"
    assert verify(str(ledger), "--checkpoint", str(checkpoint)) == 0
    assert "trusting the export's own key" in capsys.readouterr().err
    plane.append(1, age_s=30)
    plane.digest(age_s=10)
    plane.export_to(ledger)

    # WHEN verified again against the checkpoint, and then an export re-signed under another key is
    moved = verify(str(ledger), "--checkpoint", str(checkpoint))
    output = capsys.readouterr()
    forged = Plane()
    forged.append(4, age_s=30)
    forged.digest(age_s=10)
    forged.digest(age_s=5)
    swapped = verify(str(forged.export_to(tmp_path / "forged.jsonl")), "--checkpoint", str(checkpoint))

    # THEN the checkpoint moved to digest 2 with no trust-on-first-use warning (the checkpoint pins the key),
    # and the export under another key is refused
    assert moved == 0
    assert output.err == ""
    assert f"checkpoint {checkpoint} now at digest 2" in output.out
    assert json.loads(checkpoint.read_text())["digest_seq"] == 2
    assert swapped == 1
    [line] = err_lines(capsys)
    assert "checkpoint: the export's key (fingerprint " in line


def test_a_failed_checkpoint_write_leaves_the_old_one_and_no_temp_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a kept checkpoint, a grown ledger, and a disk that fails while the new checkpoint is written
    plane, ledger = fresh(tmp_path)
    checkpoint = tmp_path / "checkpoint.json"
    assert verify(str(ledger), "--checkpoint", str(checkpoint)) == 0
    kept = checkpoint.read_text()
    plane.append(1, age_s=30)
    plane.digest(age_s=10)
    plane.export_to(ledger)
    capsys.readouterr()

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)

    # WHEN verified
    code = verify(str(ledger), "--checkpoint", str(checkpoint))

    # THEN one line says so, the old checkpoint is whole, and nothing else is left beside it
    assert code == 1
    assert err_lines(capsys)[-1] == f"agentplane: cannot write checkpoint {checkpoint}: No space left on device"
    assert checkpoint.read_text() == kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.json", "ledger.jsonl"]


def test_a_file_that_is_not_a_checkpoint_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, ledger = fresh(tmp_path)
    checkpoint = tmp_path / "checkpoint.json"
    checkpoint.write_text('{"digest_seq": "three"}')

    code = verify(str(ledger), "--checkpoint", str(checkpoint))

    assert code == 1
    [line] = err_lines(capsys)
    assert line.startswith(f"agentplane: {checkpoint} is not an audit checkpoint (")


def test_a_public_key_file_without_a_key_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, ledger = fresh(tmp_path)
    key = tmp_path / "trusted.pem"
    key.write_text("not a key")

    code = verify(str(ledger), "--public-key", str(key))

    assert code == 1
    assert err_lines(capsys) == [f"agentplane: {key} holds no P-256 public key in PEM"]


def test_an_old_newest_digest_is_a_warning_or_with_require_fresh_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an intact export whose newest digest is three hours old (the schedule's interval is 15 minutes)
    plane = Plane()
    plane.append(3, age_s=3 * 3600 + 60)
    plane.digest(age_s=3 * 3600)
    ledger = plane.export_to(tmp_path / "ledger.jsonl")
    key = pinned(plane, tmp_path)

    # WHEN the file is verified, then with --require-fresh
    lenient = verify(str(ledger), "--public-key", str(key))
    warned = err_lines(capsys)
    strict = verify(str(ledger), "--public-key", str(key), "--require-fresh")

    # THEN the file verifies with one warning naming the age; required fresh, it fails in one line
    assert lenient == 0
    assert len(warned) == 1
    assert warned[0].startswith("agentplane: warning: digest 1: stale: the newest digest is 3:00:")
    assert f"more than 2 x {INTERVAL_S}s" in warned[0]
    assert strict == 1
    [line] = err_lines(capsys)
    assert line.startswith("agentplane: ledger does NOT verify: digest 1: stale: the newest digest is 3:00:")


def test_an_export_is_read_as_utf8_and_a_file_that_is_not_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an intact export whose records hold non-ASCII text
    plane = Plane()
    append_record(
        {"correlation_id": "run-é", "step_key": "run-é/Intake", "actor": "agent:rédacteur", "trace_id": "t"},
        store=plane.store,
        now=lambda: (datetime.now(UTC) - timedelta(seconds=120)).isoformat(),
    )
    plane.digest(age_s=60)
    ledger = plane.export_to(tmp_path / "ledger.jsonl")
    # AND a file that is not UTF-8 at all
    binary = tmp_path / "ledger.bin"
    binary.write_bytes(b"\xff\xfe\x00garbage\n")

    # WHEN each is verified
    intact = verify(str(ledger), "--public-key", str(pinned(plane, tmp_path)))
    capsys.readouterr()
    refused = verify(str(binary))

    # THEN the export verifies, and the other file fails in one line rather than a stack trace
    assert intact == 0
    assert refused == 1
    assert err_lines(capsys) == [f"agentplane: {binary}: not UTF-8 text, so not a ledger export"]
