"""`make chaos`: every scenario under chaos/scenarios/ on one local plane; bench/results/chaos-<timestamp>.json.

Exits 1 when a scenario's checks fail (lost runs, missing retries or catches, an unverified ledger).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from report import write_report  # bench/ is this script's folder

from infra.drills.chaos import ScenarioReport, load_scenarios, run_scenario
from infra.drills.restart_drill import load_restart_scenarios, run_restart_drill
from infra.local.faults import FaultSpecError
from infra.local.plane import LocalPlane, PlaneOptions
from infra.synth import plane_assembly

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenarios", nargs="*", type=Path, default=[REPO / "chaos" / "scenarios"])
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = parser.parse_args()
    try:
        scenarios = load_scenarios(args.scenarios)
        restarts = load_restart_scenarios(args.scenarios)
    except FaultSpecError as error:
        print(f"chaos: {error}", file=sys.stderr)
        return 2

    started = time.perf_counter()
    reports = []

    def done(report: ScenarioReport) -> None:
        failed = [c.check for c in report.checks if not c.ok]
        print(
            f"{'ok  ' if report.ok else 'FAIL'}  {report.scenario} ({report.seconds:.1f}s)"
            + (f": {failed}" if failed else ""),
            flush=True,
        )
        reports.append(report.as_dict())

    state_dir = REPO / ".agentplane" / "chaos"
    options = PlaneOptions(assembly_dir=plane_assembly(state_dir), state_dir=state_dir, fresh=True, schedule_scale=0)
    with LocalPlane(options) as plane:
        for scenario in scenarios:
            done(run_scenario(plane, scenario))
    for restart in restarts:  # each on a plane of its own, which it kills
        done(run_restart_drill(restart, REPO / ".agentplane" / f"chaos-{restart.name}"))
    write_report(
        "chaos",
        {
            "benchmark": "chaos-scenarios",
            "when": datetime.now(UTC).isoformat(),
            "machine": {"python": platform.python_version(), "cpu": platform.machine(), "system": platform.system()},
            "seconds": round(time.perf_counter() - started, 1),
            "passed": sum(r["ok"] for r in reports),
            "scenarios": reports,
        },
        args.out,
    )
    return 0 if all(r["ok"] for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
