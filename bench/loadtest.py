"""`make loadtest`: Locust against a local plane this script starts on 127.0.0.1, then the conservation checks.

Headless and bounded: users, spawn rate and duration (<= 60 s) are arguments; `--surge` doubles the
submitters (and so the rate) half-way through. Writes bench/results/loadtest-<timestamp>.json: rps,
p50/p95/p99 per route, errors, shed load (429 throttled, 503 at capacity), the SLO verdict per contract
against the laptop targets stated in the report, and the conservation checks. Exits 1 when conservation
fails; never on a latency.

`--burst` is admission control's check instead: N doc-review submissions (200) sent C at a time (16) with no
pause. Each must be refused (429/503 with Retry-After) or finish with a recorded decision; an accepted run
that fails is the plane failing its own promise. Writes loadtest-burst-<timestamp>.json; exits 1 when an
accepted run fails, an answer is neither, or conservation fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from report import write_report  # bench/ is this script's folder

from contracts.loader import load_contracts
from infra.client import TERMINAL, Endpoint, call, local_endpoint
from infra.drills.conservation import Submission, check
from infra.drills.load import drain as drain_runs
from infra.local.plane import LocalPlane, PlaneOptions
from infra.synth import plane_assembly

REPO = Path(__file__).resolve().parents[1]
MAX_DURATION_S = 60
# The plane runs in one interpreter on a laptop, so API targets are the AWS budgets scaled by this factor.
# Agent steps run their real handler code: their contract p95 applies unscaled.
LAPTOP_SCALE = 5.0
ROUTE_BUDGETS_MS = {  # p95 on AWS (the synchronous hot path has 200 ms)
    "POST /v1/workflows/quick-check/invoke": 200,
    "POST /v1/workflows/doc-review/executions": 200,
    "GET /v1/executions/{id}": 200,
}
ROUTE_AVAILABILITY = 99.9
BURST_HIGH_RISK_EVERY = 4  # one submission in four stops at the approval gate (drain approves it)
REFUSED = (429, 503)  # throttled by a usage plan; refused by admission control. Both say when to retry.
# Half the local pools (4 instances a function): instances are processes on this machine's few cores and a
# cold one can spend a short step's whole task timeout starting; at 4, 2 of 9 admitted runs timed out.
BURST_MAX_IN_FLIGHT = 2


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def route_stats(samples: list[list[Any]], seconds: float) -> dict[str, dict[str, Any]]:
    """Per route: count, rps, latency percentiles of served requests, errors (4xx/5xx but 429/503, no answer), shed."""
    by_route: dict[str, list[list[Any]]] = defaultdict(list)
    for sample in samples:
        by_route[sample[1]].append(sample)
    stats = {}
    for route, rows in sorted(by_route.items()):
        served = [ms for _, _, status, ms in rows if status and status not in REFUSED]
        errors = sum(1 for _, _, status, _ in rows if status == 0 or (status >= 400 and status not in REFUSED))
        stats[route] = {
            "count": len(rows),
            "rps": round(len(rows) / seconds, 2) if seconds else 0.0,
            "p50_ms": round(percentile(served, 0.50), 1),
            "p95_ms": round(percentile(served, 0.95), 1),
            "p99_ms": round(percentile(served, 0.99), 1),
            "errors": errors,
            "shed": sum(1 for _, _, status, _ in rows if status in REFUSED),
        }
    return stats


def totals(stats: dict[str, dict[str, Any]], seconds: float) -> dict[str, Any]:
    count = sum(s["count"] for s in stats.values())
    errors = sum(s["errors"] for s in stats.values())
    shed = sum(s["shed"] for s in stats.values())
    answered = count - shed
    return {
        "requests": count,
        "rps": round(count / seconds, 2) if seconds else 0.0,
        "errors": errors,
        "shed": shed,
        "error_rate_pct": round(100 * errors / answered, 3) if answered else 0.0,
    }


def slo_verdicts(stats: dict[str, dict[str, Any]], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each agent contract's p95 and availability from its steps under load; the API routes against scaled budgets."""
    contracts = {}
    for name, contract in load_contracts().items():
        steps = [s for run in runs for s in run["steps"] if s["agent"] == name]
        if not steps:
            contracts[name] = {"verdict": "not exercised", "steps": 0}
            continue
        p95 = percentile([s["duration_ms"] for s in steps], 0.95)
        ok_share = 100 * sum(s["status"] == "SUCCEEDED" for s in steps) / len(steps)
        met = p95 <= contract.slo.p95_ms and ok_share >= contract.slo.availability
        contracts[name] = {
            "steps": len(steps),
            "p95_ms": round(p95, 2),
            "target_p95_ms": contract.slo.p95_ms,
            "availability_pct": round(ok_share, 3),
            "target_availability_pct": contract.slo.availability,
            "verdict": "met" if met else "missed",
        }
    routes = {}
    for route, budget in ROUTE_BUDGETS_MS.items():
        if route not in stats:
            continue
        s = stats[route]
        answered = s["count"] - s["shed"]
        availability = 100 * (answered - s["errors"]) / answered if answered else 100.0
        target = budget * LAPTOP_SCALE
        routes[route] = {
            "p95_ms": s["p95_ms"],
            "target_p95_ms": target,
            "aws_budget_p95_ms": budget,
            "availability_pct": round(availability, 3),
            "target_availability_pct": ROUTE_AVAILABILITY,
            "verdict": "met" if s["p95_ms"] <= target and availability >= ROUTE_AVAILABILITY else "missed",
        }
    return {"contracts": contracts, "routes": routes}


def run_locust(plane: LocalPlane, args: argparse.Namespace, samples_path: Path) -> int:
    env = {
        **os.environ,
        "AGENTPLANE_STATE_DIR": str(plane.state_dir),
        "AGENTPLANE_SAMPLES": str(samples_path),
        "AGENTPLANE_USERS": str(args.users),
        "AGENTPLANE_DURATION_S": str(args.duration),
        "AGENTPLANE_SPAWN_RATE": str(args.spawn_rate),
        "AGENTPLANE_PER_USER_RPS": str(args.per_user_rps),
        "AGENTPLANE_SURGE": "1" if args.surge else "0",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(REPO / "bench" / "locustfile.py"),
        "--headless",
        "--host",
        plane.url,
        # The surge shape sets users and ends the run itself (it reads the AGENTPLANE_* values above).
        *([] if args.surge else ["--users", str(args.users), "--spawn-rate", str(args.spawn_rate)]),
        *([] if args.surge else ["--run-time", f"{args.duration}s"]),
        "--stop-timeout",
        "5",
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
    ]
    done = subprocess.run(command, env=env, cwd=REPO, timeout=args.duration + 60, check=False)
    return done.returncode


def drain(plane: LocalPlane, execution_ids: set[str], timeout: float) -> list[dict[str, Any]]:
    """After the load: approve what still waits, let every accepted run end, and read each one."""
    admin = local_endpoint(plane.url, plane.state_dir, "admin")
    approver = local_endpoint(plane.url, plane.state_dir, "approver")
    drain_runs(admin, approver, execution_ids, timeout=timeout, reason="load test: drained", interval=0.2)
    plane.settle()
    return [call(admin, "GET", f"/v1/executions/{e}").body for e in sorted(execution_ids)]


def burst_submit(endpoint: Endpoint, index: int) -> dict[str, Any]:
    """One submission of the burst: what the plane answered, and the run it accepted, if any."""
    name = "doc-review-request.json" if index % BURST_HIGH_RISK_EVERY == 0 else "doc-review-low-risk.json"
    body = (REPO / "events" / name).read_bytes()
    key = str(uuid.uuid4())
    answer = call(endpoint, "POST", "/v1/workflows/doc-review/executions", body, {"Idempotency-Key": key})
    headers = {k.lower(): v for k, v in answer.headers.items()}
    return {
        "key": key,
        "status": answer.status,
        "retry_after": headers.get("retry-after"),
        "content_type": headers.get("content-type", ""),
        "execution_id": answer.body.get("execution_id") if answer.status == 202 else None,
    }


def plane_options(args: argparse.Namespace) -> PlaneOptions:
    """A fresh plane in the state dir, on the app synthesized now, admitting ``--max-in-flight`` runs at once."""
    state_dir = Path(args.state_dir)
    return PlaneOptions(
        assembly_dir=plane_assembly(state_dir),
        state_dir=state_dir,
        fresh=True,
        schedule_scale=0,
        max_in_flight=args.max_in_flight,
    )


def burst(args: argparse.Namespace) -> int:
    options = plane_options(args)
    with LocalPlane(options) as plane:
        submitter = local_endpoint(plane.url, plane.state_dir, "submitter")
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            answers = list(pool.map(lambda i: burst_submit(submitter, i), range(args.submissions)))
        load_s = time.monotonic() - started
        accepted = {a["execution_id"] for a in answers if a["execution_id"]}
        runs = drain(plane, accepted, args.drain_timeout)
        conservation = check(plane, [Submission(a["key"], {a["execution_id"]}) for a in answers if a["execution_id"]])
    refused = [a for a in answers if a["status"] in REFUSED]
    unanswered = [a for a in answers if a["status"] not in (202, *REFUSED)]
    refusals_without_retry_after = [a for a in refused if not a["retry_after"]]
    succeeded = [r for r in runs if r.get("status") == "SUCCEEDED" and r.get("decision")]
    failed = [r for r in runs if r.get("status") in TERMINAL - {"SUCCEEDED"}]
    report: dict[str, Any] = {
        "benchmark": "loadtest-burst",
        "when": datetime.now(UTC).isoformat(),
        "machine": {"python": platform.python_version(), "cpu": platform.machine(), "system": platform.system()},
        "config": {
            "submissions": args.submissions,
            "concurrency": args.concurrency,
            "high_risk_share": 1 / BURST_HIGH_RISK_EVERY,
            "max_in_flight": options.admitted_at_once,
            "load_wall_s": round(load_s, 1),
        },
        "submissions": {
            "refused": len(refused),
            "refused_by_status": {str(s): sum(a["status"] == s for a in refused) for s in REFUSED},
            "refused_without_retry_after": len(refusals_without_retry_after),
            "accepted": len(accepted),
            "other_answers": sorted({str(a["status"]) for a in unanswered}),
        },
        "runs": {
            "succeeded": len(succeeded),
            "failed": len(failed),
            "by_status": conservation.by_status,
            "failures": [{"execution_id": r["execution_id"], "error": r.get("error")} for r in failed][:20],
        },
        "conservation": conservation.as_dict(),
    }
    write_report("loadtest-burst", report, args.out)
    problems = [
        f"{len(failed)} accepted runs failed" if failed else "",
        f"{len(unanswered)} submissions answered neither 202 nor 429/503" if unanswered else "",
        f"{len(refusals_without_retry_after)} refusals without Retry-After" if refusals_without_retry_after else "",
        "conservation checks failed" if not conservation.ok else "",
    ]
    if any(problems):
        print(f"loadtest --burst: {'; '.join(p for p in problems if p)} (see the report)", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=5, help="concurrent users, one of them the approver")
    parser.add_argument("--spawn-rate", type=float, default=5.0)
    parser.add_argument("--duration", type=int, default=40, help=f"seconds, at most {MAX_DURATION_S}")
    parser.add_argument("--per-user-rps", type=float, default=1.0, help="each user's request rate")
    parser.add_argument("--surge", action="store_true", help="double the submitters half-way through")
    parser.add_argument("--burst", action="store_true", help="admission control: a burst of submissions instead")
    parser.add_argument("--submissions", type=int, default=200, help="--burst: how many submissions")
    parser.add_argument("--concurrency", type=int, default=16, help="--burst: submissions in flight at once")
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=None,
        help="runs processing at once (default: the local plane's, half its function pools' size)",
    )
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    parser.add_argument("--state-dir", default=str(REPO / ".agentplane" / "loadtest"))
    args = parser.parse_args()
    if args.max_in_flight is not None and args.max_in_flight < 1:
        print("loadtest: --max-in-flight must be at least 1", file=sys.stderr)
        return 2
    if args.burst:
        if min(args.submissions, args.concurrency) < 1:
            print("loadtest: --submissions and --concurrency must be at least 1", file=sys.stderr)
            return 2
        return burst(args)
    if not 1 <= args.duration <= MAX_DURATION_S or args.users < 2:
        print(f"loadtest: --duration must be 1..{MAX_DURATION_S} s and --users at least 2", file=sys.stderr)
        return 2

    state_dir = Path(args.state_dir)
    samples_path = state_dir / "locust-samples.json"
    options = plane_options(args)
    with LocalPlane(options) as plane:
        samples_path.unlink(missing_ok=True)
        load_started = time.monotonic()
        code = run_locust(plane, args, samples_path)
        load_s = time.monotonic() - load_started
        if not samples_path.is_file():
            print(f"loadtest: locust exited {code} without writing its samples", file=sys.stderr)
            return 1
        recorded = json.loads(samples_path.read_text())
        submissions = [Submission(key, set(ids)) for key, ids in recorded["submissions"].items()]
        accepted = {e for s in submissions for e in s.execution_ids}
        runs = drain(plane, accepted, args.drain_timeout)
        conservation = check(plane, submissions)

    samples = recorded["samples"]
    seconds = float(args.duration)
    stats = route_stats(samples, seconds)
    report: dict[str, Any] = {
        "benchmark": "loadtest",
        "when": datetime.now(UTC).isoformat(),
        "machine": {"python": platform.python_version(), "cpu": platform.machine(), "system": platform.system()},
        "config": {
            "users": args.users,
            "spawn_rate": args.spawn_rate,
            "duration_s": args.duration,
            "per_user_rps": args.per_user_rps,
            "surge": args.surge,
            "offered_rps": args.users * args.per_user_rps,
            "max_in_flight": options.admitted_at_once,
            "mix": "submitters: submit 3 (30% high risk, 20% retried with the same Idempotency-Key), "
            "quick-check 3, status poll 4; one approver: list pending and approve",
            "load_wall_s": round(load_s, 1),
        },
        "targets": {
            "statement": f"laptop targets: API routes at {LAPTOP_SCALE:g}x their AWS p95 budget and "
            f"{ROUTE_AVAILABILITY}% availability (429s and 503s excluded: shed, not failed); agent steps at their "
            "contract's p95_ms and availability, unscaled (their handler code runs for real)",
            "laptop_scale": LAPTOP_SCALE,
        },
        "totals": totals(stats, seconds),
        "routes": stats,
        "runs": {
            "accepted": len(accepted),
            "by_status": conservation.by_status,
            "completed_per_s": round(sum(r["status"] in TERMINAL for r in runs) / seconds, 2),
        },
        "slo": slo_verdicts(stats, runs),
        "conservation": conservation.as_dict(),
    }
    if args.surge:
        half = seconds / 2
        before = [s for s in samples if s[0] < half]
        after = [s for s in samples if s[0] >= half]
        report["surge"] = {
            "at_s": half,
            "before": {"totals": totals(route_stats(before, half), half), "routes": route_stats(before, half)},
            "after": {"totals": totals(route_stats(after, half), half), "routes": route_stats(after, half)},
        }
    write_report("loadtest-surge" if args.surge else "loadtest", report, args.out)
    if not conservation.ok:
        print("loadtest: conservation checks FAILED (see the report's conservation section)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
