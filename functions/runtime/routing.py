"""Health-aware routing: circuit breakers over the registry's entries and the ranked plan for one step.

Pure: no AWS here. The dispatcher reads the registry, asks :func:`plan` which implementations to try and in
which order (each with its reason), tries them, and folds every outcome into the circuit with :func:`observe`.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from contracts.registry import APPROXIMATE_SUFFIX, Circuit, Health, Implementation

HUMAN = "human"
WINDOW = 20  # outcomes kept per circuit, newest last


class Breaker(BaseModel):
    """When a circuit opens and how long it rests before a trial request."""

    model_config = ConfigDict(frozen=True)

    consecutive_failures: int = Field(default=3, ge=1)
    error_rate: float = Field(default=0.5, gt=0, le=1)
    min_samples: int = Field(default=10, ge=1)
    cool_down_s: float = Field(default=30, ge=0)


def admits(circuit: Circuit, now: datetime, breaker: Breaker) -> bool:
    """Closed and half-open circuits take requests; an open one only once its cool-down is over (trial)."""
    if circuit.state != "open" or circuit.opened_at is None:
        return True
    return now - circuit.opened_at >= timedelta(seconds=breaker.cool_down_s)


def observe(circuit: Circuit, *, succeeded: bool, now: datetime, breaker: Breaker) -> Circuit:
    """The circuit after one outcome: a success closes it; failures open it (again, for a failed trial)."""
    recent = (circuit.recent + ("S" if succeeded else "F"))[-WINDOW:]
    if succeeded:
        return Circuit(state="closed", consecutive_failures=0, recent=recent)
    failures = circuit.consecutive_failures + 1
    trial = circuit.state != "closed"  # half-open, or open past its cool-down: the trial failed
    rate = recent.count("F") / len(recent)
    reason = None
    if trial:
        reason = "trial request failed"
    elif failures >= breaker.consecutive_failures:
        reason = f"{failures} consecutive failures"
    elif len(recent) >= breaker.min_samples and rate >= breaker.error_rate:
        reason = f"error rate {rate:.0%} over the last {len(recent)} calls"
    if reason is None:
        return Circuit(state="closed", consecutive_failures=failures, recent=recent)
    return Circuit(state="open", consecutive_failures=failures, recent=recent, opened_at=now, reason=reason)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def fold_health(health: Health, calls: list[tuple[float, bool, datetime]], *, window: int = 100) -> Health:
    """Health after these calls (duration ms, succeeded, finished at), over the last ``window`` calls."""
    if not calls:
        return health
    ordered = sorted(calls, key=lambda call: call[2])
    durations = (health.window_ms + [round(d, 3) for d, _, _ in ordered])[-window:]
    outcomes = (health.window_ok + "".join("S" if ok else "F" for _, ok, _ in ordered))[-window:]
    latest = max(ordered[-1][2], health.last_heartbeat or ordered[-1][2])
    return Health(
        samples=health.samples + len(ordered),
        p50_ms=percentile(durations, 50),
        p95_ms=percentile(durations, 95),
        error_rate=round(outcomes.count("F") / len(outcomes), 4),
        last_heartbeat=latest,
        window_ms=durations,
        window_ok=outcomes,
    )


_RANGE = re.compile(r"^(?P<major>0|[1-9][0-9]*)(\.(?P<minor>0|[1-9][0-9]*|x))?(\.x)?$")


def in_range(version: str, accepted: str) -> bool:
    """``1.x`` accepts any 1.y.z; ``1.2.x`` any 1.2.z; ``1.2.3`` exactly that; ``*`` anything."""
    if accepted in ("*", "x"):
        return True
    if accepted.count(".") == 2 and "x" not in accepted:
        return version == accepted
    found = _RANGE.match(accepted)
    if found is None:
        raise ValueError(f"version range {accepted!r}: expected N.x, N.N.x or N.N.N")
    major, minor, _ = version.split(".")
    return major == found["major"] and found["minor"] in (None, "x", minor)


class Candidate(BaseModel):
    model_config = ConfigDict(frozen=True)

    implementation: str  # a registry name, or "human"
    target: str | None
    reason: str
    output_model: str | None = None

    @classmethod
    def of(cls, implementation: Implementation, reason: str) -> Candidate:
        return cls(
            implementation=implementation.name,
            target=implementation.target,
            reason=reason,
            output_model=implementation.output_model,
        )


# At equal health and quality a model-backed implementation is preferred over a heuristic one; the heuristic
# stays the fallback (throttling, budgets and open circuits raise the model's error rate or skip it).
_RUNTIME_PREFERENCE = {"llm": 0}


def _rank(implementations: list[Implementation]) -> list[Implementation]:
    """Healthiest first: lower error rate; then higher eval quality (unscored last); then model-backed
    before heuristic; then lower p95; then name (deterministic)."""
    return sorted(
        implementations,
        key=lambda i: (
            i.health.error_rate,
            -(i.quality if i.quality is not None else -1.0),
            _RUNTIME_PREFERENCE.get(i.runtime, 1),
            i.health.p95_ms if i.health.p95_ms is not None else 0.0,
            i.name,
        ),
    )


def plan(
    capability: str, accepted: str, registry: list[Implementation], *, now: datetime, breaker: Breaker
) -> tuple[list[Candidate], list[str]]:
    """What to try, in order, and why; plus what was passed over and why (open circuits).

    Compatible primaries come first, healthiest first. Then each primary's ranked fallbacks, the preferred
    primary's first: an alternate capability (``{capability, max_version}``), its approximate handler; a person
    last, when any of them names one.
    """
    primaries = [
        i
        for i in registry
        if i.variant == "primary" and capability in i.capabilities and in_range(i.contract_version, accepted)
    ]
    skipped: list[str] = []
    chosen: list[Candidate] = []
    ranked = _rank(primaries)
    for position, implementation in enumerate(ranked):
        if not admits(implementation.circuit, now, breaker):
            skipped.append(f"{implementation.name}: circuit open ({implementation.circuit.reason})")
            continue
        trial = implementation.circuit.state != "closed"
        why = (
            "circuit half-open: trial request"
            if trial
            else ("healthy and compatible" if position == 0 else f"alternate {capability} implementation")
        )
        chosen.append(Candidate.of(implementation, why))
    # Then each primary's fallbacks in rank order (the preferred primary's first), a person last of all.
    human = False
    for owner in ranked:
        for entry in owner.fallback:
            if isinstance(entry, dict):
                alternates = [
                    i
                    for i in _rank(registry)
                    if i.variant == "primary"
                    and entry["capability"] in i.capabilities
                    and in_range(i.contract_version, entry["max_version"])
                    and all(c.implementation != i.name for c in chosen)
                ]
                for alternate in alternates:
                    if admits(alternate.circuit, now, breaker):
                        reason = f"fallback: {entry['capability']} {entry['max_version']}"
                        chosen.append(Candidate.of(alternate, reason))
            elif entry == "approximate":
                degraded = [
                    i
                    for i in registry
                    if i.name == owner.name + APPROXIMATE_SUFFIX and all(c.implementation != i.name for c in chosen)
                ]
                for approximate in degraded:
                    if admits(approximate.circuit, now, breaker):
                        reason = "fallback: approximate result"
                        chosen.append(Candidate.of(approximate, reason))
                    else:
                        skipped.append(f"{approximate.name}: circuit open ({approximate.circuit.reason})")
            elif entry == HUMAN:
                human = True
    if human:
        chosen.append(Candidate(implementation=HUMAN, target=None, reason="fallback: human escalation"))
    return chosen, skipped
