"""Lineage of a trace: each step verified against its chain and the digest that covers it."""

from __future__ import annotations

import io
import json

import pytest

from functions.api.audit import content, export, lineage
from functions.api.service import ProblemError
from functions.ledger_appender.service import append_record
from functions.ledger_digest.service import run_digest
from functions.runtime.canonical import canonical_bytes, sha256_hex
from functions.runtime.ledger import LocalSigner, make_entry, read_export, verify_export
from functions.runtime.ledger_store import InMemoryDigestArchive, InMemoryLedgerStore

pytestmark = pytest.mark.unit

TRACE = "1-6b000000-0123456789abcdef01234567"
AT = "2026-11-23T12:00:00+00:00"


def ledger(steps: list[str]) -> InMemoryLedgerStore:
    store = InMemoryLedgerStore()
    for step in steps:
        record = {"correlation_id": "run-1", "step_key": f"run-1/{step}", "trace_id": TRACE, "actor": "agent:x"}
        append_record(record, store=store, now=lambda: AT)
    return store


def test_a_digested_trace_verifies_step_by_step() -> None:
    store, archive, signer = (
        ledger(["Intake", "ScoreRisk", "RecordDecision"]),
        InMemoryDigestArchive(),
        LocalSigner.generate(),
    )
    run_digest(store=store, signer=signer, archive=archive, now="2026-11-23T12:05:00+00:00", interval_s=900)

    body = lineage(TRACE, store=store, archive=archive, public_key_pem=signer.public_key_pem())

    assert body["verified"] is True
    assert [s["step"] for s in body["steps"]] == ["Intake", "ScoreRisk", "RecordDecision"]
    assert {s["verification"] for s in body["steps"]} == {"verified"}


def test_entries_not_yet_digested_are_pending() -> None:
    store, signer = ledger(["Intake"]), LocalSigner.generate()

    body = lineage(TRACE, store=store, archive=InMemoryDigestArchive(), public_key_pem=signer.public_key_pem())

    assert body["verified"] is False
    assert body["steps"][0]["verification"] == "pending-digest"


def test_a_broken_link_fails_that_step() -> None:
    store, signer = ledger(["Intake", "ScoreRisk"]), LocalSigner.generate()
    [chain] = store.items
    second = store.items[chain][2]
    store.items[chain][2] = make_entry(
        chain_id=chain, seq=2, record_id=second.record_id, record=second.record, prev_hash="f" * 64, appended_at=AT
    )

    body = lineage(TRACE, store=store, archive=InMemoryDigestArchive(), public_key_pem=signer.public_key_pem())

    assert [s["verification"] for s in body["steps"]] == ["pending-digest", "failed"]
    assert body["steps"][1]["problem"] == "does not link to the entry before it"


def test_an_unknown_trace_is_404() -> None:
    with pytest.raises(ProblemError) as missing:
        lineage(
            "1-00000000-000000000000000000000000",
            store=InMemoryLedgerStore(),
            archive=InMemoryDigestArchive(),
            public_key_pem="",
        )
    assert missing.value.status == 404


def test_the_export_comes_in_pages_that_join_into_one_verifiable_export() -> None:
    # GIVEN a ledger across several runs (so several chains), digested
    store, archive, signer = InMemoryLedgerStore(), InMemoryDigestArchive(), LocalSigner.generate()
    for run in range(12):
        for step in ("Intake", "ScoreRisk", "RecordDecision"):
            record = {"correlation_id": f"run-{run}", "step_key": f"run-{run}/{step}", "trace_id": TRACE}
            append_record({**record, "actor": "agent:x"}, store=store, now=lambda: AT)
    run_digest(store=store, signer=signer, archive=archive, now="2026-11-23T12:05:00+00:00", interval_s=900)
    settings = {"store": store, "archive": archive, "public_key_pem": signer.public_key_pem(), "key_id": signer.key_id}

    # WHEN it is read page by page with a small page size
    pages, cursor = [], None
    while True:
        page, cursor = export(**settings, cursor=cursor, page_bytes=2000)
        pages.append(page)
        if cursor is None:
            break
    whole, none_after = export(**settings, page_bytes=10**9)

    # THEN there were several pages, and together they are the one-page export, which verifies
    assert len(pages) > 3
    assert none_after is None
    assert "".join(pages) == whole
    assert pages[0].startswith('{"kind":"public_key"')
    report = verify_export(read_export(io.StringIO("".join(pages))))
    assert report.ok
    assert report.entries == 36


@pytest.mark.parametrize("cursor", ["nonsense", "chain-99:3", "chain-01:x"])
def test_a_cursor_the_export_did_not_give_is_a_400(cursor: str) -> None:
    store = ledger(["Intake"])

    with pytest.raises(ProblemError) as raised:
        export(store=store, archive=InMemoryDigestArchive(), public_key_pem="pem", key_id="k", cursor=cursor)

    assert raised.value.status == 400


class Contents:
    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def get(self, key: str) -> bytes | None:
        return self.objects.get(key)


def test_a_turns_content_is_read_by_the_digest_its_record_holds() -> None:
    body = canonical_bytes([{"text": "hello"}])
    digest = sha256_hex(body)
    store = Contents({f"conversations/{digest}.json": body, f"conversations/{'a' * 64}.json": b"[]"})

    assert content(digest, store=store) == {"sha256": digest, "content": [{"text": "hello"}]}
    with pytest.raises(ProblemError, match="64 lowercase hex") as bad:
        content("../documents/x", store=store)
    assert bad.value.status == 400
    with pytest.raises(ProblemError, match="no content is stored") as missing:
        content("b" * 64, store=store)
    assert missing.value.status == 404
    with pytest.raises(ProblemError, match="another digest"):
        content("a" * 64, store=store)  # an object that is not what its name says is never served as it
    with pytest.raises(ProblemError, match="no content is stored"):
        content(digest, store=None)  # a stack without the documents bucket


def test_a_models_turn_carries_its_summary_in_the_lineage() -> None:
    store = InMemoryLedgerStore()
    summary = {"turn": 1, "request_sha256": "1" * 64, "content_sha256": "2" * 64}
    for step, actor, output in (("Check", "agent:x", {"ok": True}), ("Check/turn/1", "model:m", summary)):
        record = {
            "correlation_id": "run-1",
            "step_key": f"run-1/{step}",
            "trace_id": TRACE,
            "actor": actor,
            "output_json": json.dumps(output),
        }
        append_record(record, store=store, now=lambda: AT)

    steps = lineage(TRACE, store=store, archive=InMemoryDigestArchive(), public_key_pem="")["steps"]

    assert ["turn" in s for s in steps] == [False, True]
    assert steps[1]["turn"] == summary
