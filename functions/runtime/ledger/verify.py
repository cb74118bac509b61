"""Offline verification of an export: entries, chains, digests, signatures, coverage and freshness.

Every problem is collected. They come in the order that puts a root cause first: the export's key, then the
entries chain by chain (each chain by seq), then the digests in order, then coverage and staleness. A broken
entry is reported at the entry; a chain rewritten with fresh hashes and links passes every entry check and is
caught only by the signed digests (their Merkle roots and heads), so it is reported at the first such digest.

What no export can show: entries appended after the newest digest are signed by nothing yet, so dropping them
is invisible. The digest schedule bounds that window: an export whose newest entry is more than two intervals
younger than its newest digest (or, given ``now``, whose newest digest is more than two intervals old) is
reported stale. Nor can an export show that its newest digests were dropped with the entries only they cover
(a rollback): a :class:`~functions.runtime.ledger.checkpoint.Checkpoint` kept from an earlier verification can.
An export holding no entries is refused unless one is expected (``allow_empty``): everything withheld looks
like an empty ledger.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, ValidationError, computed_field

from functions.runtime.canonical import sha256_hex
from functions.runtime.ledger import merkle
from functions.runtime.ledger._nogc import collector_paused
from functions.runtime.ledger._time import parse_utc
from functions.runtime.ledger.chain import GENESIS_HASH, LedgerEntry, check_entry
from functions.runtime.ledger.checkpoint import Checkpoint, checkpoint_of, rollback_reasons
from functions.runtime.ledger.digest import (
    DigestBody,
    SignedDigest,
    digest_leaves,
    key_fingerprint,
    load_public_key,
    verify_signature,
)
from functions.runtime.ledger.export import Export

STALE_AFTER_INTERVALS = 2


class Problem(BaseModel):
    """One finding: what it is about (``entry chain-03#17``, ``digest 4`` or ``export``) and why."""

    model_config = ConfigDict(frozen=True)

    subject: str
    reason: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.reason}"


class VerifyReport(BaseModel):
    """The outcome: how much was checked and every problem found, root cause first."""

    model_config = ConfigDict(frozen=True)

    entries: int
    digests: int
    problems: list[Problem]
    checkpoint: Checkpoint | None = None  # what to keep for the next verification: set only when ``ok``

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        return self.problems[0] if self.problems else None


def _entry_subject(chain_id: str, seq: int) -> str:
    return f"entry {chain_id}#{seq}"


def _seq_runs(seqs: Iterable[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for seq in sorted(seqs):
        if runs and seq == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs


def _span(chain_id: str, first: int, last: int) -> str:
    return f"{chain_id}#{first}" if first == last else f"{chain_id}#{first}..#{last}"


@dataclass
class _Ledger:
    """The export's entries indexed for the digest checks: one entry for each (chain, seq).

    Where a fork put two entries at one seq, the one the chain or a digest goes on from stands for it, so
    the digests confirm the branch that was signed and the fork is reported once, at the entry.
    """

    signed_heads: set[str]
    chains: dict[str, dict[int, LedgerEntry]] = field(default_factory=dict)
    last_seq: dict[str, int] = field(default_factory=dict)

    def add(self, chain_id: str, first: dict[int, LedgerEntry], forks: dict[int, list[LedgerEntry]]) -> None:
        for seq, entries in forks.items():
            after = forks.get(seq + 1) or ([first[seq + 1]] if seq + 1 in first else [])
            continued = {e.prev_hash for e in after} | self.signed_heads
            first[seq] = next((e for e in entries if e.entry_hash in continued), entries[0])
        self.chains[chain_id] = first
        self.last_seq[chain_id] = max(first, default=0)

    def get(self, chain_id: str, seq: int) -> LedgerEntry | None:
        chain = self.chains.get(chain_id)
        return None if chain is None else chain.get(seq)


def _check_key(export: Export, trusted_public_key_pem: str | None, problems: list[Problem]) -> str | None:
    """The key to check signatures with: the trusted one when given, else the export's own (None if unreadable)."""
    readable = load_public_key(export.public_key_pem) is not None
    if not readable:
        problems.append(Problem(subject="export", reason="the public_key line holds no P-256 public key"))
    if trusted_public_key_pem is None:
        return export.public_key_pem if readable else None
    if readable and key_fingerprint(export.public_key_pem) != key_fingerprint(trusted_public_key_pem):
        reason = f"its public key ({export.key_id!r}) is not the trusted public key"
        problems.append(Problem(subject="export", reason=reason))
    return trusted_public_key_pem


def _check_chain(
    chain_id: str, chain: list[LedgerEntry], owners: dict[str, tuple[str, int]], ledger: _Ledger
) -> list[tuple[int, int, Problem]]:
    found: list[tuple[int, int, Problem]] = []  # (seq, rank, problem): sorted so each seq's root cause leads

    def report(seq: int, rank: int, reason: str) -> None:
        found.append((seq, rank, Problem(subject=_entry_subject(chain_id, seq), reason=reason)))

    first: dict[int, LedgerEntry] = {}  # seq -> the first entry found there
    forks: dict[int, list[LedgerEntry]] = {}  # seq -> every entry found there, where more than one was
    highest = 0
    for entry in chain:  # one pass per entry: this loop is most of a verification's time
        seq = entry.seq
        if (reason := check_entry(entry)) is not None:
            report(seq, 0, reason)
        forked = False
        if seq in first:
            same_seq = forks.setdefault(seq, [first[seq]])
            same_seq.append(entry)
            forked = len(same_seq) == 2
            if forked:
                report(seq, 1, f"fork: two entries hold seq {seq} of {chain_id}")
        else:
            first[seq] = entry
        if not forked and seq < highest:
            report(seq, 3, f"out of order: found after {chain_id}#{highest}")
        if seq > highest:
            highest = seq
        place = (chain_id, seq)
        if (owner := owners.setdefault(entry.record_id, place)) is not place:
            report(seq, 5, f"record_id {entry.record_id!r} is recorded twice (also at {owner[0]}#{owner[1]})")
    previous = 0
    for seq in sorted(first):  # gaps from the seqs present: a forged huge seq costs nothing
        if seq > previous + 1:
            report(previous + 1, 2, f"{_span(chain_id, previous + 1, seq - 1)} missing: deleted from the chain")
        previous = seq
    for entry in chain:
        if (reason := _link_problem(entry, first, forks)) is not None:
            report(entry.seq, 4, reason)
    ledger.add(chain_id, first, forks)
    return found


def _link_problem(entry: LedgerEntry, first: dict[int, LedgerEntry], forks: dict[int, list[LedgerEntry]]) -> str | None:
    """Why ``entry`` does not follow on from an entry at the seq before it (None: it does, or none is there)."""
    seq = entry.seq
    if seq == 1:
        genesis = entry.prev_hash == GENESIS_HASH
        return None if genesis else "prev_hash of a chain's first entry must be the genesis hash"
    before = first.get(seq - 1)
    if before is None or entry.prev_hash == before.entry_hash:
        return None
    if seq - 1 in forks and entry.prev_hash in {e.entry_hash for e in forks[seq - 1]}:
        return None
    return f"prev_hash does not link to {entry.chain_id}#{seq - 1} (one of them was altered)"


def _check_entries(export: Export, problems: list[Problem]) -> _Ledger:
    ledger = _Ledger(signed_heads={head.entry_hash for d in export.digests for head in d.body.heads.values()})
    owners: dict[str, tuple[str, int]] = {}
    for chain_id in sorted(export.entries):
        found = _check_chain(chain_id, export.entries[chain_id], owners, ledger)
        found.sort(key=lambda item: (item[0], item[1]))
        problems.extend(problem for _, _, problem in found)
    return ledger


def _signed_body(digest: SignedDigest, report: list[str]) -> DigestBody:
    try:
        body = digest.signed_body()
    except (ValueError, ValidationError):
        report.append("body_canonical is not a digest body")
        return digest.body
    if body != digest.body:
        report.append("body differs from the signed body_canonical")
    return body


@dataclass
class _DigestState:
    expected_seq: int = 1
    previous_hash: str = GENESIS_HASH
    covered_to: dict[str, int] = field(default_factory=dict)
    covered: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    latest: DigestBody | None = None


def _check_links(body: DigestBody, state: _DigestState, reasons: list[str]) -> bool:
    """Does the digest follow on from the one before it? False when one is missing or out of place."""
    if body.seq != state.expected_seq:
        if body.seq > state.expected_seq:
            missing = f"{state.expected_seq}" + (f"..{body.seq - 1}" if body.seq - 1 > state.expected_seq else "")
            reasons.append(f"digest {missing} missing before it: the digest chain is broken")
        else:
            reasons.append(f"out of sequence: digest {state.expected_seq} was expected here")
        return False  # its links and ranges fail as a consequence: the missing digest is the cause
    if body.previous_digest_hash != state.previous_hash:
        reasons.append(f"previous_digest_hash does not link to digest {body.seq - 1}")
    for chain_id, (first, last) in sorted(body.ranges.items()):
        expected = state.covered_to.get(chain_id, 0) + 1
        if first != expected or last < first:
            reasons.append(f"range {_span(chain_id, first, last)} does not continue from {chain_id}#{expected - 1}")
    return True


def _check_heads_follow_ranges(body: DigestBody, state: _DigestState, reasons: list[str]) -> None:
    for chain_id, (_, last) in body.ranges.items():
        state.covered_to[chain_id] = max(state.covered_to.get(chain_id, 0), last)
    for chain_id, covered_to in sorted(state.covered_to.items()):
        head = body.heads.get(chain_id)
        if head is None:
            reasons.append(f"has no head for {chain_id}")
        elif head.seq != covered_to:
            reasons.append(f"head {chain_id}#{head.seq} disagrees with the ranges, which reach {chain_id}#{covered_to}")


def _check_tree(body: DigestBody, ledger: _Ledger, reasons: list[str]) -> None:
    def lacks(chain_id: str, low: int) -> str:
        return "truncated" if low > ledger.last_seq.get(chain_id, 0) else "deleted"

    spans = sum(last - first + 1 for first, last in body.ranges.values())
    if any(last < first for first, last in body.ranges.values()) or spans + len(body.heads) != body.leaf_count:
        reasons.append(f"leaf_count {body.leaf_count} is not its ranges' {spans} entries plus {len(body.heads)} heads")
        return
    covered: list[LedgerEntry] = []
    absent: set[tuple[str, int]] = set()
    for chain_id, (first, last) in sorted(body.ranges.items()):
        for seq in range(first, last + 1):
            if (entry := ledger.get(chain_id, seq)) is None:
                absent.add((chain_id, seq))
            else:
                covered.append(entry)
        for low, high in _seq_runs(seq for c, seq in absent if c == chain_id):
            reasons.append(f"covers {_span(chain_id, low, high)}, which the export lacks ({lacks(chain_id, low)})")
    for chain_id, head in sorted(body.heads.items()):
        if ledger.get(chain_id, head.seq) is None and (chain_id, head.seq) not in absent:
            absent.add((chain_id, head.seq))
            reasons.append(f"head {chain_id}#{head.seq} is missing from the export ({lacks(chain_id, head.seq)})")
    if absent:
        return  # the tree cannot be rebuilt without those entries
    for chain_id, head in sorted(body.heads.items()):
        if (entry := ledger.get(chain_id, head.seq)) is not None and entry.entry_hash != head.entry_hash:
            reasons.append(f"head {chain_id}#{head.seq} is not the export's entry: the chain was rewritten")
    if merkle.root(digest_leaves(covered, body.heads)).hex() != body.merkle_root:
        reasons.append("merkle_root does not match the export's entries: covered entries were altered or rewritten")


def _check_digests(export: Export, key_pem: str | None, ledger: _Ledger, problems: list[Problem]) -> _DigestState:
    state = _DigestState()
    for digest in export.digests:
        reasons: list[str] = []
        signed = key_pem is not None and verify_signature(digest, key_pem)
        if not signed:
            reasons.append("signature does not verify under the public key")
        if sha256_hex(digest.body_canonical.encode("utf-8")) != digest.digest_hash:
            reasons.append("digest_hash is not the SHA-256 of body_canonical")
        body = _signed_body(digest, reasons)
        if body.key_id != export.key_id:
            reasons.append(f"names key {body.key_id!r}, the export's key is {export.key_id!r}")
        if _check_links(body, state, reasons):
            _check_heads_follow_ranges(body, state, reasons)
        else:
            state.covered_to = {chain_id: head.seq for chain_id, head in body.heads.items()}
        if signed:  # an unsigned body vouches for nothing, and its ranges could be made enormous
            _check_tree(body, ledger, reasons)
        problems.extend(Problem(subject=f"digest {body.seq}", reason=reason) for reason in reasons)
        for chain_id, span in body.ranges.items():
            state.covered.setdefault(chain_id, []).append(span)
        state.expected_seq = body.seq + 1
        state.previous_hash = sha256_hex(digest.body_canonical.encode("utf-8"))
        state.latest = body
    return state


def _covered_by(spans: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    merged: list[tuple[int, int]] = []
    for first, last in sorted(spans):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return [first for first, _ in merged], [last for _, last in merged]


def _check_coverage(export: Export, state: _DigestState, now: datetime | None, problems: list[Problem]) -> None:
    latest = state.latest
    if latest is None:
        if export.entry_count:
            problems.append(Problem(subject="export", reason="no digest: nothing signs these entries"))
        return
    created = parse_utc(latest.created_at)
    for chain_id in sorted(export.entries):
        firsts, lasts = _covered_by(state.covered.get(chain_id, []))
        uncovered: set[int] = set()
        for entry in export.entries[chain_id]:
            slot = bisect_right(firsts, entry.seq) - 1
            if (slot < 0 or entry.seq > lasts[slot]) and parse_utc(entry.appended_at) <= created:
                uncovered.add(entry.seq)
        for first, last in _seq_runs(uncovered):
            problems.append(
                Problem(
                    subject=_entry_subject(chain_id, first),
                    reason=f"{_span(chain_id, first, last)} not covered by any digest, "
                    f"though appended before digest {latest.seq}",
                )
            )
    window = timedelta(seconds=STALE_AFTER_INTERVALS * latest.interval_s)
    appended = [datetime.fromisoformat(entry.appended_at) for entry in export.all_entries()]  # UTC: validated
    if appended and (newest := max(appended)) > created + window:
        problems.append(
            Problem(
                subject=f"digest {latest.seq}",
                reason=f"stale: entries were appended until {newest.isoformat()}, more than "
                f"{STALE_AFTER_INTERVALS} x {latest.interval_s}s after this newest digest "
                "(a replayed old digest, or digesting stopped)",
            )
        )
    if now is not None and (stale := digest_age_problem(export, now)) is not None:
        problems.append(stale)


def digest_age_problem(export: Export, now: datetime) -> Problem | None:
    """The newest digest, if it is more than two schedule intervals older than ``now`` (else None).

    A current ledger has a digest at least every interval (the schedule's period, which each digest signs as
    ``interval_s``); an older newest digest means digesting stopped, or the newest digests were withheld.
    """
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if not export.digests:
        return None
    latest = export.digests[-1].body
    age = now - parse_utc(latest.created_at)
    if age <= timedelta(seconds=STALE_AFTER_INTERVALS * latest.interval_s):
        return None
    return Problem(
        subject=f"digest {latest.seq}",
        reason=f"stale: the newest digest is {age} old, more than {STALE_AFTER_INTERVALS} x {latest.interval_s}s",
    )


def verify_export(
    export: Export,
    *,
    trusted_public_key_pem: str | None = None,
    now: datetime | None = None,
    checkpoint: Checkpoint | None = None,
    allow_empty: bool = False,
) -> VerifyReport:
    """Check everything an export can show; ``ok`` only when nothing is wrong.

    Pass ``trusted_public_key_pem`` (from KMS, or wherever the key is pinned) or an attacker who re-signs
    every digest with a key of their own and ships that key in the export passes. Pass ``now`` to catch an
    export whose newest digest is too old to be the current one, and ``checkpoint`` (the report's own from an
    earlier verification) to catch one rolled back behind it. An export with no entries fails unless
    ``allow_empty``.
    """
    if trusted_public_key_pem is not None and load_public_key(trusted_public_key_pem) is None:
        raise ValueError("trusted_public_key_pem holds no P-256 public key")
    with collector_paused():
        return _verify(export, trusted_public_key_pem, now, checkpoint, allow_empty)


def _verify(
    export: Export,
    trusted_public_key_pem: str | None,
    now: datetime | None,
    checkpoint: Checkpoint | None,
    allow_empty: bool,
) -> VerifyReport:
    problems: list[Problem] = []
    key_pem = _check_key(export, trusted_public_key_pem, problems)
    ledger = _check_entries(export, problems)
    state = _check_digests(export, key_pem, ledger, problems)
    _check_coverage(export, state, now, problems)
    if checkpoint is not None:
        problems.extend(Problem(subject="checkpoint", reason=reason) for reason in rollback_reasons(export, checkpoint))
    if not export.entry_count and not allow_empty:
        problems.append(Problem(subject="export", reason="holds no entries: an empty ledger, or all of it withheld"))
    return VerifyReport(
        entries=export.entry_count,
        digests=len(export.digests),
        problems=problems,
        checkpoint=None if problems else checkpoint_of(export),
    )
