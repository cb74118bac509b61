"""Local plane throughput: doc-review runs end to end over HTTP, one after another.

Each report says how many runs the plane already held when the timed runs began (cost per run grows
with stored state, so figures are only comparable at the same count).
Writes bench/results/local-plane-<timestamp>.json. A benchmark, not a test: it never fails on a number.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from report import write_report  # bench/ is this script's folder

from infra.client import finished, request
from infra.local.plane import LocalPlane, PlaneOptions
from infra.synth import plane_assembly

REPO = Path(__file__).resolve().parents[1]
REQUEST = "doc-review-low-risk.json"


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = parser.parse_args()
    # A low-risk memo: no run stops at the approval gate, so this measures the plane, not a person.
    body = json.loads((REPO / "events" / REQUEST).read_text())

    state_dir = REPO / ".agentplane" / "bench"
    started = time.perf_counter()  # startup includes the synth, as it did when the plane synthesized itself
    with LocalPlane(PlaneOptions(assembly_dir=plane_assembly(state_dir), state_dir=state_dir, fresh=True)) as plane:
        startup_s = time.perf_counter() - started
        warm_up = request(plane.url, "POST", "/v1/workflows/doc-review/executions", body)
        finished(plane.url, warm_up.body["execution_id"])
        held_before = runs_held(plane)
        latencies, step_ms, steps_per_run = [], [], []
        batch_started = time.perf_counter()
        for _ in range(args.runs):
            t0 = time.perf_counter()
            answer = request(plane.url, "POST", "/v1/workflows/doc-review/executions", body)
            run = finished(plane.url, answer.body["execution_id"])
            latencies.append((time.perf_counter() - t0) * 1000)
            if run["status"] != "SUCCEEDED":
                print(f"run {run['execution_id']} ended {run['status']}", file=sys.stderr)
                return 1
            step_ms.extend(s["duration_ms"] for s in run["steps"])
            steps_per_run.append(len(run["steps"]))
        elapsed = time.perf_counter() - batch_started
        held_after = runs_held(plane)

    report = {
        "benchmark": "local-plane-doc-review",
        "when": datetime.now(UTC).isoformat(),
        "machine": {"python": platform.python_version(), "cpu": platform.machine(), "system": platform.system()},
        "runs": args.runs,
        "runs_held_before": held_before,  # already stored when the timed runs began (the warm-up's included)
        "runs_held_after": held_after,
        "request": REQUEST,
        "plane_startup_s": round(startup_s, 2),
        "runs_per_s": round(args.runs / elapsed, 2),
        "run_latency_ms": {
            "p50": round(statistics.median(latencies), 1),
            "p95": round(percentile(latencies, 0.95), 1),
            "max": round(max(latencies), 1),
        },
        "agent_step_ms": {"p50": round(statistics.median(step_ms), 3), "p95": round(percentile(step_ms, 0.95), 3)},
        "steps_per_run": statistics.median(steps_per_run),
    }
    write_report("local-plane", report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
