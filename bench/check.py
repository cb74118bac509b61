"""`make bench-check`: the newest report of each benchmark against its target; says what misses.

Not part of `make test`: benchmarks inform, they do not gate CI. A target with no report to read (or a
report older than the figure) is "not measured", counted apart from a miss. Exits 1 when a target is
missed, else 2 when one is not measured, else 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def _at_submitters(report: dict[str, Any], submitters: int) -> float:
    """Runs/s of the phase with that many submitters; KeyError (not measured) when the report has none."""
    for phase in report["concurrency"]:
        if phase["submitters"] == submitters:
            return float(phase["runs_per_s"])
    raise KeyError(f"concurrency phase with {submitters} submitters")


def _cpu_after_500_stored(report: dict[str, Any]) -> float:
    if report["after_stored"]["runs_held_before"] < 500:
        raise KeyError("a phase after 500 stored runs (this one held fewer)")
    return float(report["cpu_per_run_after_stored_vs_fresh"])


def _claims_p50(report: dict[str, Any], claims: int) -> float:
    for phase in report["claims_latency"]:
        if phase["claims"] == claims and "latency_ms_p50" in phase:
            return float(phase["latency_ms_p50"])
    raise KeyError(f"latency of a {claims}-claim memo")


# (report prefix, what, value from the report, target, comparison)
Check = tuple[str, str, Callable[[dict[str, Any]], float], float, str]
CHECKS: list[Check] = [
    (
        "ledger",
        "ledger verify including reading the export, entries/s",
        lambda r: r["verify_with_read_entries_per_s"],
        50_000,
        ">=",
    ),
    ("ledger", "inclusion proof verify at 10^6 leaves, ms", lambda r: r["proof"]["verify_ms_p50"], 1.0, "<="),
    ("runtime", "warm per-step runtime overhead p50, ms", lambda r: r["warm_step"]["overhead_p50_ms"], 0.5, "<="),
    (
        "runtime",
        "warm per-step overhead p50 with tracing on (the invocation's export apart), ms",
        lambda r: r["warm_step_traced"]["overhead_p50_ms"],
        0.5,
        "<=",
    ),
    (
        "runtime",
        "cold start added over bare Powertools (worst handler), ms",
        lambda r: max(h["added_over_bare_ms"] for h in r["cold_start"]["handlers"].values()),
        50,
        "<=",
    ),
    ("local-plane", "local plane doc-review runs/s, sequential", lambda r: r["runs_per_s"], 10, ">="),
    (
        "local-plane",
        "local plane doc-review runs/s with 8 concurrent submitters",
        lambda r: _at_submitters(r, 8),
        10,
        ">=",
    ),
    (
        "local-plane",
        "local plane runs/s with 4 submitters / with 1",
        lambda r: _at_submitters(r, 4) / _at_submitters(r, 1),
        1.6,
        ">=",
    ),
    (
        "local-plane",
        "local plane CPU per run after 500 stored runs / fresh",
        _cpu_after_500_stored,
        1.10,
        "<=",
    ),
    (
        "local-plane",
        "local plane 100-claim latency / 10-claim latency",
        lambda r: _claims_p50(r, 100) / _claims_p50(r, 10),
        10,
        "<=",
    ),
    (
        "llm-loop",
        "llm loop overhead per turn over a bare Converse (p50), ms",
        lambda r: r["overhead_per_turn_ms"]["p50"],
        5,
        "<=",
    ),
    ("loadtest", "load test: conservation holds (1 yes, 0 no)", lambda r: float(r["conservation"]["ok"]), 1, ">="),
    (
        "loadtest",
        "load test: contracts and routes whose SLO was missed",
        lambda r: sum(v["verdict"] == "missed" for part in r["slo"].values() for v in part.values()),
        0,
        "<=",
    ),
    ("loadtest-surge", "surge: conservation holds (1 yes, 0 no)", lambda r: float(r["conservation"]["ok"]), 1, ">="),
    ("chaos", "chaos scenarios failed", lambda r: len(r["scenarios"]) - r["passed"], 0, "<="),
    (
        "summarizer",
        "summarizer throughput at concurrency 32, batching on / off",
        lambda r: r["c32_throughput_gain"],
        4,
        ">=",
    ),
    (
        "summarizer",
        "summarizer p95 at concurrency 32 (batching on) / (max_wait_ms + 2 x single-request latency)",
        lambda r: r["c32_p95_ms"] / r["c32_p95_budget_ms"],
        1.0,
        "<=",
    ),
]


MAKERS = {"loadtest": "make loadtest", "loadtest-surge": "make loadtest", "chaos": "make chaos"}


def newest(results: Path, prefix: str) -> Path | None:
    reports = sorted(results.glob(f"{prefix}-2*.json"))
    return reports[-1] if reports else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    missed = unmeasured = 0
    for prefix, what, value, target, comparison in CHECKS:
        path = newest(args.results, prefix)
        if path is None:
            print(f"NO REPORT  {what}: run `{MAKERS.get(prefix, 'make bench')}` first")
            unmeasured += 1
            continue
        try:
            measured = value(json.loads(path.read_text()))
        except KeyError as absent:  # written before this figure was measured
            print(f"NO FIGURE  {what}: {path.name} has no {absent}; run `{MAKERS.get(prefix, 'make bench')}` again")
            unmeasured += 1
            continue
        ok = measured >= target if comparison == ">=" else measured <= target
        missed += not ok
        print(f"{'ok   ' if ok else 'MISS '}      {what}: {measured:g} (target {comparison} {target:g}; {path.name})")
    met = len(CHECKS) - missed - unmeasured
    print(f"{met} target(s) met, {missed} missed, {unmeasured} not measured")
    return 1 if missed else 2 if unmeasured else 0


if __name__ == "__main__":
    sys.exit(main())
