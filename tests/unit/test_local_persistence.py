"""The local plane's journal: lines are state images, a torn last line is dropped, anything else unreadable refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.local.persistence import FORMAT, CannotRestore, Saved, StateDir, linked_name, read_journal

pytestmark = pytest.mark.unit


def _journal(path: Path, *lines: dict[str, object], tail: bytes = b"") -> Path:
    path.write_bytes(b"".join(json.dumps(line).encode() + b"\n" for line in lines) + tail)
    return path


def _record(event_id: str, seq: int) -> dict[str, object]:
    arn = "arn:aws:dynamodb:us-east-1:123456789012:table/decisions/stream/2026"
    return {"eventID": event_id, "eventSourceARN": arn, "dynamodb": {"SequenceNumber": str(seq)}}


def test_each_line_is_an_image_so_the_last_one_wins_and_replaying_changes_nothing(tmp_path: Path) -> None:
    lines = [
        {"ddb": [["t", "k1", {"v": {"S": "1"}}], ["t", "k2", {"v": {"S": "a"}}]]},
        {"ddb": [["t", "k1", {"v": {"S": "2"}}], ["t", "k2", None]]},
        {"run": {"arn": "run-1", "name": "r", "input": "{}", "started": "2026-01-01T00:00:00+00:00"}},
        {"run": {"arn": "run-2", "name": "s", "input": "{}", "started": "2026-01-01T00:00:01+00:00"}},
        {"end": {"arn": "run-1", "status": "SUCCEEDED"}},
        {"sqs": {"id": "m1", "queue": "buffer", "body": "x"}},
        {"sqs": {"id": "m1", "queue": "dlq", "body": "x"}},  # moved by its redrive policy
        {"sqs": {"id": "m2", "queue": "buffer", "body": "y"}},
        {"sqsdel": ["m2"]},
        {"ddb": [], "stream": [["fn", _record("e1", 7)], ["fn", _record("e2", 8)]]},
        {"done": [["fn", "e1"]]},
        {"event": {"id": "d1", "event": {"detail-type": "decision.recorded"}, "target": {"Arn": "fn"}}},
        {"event": {"id": "d2", "event": {"detail-type": "decision.recorded"}, "target": {"Arn": "fn"}}},
        {"event_done": ["d1"]},
    ]
    once, twice = Saved(), Saved()
    read_journal(_journal(tmp_path / "once.jsonl", *lines), once)
    read_journal(_journal(tmp_path / "twice.jsonl", *lines, *lines), twice)

    assert once == twice
    assert once.items == {"t": {"k1": {"v": {"S": "2"}}}}
    assert [r["arn"] for r in once.open_runs()] == ["run-2"]
    assert {m["id"]: m["queue"] for m in once.messages.values()} == {"m1": "dlq"}
    assert list(once.stream) == ["fn|e2"]
    assert once.stream_seq == {"decisions": 8}
    assert list(once.events) == ["d2"]


def test_an_s3_put_replaces_the_object_unless_its_bucket_keeps_versions(tmp_path: Path) -> None:
    put = {"bucket": "b", "key": "k", "blob": "x"}
    saved = Saved()
    read_journal(
        _journal(
            tmp_path / "j.jsonl",
            {"s3": {**put, "id": "1"}},
            {"s3": {**put, "id": "2"}},
            {"s3": {**put, "key": "v", "id": "3", "versioned": True}},
            {"s3": {**put, "key": "v", "id": "4", "versioned": True}},
        ),
        saved,
    )
    assert list(saved.objects["b/k"]) == ["2"]
    assert list(saved.objects["b/v"]) == ["3", "4"]


def test_a_torn_last_line_is_dropped_and_named(tmp_path: Path) -> None:
    saved = Saved()
    journal = _journal(tmp_path / "j.jsonl", {"format": FORMAT}, {"ddb": [["t", "k", {}]]}, tail=b'{"ddb": [["t"')

    dropped = read_journal(journal, saved)

    assert dropped is not None
    assert "torn journal line 3" in dropped
    assert saved.items == {"t": {"k": {}}}


def test_a_corrupt_line_before_the_last_refuses_the_dir(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    journal.write_bytes(b'{"ddb": []}\n{not json}\n{"ddb": []}\n')

    with pytest.raises(CannotRestore, match=r"journal line 2 .* is corrupt"):
        read_journal(journal, Saved())


def test_a_journal_of_another_format_refuses_the_dir(tmp_path: Path) -> None:
    with pytest.raises(CannotRestore, match=f"format {FORMAT + 1}, this plane reads format {FORMAT}"):
        read_journal(_journal(tmp_path / "j.jsonl", {"format": FORMAT + 1}), Saved())


def test_open_compacts_into_one_snapshot_and_a_new_journal(tmp_path: Path) -> None:
    first = StateDir(tmp_path).open()
    assert first.journal is not None
    first.journal.append({"ddb": [["t", "k", {"b": {"B": b"\x00\x01"}}]]})
    first.close()

    second = StateDir(tmp_path).open()
    second.close()

    assert second.summary.restored
    assert second.saved.items == {"t": {"k": {"b": {"B": b"\x00\x01"}}}}  # bytes survive the JSON round trip
    assert (tmp_path / "state" / "journal.jsonl").read_text() == json.dumps({"format": FORMAT}) + "\n"
    assert StateDir.holds_state(tmp_path)


def test_a_dir_another_plane_serves_is_refused(tmp_path: Path) -> None:
    serving = StateDir(tmp_path).open()
    try:
        with pytest.raises(CannotRestore, match="another local plane is serving it"):
            StateDir(tmp_path).open()
    finally:
        serving.close()
    StateDir(tmp_path).open().close()  # the lock dies with its holder


def test_a_snapshot_of_another_format_refuses_the_dir(tmp_path: Path) -> None:
    StateDir(tmp_path).open().close()
    (tmp_path / "state" / "format.json").write_text(json.dumps({"format": FORMAT + 1}))

    with pytest.raises(CannotRestore, match=f"state format {FORMAT + 1}"):
        StateDir(tmp_path).open()


def test_a_resumed_run_gets_a_linked_name() -> None:
    run_id = "0b0e2a7e-6c1e-4b8f-9d44-1f5a8c1e2d3f"
    assert linked_name(run_id) == f"{run_id}-r1"
    assert linked_name(f"{run_id}-r1") == f"{run_id}-r2"
