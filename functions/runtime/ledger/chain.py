"""Hash-chained ledger entries: each entry hashes its canonical JSON and links to the previous entry's hash."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import from_json

from functions.runtime.canonical import canonical_bytes, plain_json, sha256_hex
from functions.runtime.ledger._time import require_utc

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of every chain's first entry (and the ``previous_digest_hash`` of the first digest)."""

CHAINS = 16
"""How many chains records spread over: appends to different chains never contend for one head."""

HEX64 = r"^[0-9a-f]{64}$"

UtcTimestamp = Annotated[str, AfterValidator(require_utc)]
Sha256Hex = Annotated[str, Field(pattern=HEX64)]

# The fields an entry's hash covers; entry_hash and canonical are derived from them.
HASHED_FIELDS = ("chain_id", "seq", "record_id", "record", "prev_hash", "appended_at")
_HASHED_KEYS = frozenset(HASHED_FIELDS)


def chain_for(correlation_id: str, chains: int = CHAINS) -> str:
    """The chain a run's records go to: ``chain-NN``, the same for every record of one correlation id.

    One run stays on one chain, so its records keep their order; runs spread evenly over ``chains``.
    """
    if chains < 1:
        raise ValueError(f"chains must be at least 1, not {chains}")
    number = int(sha256_hex(correlation_id.encode("utf-8"))[:8], 16) % chains
    return _chain_id(number)


def chain_ids(chains: int = CHAINS) -> list[str]:
    """Every chain ``chain_for`` can name: where to look for heads without scanning the ledger."""
    return [_chain_id(n) for n in range(chains)]


def _chain_id(number: int) -> str:
    return f"chain-{number:02d}"


def record_id_for(correlation_id: str, step_key: str) -> str:
    """The record's stable id: ``<correlation_id>/<step_key>``.

    ``%`` and ``/`` in the correlation id are percent-encoded (``%25``, ``%2F``) so the first ``/``
    always ends it and two different pairs never share an id; the step key is kept as it is.
    """
    if not correlation_id or not step_key:
        raise ValueError("record ids need a correlation id and a step key")
    return f"{correlation_id.replace('%', '%25').replace('/', '%2F')}/{step_key}"


class LedgerEntry(BaseModel):
    """One link of a chain. ``canonical`` is the exact RFC 8785 text that was hashed into ``entry_hash``."""

    model_config = ConfigDict(frozen=True, extra="forbid", cache_strings="keys")  # values rarely repeat

    chain_id: str = Field(min_length=1)
    seq: int = Field(ge=1, strict=True)
    record_id: str = Field(min_length=1)
    record: dict[str, Any]
    prev_hash: Sha256Hex
    appended_at: UtcTimestamp
    entry_hash: Sha256Hex
    canonical: str


def make_entry(
    *,
    chain_id: str,
    seq: int,
    record_id: str,
    record: Mapping[str, Any],
    prev_hash: str,
    appended_at: str,
) -> LedgerEntry:
    """Canonicalise and hash a new entry (the only time its JSON is canonicalised)."""
    fields = plain_json(
        {
            "chain_id": chain_id,
            "seq": seq,
            "record_id": record_id,
            "record": record,
            "prev_hash": prev_hash,
            "appended_at": appended_at,
        }
    )
    data = canonical_bytes(fields)
    return LedgerEntry(**fields, entry_hash=sha256_hex(data), canonical=data.decode("utf-8"))


def check_entry(entry: LedgerEntry) -> str | None:
    """Why the entry is not intact, or None: its hash is the SHA-256 of its canonical text, which holds its fields.

    The stored text is hashed as it is and parsed back, never canonicalised again: that keeps a verifier at
    hashing speed. Comparison follows JSON's data model (1 and 1.0 are one number; true is not 1).
    """
    data = entry.canonical.encode("utf-8")
    if sha256_hex(data) != entry.entry_hash:
        return "entry_hash is not the SHA-256 of its canonical text"
    try:
        hashed = from_json(data, cache_strings="keys")  # json.loads' results (big ints, floats, last key wins), faster
    except ValueError:
        return "canonical text is not JSON"
    if not isinstance(hashed, dict) or hashed.keys() != _HASHED_KEYS:
        return f"canonical text does not hold exactly the fields {', '.join(HASHED_FIELDS)}"
    record = hashed["record"]
    if (  # field by field, the cheapest first; entry.seq is a strict int, so only a bool there can pass ==
        hashed["seq"] == entry.seq
        and type(hashed["seq"]) is not bool
        and hashed["chain_id"] == entry.chain_id
        and hashed["record_id"] == entry.record_id
        and hashed["prev_hash"] == entry.prev_hash
        and hashed["appended_at"] == entry.appended_at
        and record == entry.record
        and _same_kinds(record, entry.record)
    ):
        return None
    fields = {name: getattr(entry, name) for name in HASHED_FIELDS}
    differing = next(name for name in HASHED_FIELDS if not same_json(hashed[name], fields[name]))
    return f"{differing} differs from the hashed canonical text"


def same_json(left: Any, right: Any) -> bool:
    """Equality in JSON's data model: Python's ``==`` except that a bool never equals a number (``true != 1``)."""
    return bool(left == right) and _same_kinds(left, right)


def _same_kinds(left: Any, right: Any) -> bool:
    # Given left == right, only a bool standing for 0/1 can still differ; 1 and 1.0 are one JSON number.
    # Plain loops rather than all(generator): this walks every verified entry's record.
    kind = type(left)
    if kind is not type(right):
        return kind is not bool and type(right) is not bool
    if kind is dict:
        for key, item in left.items():
            if type(item) in _WALK and not _same_kinds(item, right[key]):
                return False
    elif kind is list:
        for item, other in zip(left, right, strict=True):
            if type(item) in _WALK and not _same_kinds(item, other):
                return False
    return True


_WALK = frozenset({dict, list, bool, int, float})
