"""`GET /v1/audit/export` pages: bounded by the bytes each reply takes as sent, and every line gets out."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest

from functions.api.audit import PAGE_BYTES, export, proxy_bytes
from functions.api.service import ProblemError
from functions.ledger_appender.service import append_record
from functions.ledger_digest.service import run_digest
from functions.runtime.ledger import LocalSigner, read_export, verify_export
from functions.runtime.ledger_store import InMemoryDigestArchive, InMemoryLedgerStore

pytestmark = pytest.mark.unit

TRACE = "1-6b000000-0123456789abcdef01234567"
AT = "2026-11-23T12:00:00+00:00"
LAMBDA_RESPONSE_BYTES = 6 * 1024 * 1024
# Each of these takes several bytes once escaped: multi-byte text, control characters, HTML-escaped
# characters, an emoji (a surrogate pair, 12 bytes as \uXXXX\uXXXX), quotes and backslashes (escaped twice).
AWKWARD = "é\u0000</>&'😀\"\\\u2028"


def sent_sizes(page: str) -> dict[str, int]:
    """The page's size in the proxy response as different writers send it (each at most ``proxy_bytes``)."""
    plain = json.dumps({"body": page}).encode()
    raw_utf8 = json.dumps({"body": page}, ensure_ascii=False).encode()
    html_safe = json.dumps({"body": page}).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    html_safe = html_safe.replace("'", "\\u0027").replace("/", "\\/")
    overhead = len(json.dumps({"body": ""}))
    return {
        "ascii": len(plain) - overhead,
        "utf8": len(raw_utf8) - overhead,
        "html-safe": len(html_safe.encode()) - overhead,
        "base64": len(base64.b64encode(page.encode())),
    }


def sent(text: str) -> int:
    return max(sent_sizes(text).values())


def ledger(texts: list[str], *, digests_every: int = 0) -> tuple[dict[str, Any], InMemoryLedgerStore]:
    store, archive, signer = InMemoryLedgerStore(), InMemoryDigestArchive(), LocalSigner.generate()
    for n, text in enumerate(texts):
        record = {"correlation_id": f"run-{n}", "step_key": f"run-{n}/Summarise", "trace_id": TRACE}
        append_record(
            {**record, "actor": "agent:x", "output_json": json.dumps({"summary": text})}, store=store, now=lambda: AT
        )
        if digests_every and n % digests_every == 0:
            run_digest(store=store, signer=signer, archive=archive, now=AT, interval_s=900)
    run_digest(store=store, signer=signer, archive=archive, now=AT, interval_s=900)
    settings = {"store": store, "archive": archive, "public_key_pem": signer.public_key_pem(), "key_id": signer.key_id}
    return settings, store


def pages_of(settings: dict[str, Any], page_bytes: int = PAGE_BYTES) -> list[str]:
    pages, cursor = [], None
    while True:
        page, cursor = export(**settings, cursor=cursor, page_bytes=page_bytes)
        pages.append(page)
        if cursor is None:
            return pages


def test_proxy_bytes_bounds_every_way_a_reply_is_sent() -> None:
    # GIVEN text that escapes to many more bytes than it has characters
    text = AWKWARD * 50 + "plain ascii text " * 5

    # WHEN its size as sent is counted
    counted = proxy_bytes(text)

    # THEN no writer sends more, and it is far more than the characters
    assert max(sent_sizes(text).values()) <= counted
    assert counted > 3 * len(text)


def test_pages_of_awkward_text_stay_within_a_small_budget_as_sent() -> None:
    # GIVEN entries full of characters that escape to several bytes, and a small page budget
    settings, _ = ledger([AWKWARD * (10 + 7 * n) for n in range(30)])
    budget = 20_000
    lines_whole = export(**settings, page_bytes=10**9)[0].splitlines(keepends=True)
    assert sum(sent(line) for line in lines_whole) > 1.5 * sum(len(line) for line in lines_whole)

    # WHEN the export is read page by page
    pages = pages_of(settings, budget)

    # THEN every page holding more than one line is within the budget however it is sent, and the pages join
    # into the one verifiable export
    assert len(pages) > 4
    for page in pages:
        if len(page.splitlines()) > 1:
            assert sent(page) <= budget
    report = verify_export(read_export(io.StringIO("".join(pages))))
    assert report.ok
    assert report.entries == 30


def test_an_entry_larger_than_a_page_goes_out_on_its_own_page() -> None:
    # GIVEN a small entry, an entry far larger than a page, then another small entry (one chain each)
    settings, _ = ledger(["small", AWKWARD * 2_000, "small too"])
    budget = 5_000

    # WHEN the export is read page by page
    pages = pages_of(settings, budget)

    # THEN the large entry is alone on its page, nothing is lost, and the export still verifies
    large = [page for page in pages if sent(page) > budget]
    assert len(large) == 1
    assert len(large[0].splitlines()) == 1
    assert json.loads(large[0])["kind"] == "entry"
    export_ = read_export(io.StringIO("".join(pages)))
    assert export_.entry_count == 3
    assert verify_export(export_).ok


def test_digests_are_paged_too() -> None:
    # GIVEN a ledger with many digests, more of them than one small page holds
    settings, _ = ledger([f"text {n}" for n in range(40)], digests_every=1)
    budget = 12_000
    digest_bytes = sum(sent(d.model_dump_json()) for d in settings["archive"].all())
    assert digest_bytes > 3 * budget

    # WHEN the export is read page by page
    pages = pages_of(settings, budget)

    # THEN the digest pages are within the budget too, and the pages join into the verifiable export
    for page in pages:
        assert sent(page) <= budget
    report = verify_export(read_export(io.StringIO("".join(pages))))
    assert report.ok
    assert report.digests == len(settings["archive"].all())


def test_entries_near_the_models_limits_never_push_a_page_over_the_real_budget() -> None:
    # GIVEN summaries of 100,000-character texts (the request model's limit) made of awkward characters:
    # as characters they fit one page, as sent they would take more than Lambda's 6 MB response
    text = (AWKWARD * (100_000 // len(AWKWARD) + 1))[:100_000]
    settings, _ = ledger([text] * 4)
    lines_whole = export(**settings, page_bytes=10**9)[0].splitlines(keepends=True)
    assert sum(len(line) for line in lines_whole) < PAGE_BYTES
    assert sum(sent(line) for line in lines_whole) > LAMBDA_RESPONSE_BYTES

    # WHEN the export is read at the real page budget
    pages = pages_of(settings)

    # THEN each reply as sent is within the budget (under Lambda's limit), and nothing is lost
    assert len(pages) > 1
    for page in pages:
        assert sent(page) <= PAGE_BYTES
    assert read_export(io.StringIO("".join(pages))).entry_count == 4


@pytest.mark.parametrize("cursor", ["digests.99", "digests.x", "digests.-1"])
def test_a_digest_cursor_the_export_did_not_give_is_a_400(cursor: str) -> None:
    settings, _ = ledger(["one"])

    with pytest.raises(ProblemError) as raised:
        export(**settings, cursor=cursor)

    assert raised.value.status == 400
