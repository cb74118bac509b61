"""Local plane throughput and cost: doc-review runs end to end over HTTP.

Measured on one plane, in this order: CPU per run (the plane's process and every function worker it started)
and runs/s with runs one after another on a fresh plane; runs/s with 1, 4, 8... concurrent submitters; the latency
of a 10-claim and a 100-claim memo; then, with ``--stored N``, N more runs stored and the sequential figures again,
so the report says whether a run costs more once the plane holds many. Each phase records how many runs the plane
already held when it began (cost per run grew with stored state, so figures are only comparable at the same count).
Writes bench/results/local-plane-<timestamp>.json. A benchmark, not a test: it never fails on a number.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from report import write_report  # bench/ is this script's folder

from functions.intake.service import extract_claims
from infra.client import finished, request
from infra.local.plane import LocalPlane, PlaneOptions
from infra.synth import plane_assembly

REPO = Path(__file__).resolve().parents[1]
REQUEST = "doc-review-low-risk.json"
ROUTE = "/v1/workflows/doc-review/executions"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def runs_held(plane: LocalPlane) -> int:
    """Executions the plane's Step Functions holds, every workflow, every status."""
    sfn = plane.client("stepfunctions")
    held = 0
    for machines in sfn.get_paginator("list_state_machines").paginate():
        for machine in machines["stateMachines"]:
            for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=machine["stateMachineArn"]):
                held += len(page["executions"])
    return held


class CpuMeter:
    """CPU seconds (user + system) of this process and every process under it, workers that exited included."""

    def __init__(self) -> None:
        self.me = psutil.Process()
        self.seen: dict[int, float] = {}

    def total(self) -> float:
        times = self.me.cpu_times()
        spent = times.user + times.system + times.children_user + times.children_system
        for child in self.me.children(recursive=True):
            try:
                t = child.cpu_times()
                self.seen[child.pid] = t.user + t.system
            except psutil.Error:
                pass
        # a worker that exited and was reaped shows up in children_*; one not yet reaped keeps its last reading
        live = {c.pid for c in self.me.children(recursive=True)}
        return spent + sum(v for pid, v in self.seen.items() if pid in live)


def memo(claims: int) -> dict[str, Any]:
    """The low-risk memo, its checkable sentences repeated to ``claims`` claims (all supported: still low risk)."""
    body: dict[str, Any] = copy.deepcopy(json.loads((REPO / "events" / REQUEST).read_text()))
    sentences = [c.text for c in extract_claims(body["document"]["text"])]
    body["document"]["text"] = " ".join(sentences[i % len(sentences)] for i in range(claims))
    return body


def one_run(
    plane: LocalPlane, body: dict[str, Any], timeout: float = 120.0, approve: str | None = None
) -> dict[str, Any]:
    answer = request(plane.url, "POST", ROUTE, body)
    while answer.status in (429, 503):  # at capacity: its Retry-After, as clients do
        time.sleep(float(answer.header("Retry-After") or 1))
        answer = request(plane.url, "POST", ROUTE, body)
    if answer.status != 202:
        raise RuntimeError(f"submission answered {answer.status}: {answer.body}")
    return finished(plane.url, answer.body["execution_id"], timeout=timeout, approve=approve)


def sequential(plane: LocalPlane, body: dict[str, Any], runs: int, meter: CpuMeter) -> dict[str, Any]:
    held = runs_held(plane)
    latencies, step_ms, steps, failed = [], [], [], 0
    cpu0, started = meter.total(), time.perf_counter()
    for _ in range(runs):
        t0 = time.perf_counter()
        run = one_run(plane, body)
        latencies.append((time.perf_counter() - t0) * 1000)
        failed += run["status"] != "SUCCEEDED"
        step_ms.extend(s["duration_ms"] for s in run["steps"])
        steps.append(len(run["steps"]))
    elapsed, cpu = time.perf_counter() - started, meter.total() - cpu0
    return {
        "runs_held_before": held,
        "runs": runs,
        "failed": failed,
        "runs_per_s": round(runs / elapsed, 2),
        "cpu_s_per_run": round(cpu / runs, 3),
        "run_latency_ms": {
            "p50": round(statistics.median(latencies), 1),
            "p95": round(percentile(latencies, 0.95), 1),
            "max": round(max(latencies), 1),
        },
        "agent_step_ms": {"p50": round(statistics.median(step_ms), 3), "p95": round(percentile(step_ms, 0.95), 3)},
        "steps_per_run": statistics.median(steps),
    }


def concurrent(plane: LocalPlane, body: dict[str, Any], runs: int, submitters: int) -> dict[str, Any]:
    held = runs_held(plane)
    outcomes: list[str] = []
    lock = threading.Lock()
    left = [runs]

    def submitter() -> None:
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            try:
                status = one_run(plane, body)["status"]
            except Exception as exc:
                status = type(exc).__name__
            with lock:
                outcomes.append(status)

    started = time.perf_counter()
    threads = [threading.Thread(target=submitter) for _ in range(submitters)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    succeeded = outcomes.count("SUCCEEDED")
    return {
        "submitters": submitters,
        "runs_held_before": held,
        "runs": runs,
        "succeeded": succeeded,
        "runs_per_s": round(succeeded / elapsed, 2),
        "failures": sorted({o for o in outcomes if o != "SUCCEEDED"}),
    }


def claims_latency(plane: LocalPlane, claims: int, repeats: int) -> dict[str, Any]:
    latencies = []
    gated = False
    for _ in range(repeats):
        t0 = time.perf_counter()
        run = one_run(plane, memo(claims), timeout=300.0, approve="approve")  # approved at once if it asks
        latencies.append((time.perf_counter() - t0) * 1000)
        gated |= any("approval" in step["agent"] for step in run["steps"])
        if run["status"] != "SUCCEEDED":
            return {"claims": claims, "failed": run["status"]}
    return {
        "claims": claims,
        "repeats": repeats,
        "latency_ms_p50": round(statistics.median(latencies), 1),
        "stopped_for_approval": gated,
        "steps_per_run": len(run["steps"]),
    }


def stream_figures(plane: LocalPlane) -> dict[str, int]:
    mappings = plane.streams.mappings.values()
    return {
        "records": sum(m.delivered for m in mappings),
        "invocations": sum(getattr(m, "invocations", 0) for m in mappings),
    }


def note(report: dict[str, Any], key: str, value: Any) -> None:
    """Keep a phase's figures, and say them at once: a long run stopped early still tells what it measured."""
    report[key] = value
    print(json.dumps({key: value}), file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20, help="runs per sequential and per concurrent phase")
    parser.add_argument("--submitters", default="1,4,8", help="concurrent submitter counts, comma-separated")
    parser.add_argument("--claims", default="10,100", help="claim counts for the latency phase ('' skips it)")
    parser.add_argument("--claim-repeats", type=int, default=2)
    parser.add_argument("--stored", type=int, default=0, help="runs to store before measuring again (e.g. 500)")
    parser.add_argument("--max-in-flight", type=int, default=None, help="the plane's admission (default: its own)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = parser.parse_args()
    # A low-risk memo: no run stops at the approval gate, so this measures the plane, not a person.
    body = json.loads((REPO / "events" / REQUEST).read_text())
    levels = [int(n) for n in args.submitters.split(",") if n]
    state_dir = REPO / ".agentplane" / "bench"
    options = PlaneOptions(
        assembly_dir=plane_assembly(state_dir), state_dir=state_dir, fresh=True, max_in_flight=args.max_in_flight
    )
    report: dict[str, Any] = {
        "benchmark": "local-plane-doc-review",
        "when": datetime.now(UTC).isoformat(),
        "machine": {
            "python": platform.python_version(),
            "cpu": platform.machine(),
            "system": platform.system(),
            "cores": psutil.cpu_count(),
            "load_average_1m_at_start": round(psutil.getloadavg()[0], 2),
        },
        "request": REQUEST,
    }
    meter = CpuMeter()
    started = time.perf_counter()  # startup includes the synth, as it did when the plane synthesized itself
    with LocalPlane(options) as plane:
        report["plane_startup_s"] = round(time.perf_counter() - started, 2)
        report["admitted_at_once"] = options.admitted_at_once
        one_run(plane, body)  # warm-up
        streams0 = stream_figures(plane)
        fresh = sequential(plane, body, args.runs, meter)
        streams1 = stream_figures(plane)
        fresh["stream_records_per_run"] = round((streams1["records"] - streams0["records"]) / args.runs, 1)
        fresh["stream_invocations_per_run"] = round((streams1["invocations"] - streams0["invocations"]) / args.runs, 1)
        note(report, "fresh", fresh)
        # the figures bench/check.py reads, as before: the fresh plane's sequential runs
        report.update(
            runs=args.runs,
            runs_held_before=fresh["runs_held_before"],
            runs_per_s=fresh["runs_per_s"],
            run_latency_ms=fresh["run_latency_ms"],
            agent_step_ms=fresh["agent_step_ms"],
            steps_per_run=fresh["steps_per_run"],
        )
        note(report, "concurrency", [concurrent(plane, body, args.runs, n) for n in levels])
        note(
            report,
            "claims_latency",
            [claims_latency(plane, int(n), args.claim_repeats) for n in args.claims.split(",") if n],
        )
        if args.stored:
            t0 = time.perf_counter()
            loaded = concurrent(plane, body, args.stored, max(1, options.admitted_at_once))
            note(report, "stored_load", {**loaded, "seconds": round(time.perf_counter() - t0, 1)})
            stored = sequential(plane, body, args.runs, meter)
            note(report, "after_stored", stored)
            report["cpu_per_run_after_stored_vs_fresh"] = round(stored["cpu_s_per_run"] / fresh["cpu_s_per_run"], 3)
        report["runs_held_after"] = runs_held(plane)
    write_report("local-plane", report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
