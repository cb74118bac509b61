from __future__ import annotations

import hashlib
import json
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from functions.runtime.canonical import canonical_bytes
from functions.runtime.ledger import (
    CHAINS,
    GENESIS_HASH,
    CanonicalizationError,
    LedgerEntry,
    chain_for,
    check_entry,
    make_entry,
    record_id_for,
)

pytestmark = pytest.mark.unit

WHEN = "2025-03-01T12:00:00+00:00"


def entry(record: dict[str, Any] | None = None, **fields: Any) -> LedgerEntry:
    args: dict[str, Any] = {
        "chain_id": "chain-07",
        "seq": 3,
        "record_id": "run-1/step-a",
        "record": {"agent": "risk-scorer", "score": Decimal("0.25"), "ok": True} if record is None else record,
        "prev_hash": "ab" * 32,
        "appended_at": WHEN,
    }
    return make_entry(**(args | fields))


def test_chain_for_is_deterministic_and_named() -> None:
    # GIVEN a correlation id
    # WHEN its chain is asked for twice
    first, second = chain_for("run-42"), chain_for("run-42")

    # THEN it is the same chain, named from the first 32 bits of the id's SHA-256
    expected = int(hashlib.sha256(b"run-42").hexdigest()[:8], 16) % CHAINS
    assert first == second == f"chain-{expected:02d}"


def test_chain_for_spreads_runs_over_every_chain() -> None:
    # GIVEN 1,600 runs
    # WHEN each is given a chain
    counts = Counter(chain_for(f"run-{n}") for n in range(1600))

    # THEN all 16 chains are used, none by more than twice its share
    assert sorted(counts) == [f"chain-{n:02d}" for n in range(16)]
    assert max(counts.values()) < 200


def test_chain_for_takes_a_chain_count() -> None:
    # GIVEN fewer chains than the default
    # WHEN runs are placed
    # THEN they use exactly those chains, and zero chains is refused
    assert {chain_for(f"run-{n}", chains=3) for n in range(100)} == {"chain-00", "chain-01", "chain-02"}
    assert chain_for("anything", chains=1) == "chain-00"
    with pytest.raises(ValueError, match="at least 1"):
        chain_for("run", chains=0)


def test_record_id_joins_correlation_and_step_unambiguously() -> None:
    # GIVEN ordinary ids, and ids with slashes that would collide if simply joined
    # WHEN record ids are made
    # THEN ordinary ids read naturally and the slashed pairs stay distinct
    assert record_id_for("run-1", "step-a") == "run-1/step-a"
    assert record_id_for("a/b", "c") == "a%2Fb/c"
    assert record_id_for("a", "b/c") == "a/b/c"
    assert record_id_for("50%", "x") == "50%25/x"
    with pytest.raises(ValueError, match="correlation id and a step key"):
        record_id_for("", "x")


def test_make_entry_hashes_the_canonical_fields() -> None:
    # GIVEN an entry made from a record holding a DynamoDB Decimal
    made = entry()

    # THEN its canonical text is the RFC 8785 form of the six hashed fields, and its hash is that text's SHA-256
    assert made.canonical.encode() == canonical_bytes(
        {
            "chain_id": "chain-07",
            "seq": 3,
            "record_id": "run-1/step-a",
            "record": {"agent": "risk-scorer", "score": 0.25, "ok": True},
            "prev_hash": "ab" * 32,
            "appended_at": WHEN,
        }
    )
    assert made.entry_hash == hashlib.sha256(made.canonical.encode()).hexdigest()
    assert made.record == {"agent": "risk-scorer", "score": 0.25, "ok": True}
    assert check_entry(made) is None


def test_entry_rebuilt_from_its_canonical_text_is_identical() -> None:
    # GIVEN an entry as the store keeps it (canonical text and hash only)
    made = entry(record={"big": Decimal(2**70), "nested": [{"x": Decimal("1.5")}]})

    # WHEN it is rebuilt from the canonical text
    rebuilt = LedgerEntry(**json.loads(made.canonical), entry_hash=made.entry_hash, canonical=made.canonical)

    # THEN it is the same entry and it checks out
    assert rebuilt == made
    assert check_entry(rebuilt) is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"record": {"agent": "someone-else", "score": 0.25, "ok": True}}, "record differs"),
        ({"record": {"agent": "risk-scorer", "score": 0.25, "ok": 1}}, "record differs"),
        ({"seq": 4}, "seq differs"),
        ({"prev_hash": "cd" * 32}, "prev_hash differs"),
        ({"appended_at": "2025-03-01T12:00:01+00:00"}, "appended_at differs"),
        ({"entry_hash": "00" * 32}, "entry_hash is not the SHA-256"),
        ({"canonical": '{"seq":3}'}, "entry_hash is not the SHA-256"),
    ],
)
def test_check_entry_finds_a_field_that_no_longer_matches_its_hash(change: dict[str, Any], reason: str) -> None:
    # GIVEN an intact entry with one field changed afterwards (true → 1 included: JSON tells them apart)
    tampered = entry().model_copy(update=change)

    # WHEN it is checked
    # THEN the reason names what no longer matches
    assert reason in (check_entry(tampered) or "")


def test_check_entry_refuses_rehashed_text_that_is_not_the_entry() -> None:
    # GIVEN canonical texts rehashed by an attacker: not JSON, and JSON with a field too many
    intact = entry()
    extra = json.dumps({**json.loads(intact.canonical), "approved_by": "mallory"})

    def rehashed(text: str) -> LedgerEntry:
        return intact.model_copy(update={"canonical": text, "entry_hash": hashlib.sha256(text.encode()).hexdigest()})

    # WHEN they are checked
    # THEN both are refused for what they are
    assert check_entry(rehashed("{not json")) == "canonical text is not JSON"
    assert "does not hold exactly the fields" in (check_entry(rehashed(extra)) or "")


def test_numbers_compare_as_json_numbers() -> None:
    # GIVEN an entry whose record holds 2.0 (written 2 by RFC 8785) read back as the float 2.0
    made = entry(record={"n": 2.0, "big": 1e300})
    as_read = made.model_copy(update={"record": {"n": 2.0, "big": 1e300}})

    # WHEN checked
    # THEN 2 and 2.0 are one JSON number
    assert made.record == {"n": 2, "big": 1e300}
    assert check_entry(as_read) is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seq", 0),
        ("seq", "3"),
        ("prev_hash", "AB" * 32),
        ("prev_hash", "ab" * 31),
        ("appended_at", "2025-03-01T12:00:00+02:00"),
        ("appended_at", "2025-03-01T12:00:00"),
        ("appended_at", "yesterday"),
        ("chain_id", ""),
    ],
)
def test_ledger_entry_refuses_malformed_fields(field: str, value: Any) -> None:
    # GIVEN an entry with one malformed field
    # WHEN it is made
    # THEN validation names the field
    with pytest.raises(ValidationError, match=field):
        entry(**{field: value})


def test_ledger_entry_accepts_both_utc_spellings() -> None:
    # GIVEN UTC written as Z and as +00:00, with and without fractions
    # WHEN entries are made
    # THEN both are accepted and check out
    assert check_entry(entry(appended_at="2025-03-01T12:00:00Z")) is None
    assert check_entry(entry(appended_at="2025-03-01T12:00:00.123456+00:00")) is None


def test_ledger_entry_refuses_unknown_fields() -> None:
    # GIVEN entry fields with one the ledger does not know (it would ride along unhashed)
    # WHEN an entry is built from them
    # THEN it is refused
    fields = {**json.loads(entry().canonical), "entry_hash": "00" * 32, "canonical": "{}", "note": "x"}
    with pytest.raises(ValidationError, match="note"):
        LedgerEntry(**fields)


def test_make_entry_refuses_a_record_json_cannot_carry() -> None:
    # GIVEN a record holding a number no double carries exactly
    # WHEN an entry is made
    # THEN it is refused, naming where
    with pytest.raises(CanonicalizationError, match="/record/amount"):
        entry(record={"amount": Decimal("0.30000000000000000001")})


def test_genesis_hash_is_64_zeros() -> None:
    # GIVEN the genesis hash
    # THEN it is 64 hex zeros: no entry hashes to it
    assert GENESIS_HASH == "0" * 64
