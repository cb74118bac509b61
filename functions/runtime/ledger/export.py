"""The ledger export: JSON Lines that a verifier can check offline with nothing but the public key.

One JSON object per line, each with a ``kind``:

- line 1: ``{"kind": "public_key", "key_id": ..., "pem": ...}``, the key the digests are signed with;
- ``{"kind": "entry", "chain_id", "seq", "record_id", "record", "prev_hash", "appended_at", "entry_hash",
  "canonical"}``, one per ledger entry (normally chain by chain, in seq order);
- ``{"kind": "digest", "body": {...}, "body_canonical", "signature", "digest_hash"}``, one per signed digest.

Reading keeps the file's order within each chain, so a reordered file stays detectable.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError
from pydantic_core import from_json

from contracts.validation import first_error
from functions.runtime.ledger._nogc import collector_paused
from functions.runtime.ledger.chain import LedgerEntry
from functions.runtime.ledger.digest import SignedDigest
from functions.runtime.ledger.errors import ExportError


class TextSink(Protocol):
    def write(self, text: str, /) -> object: ...


@dataclass(frozen=True)
class Export:
    """An export as read: the key line, each chain's entries in file order, the digests in file order."""

    key_id: str
    public_key_pem: str
    entries: dict[str, list[LedgerEntry]] = field(default_factory=dict)
    digests: list[SignedDigest] = field(default_factory=list)

    def all_entries(self) -> Iterator[LedgerEntry]:
        """Every entry, chain by chain in chain order, each chain in file order."""
        for chain_id in sorted(self.entries):
            yield from self.entries[chain_id]

    @property
    def entry_count(self) -> int:
        return sum(len(chain) for chain in self.entries.values())


def _line(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n"


def key_line(*, public_key_pem: str, key_id: str) -> str:
    return _line({"kind": "public_key", "key_id": key_id, "pem": public_key_pem})


def entry_line(entry: LedgerEntry) -> str:
    return _line({"kind": "entry", **entry.model_dump()})


def digest_line(digest: SignedDigest) -> str:
    return _line({"kind": "digest", **digest.model_dump(mode="json")})


def write_export(
    fp: TextSink,
    *,
    public_key_pem: str,
    key_id: str,
    entries: Iterable[LedgerEntry],
    digests: Iterable[SignedDigest],
) -> None:
    """Write the key line, then the entries in the order given, then the digests in the order given."""
    fp.write(key_line(public_key_pem=public_key_pem, key_id=key_id))
    for entry in entries:
        fp.write(entry_line(entry))
    for digest in digests:
        fp.write(digest_line(digest))


_ENTRY_PREFIX = '{"kind":"entry",'
"""How :func:`entry_line` starts a line; other layouts of an entry (keys reordered, spaces) take the general path."""


def read_export(fp: Iterable[str]) -> Export:
    """Parse an export (a text file or any iterable of lines); :class:`ExportError` names the first bad line."""
    with collector_paused():
        return _read_export(fp)


def _entry_line(text: str, number: int) -> LedgerEntry:
    """An entry line in the writer's layout: parsed and validated in one pass, with no dict in between."""
    try:
        return LedgerEntry.model_validate_json("{" + text[len(_ENTRY_PREFIX) :])
    except ValidationError as error:
        if error.errors()[0]["type"] == "json_invalid":
            raise ExportError(f"line {number}: not JSON ({error.errors()[0]['msg']})") from None
        raise ExportError(f"line {number}: not a valid entry: {first_error(error, root='line')}") from None


def _read_export(fp: Iterable[str]) -> Export:
    key: tuple[str, str] | None = None
    entries: dict[str, list[LedgerEntry]] = {}
    digests: list[SignedDigest] = []
    for number, text in enumerate(fp, start=1):
        if text.startswith(_ENTRY_PREFIX) and key is not None:
            entry = _entry_line(text, number)
            entries.setdefault(entry.chain_id, []).append(entry)
            continue
        if not text.strip():
            continue
        try:
            line = from_json(text)
        except ValueError as error:
            raise ExportError(f"line {number}: not JSON ({error})") from None
        if not isinstance(line, dict):
            raise ExportError(f"line {number}: not a JSON object")
        kind = line.pop("kind", None)
        if kind == "public_key":
            if key is not None or entries or digests:
                raise ExportError(f"line {number}: the public_key line must come first, once")
            key_id, pem = line.get("key_id"), line.get("pem")
            if line.keys() != {"key_id", "pem"} or not isinstance(key_id, str) or not isinstance(pem, str):
                raise ExportError(f'line {number}: a public_key line holds "key_id" and "pem" strings only')
            key = (key_id, pem)
            continue
        if key is None:
            raise ExportError(f"line {number}: the public_key line must come first")
        try:
            if kind == "entry":
                entry = LedgerEntry.model_validate(line)
                entries.setdefault(entry.chain_id, []).append(entry)
            elif kind == "digest":
                digests.append(SignedDigest.model_validate(line))
            else:
                raise ExportError(f"line {number}: unknown kind {kind!r}")
        except ValidationError as error:
            raise ExportError(f"line {number}: not a valid {kind}: {first_error(error, root='line')}") from None
    if key is None:
        raise ExportError("the export is empty: it has no public_key line")
    return Export(key_id=key[0], public_key_pem=key[1], entries=entries, digests=digests)
