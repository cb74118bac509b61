"""`agentplane local serve` and `demo`: a local plane on 127.0.0.1, and doc-review end to end on one."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from typing import Any

from infra.cli.base import CliError, Commands, Parser, plane_options, project_context, read_json_file
from infra.cli.runs import render
from infra.client import (
    DEFAULT_PORT,
    Endpoint,
    call,
    expect,
    fetch_export,
    follow,
    local_endpoint,
    pending_approvals,
    settle,
)
from infra.paths import REPO_ROOT


def start_plane(args: argparse.Namespace, **overrides: Any) -> Any:
    """A local plane on the app synthesized into the state dir (or on ``--assembly``), as the options say;
    ``overrides`` set further ``PlaneOptions`` fields."""
    from infra.local.faults import FaultPlan, FaultSpecError
    from infra.local.plane import LocalPlane, PlaneOptions, StateDirInUse, claim_state_dir
    from infra.synth import plane_assembly

    try:
        faults = FaultPlan.parse(args.fault or [])
    except FaultSpecError as error:
        raise CliError(str(error)) from None
    assembly = Path(args.assembly) if getattr(args, "assembly", None) else None
    if assembly is not None and not assembly.is_dir():
        raise CliError(f"--assembly {assembly}: no such cloud assembly directory")
    if getattr(args, "rollout_minute_s", None) is not None and args.rollout_minute_s <= 0:
        raise CliError(f"--rollout-minute-s must be positive, not {args.rollout_minute_s}")
    state_dir = Path(args.state_dir)
    try:
        claim_state_dir(state_dir, fresh=args.fresh)  # before synthesizing: a dir in use is refused at once
        options = PlaneOptions(
            assembly_dir=assembly or plane_assembly(state_dir, context=project_context(args)),
            state_dir=state_dir,
            port=args.port,
            faults=faults,
            fresh=args.fresh,
        )
        if getattr(args, "rollout_minute_s", None) is not None:
            options.rollout_minute_s = args.rollout_minute_s
        for name, value in overrides.items():
            setattr(options, name, value)
        return LocalPlane(options).start()
    except StateDirInUse as error:
        raise CliError(str(error)) from None
    except OSError as error:
        raise CliError(f"cannot start the local plane on 127.0.0.1:{args.port}: {error.strerror or error}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    plane = start_plane(args)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    summary = plane.summary()
    print(f"agentplane local plane on {plane.url} ({summary.resources} resources, {len(summary.functions)} functions)")
    if summary.not_emulated:
        print(f"not emulated: {', '.join(sorted(set(summary.not_emulated.values())))}")
    print(
        "functions run as deployed: their own packages, role and memory; timeouts x"
        f"{plane.options.function_timeout_scale:g}, Step Functions retry waits x{plane.options.retry_delay_scale:g}"
    )
    print(plane.restored.line())  # what it resumed of a previous plane on this state dir
    print(f"state and logs in {plane.state_dir}; Ctrl-C stops it", flush=True)
    try:
        stop.wait()
    finally:
        plane.stop()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    print("starting the local plane (synthesizing the CDK app, standing it up on moto)...", flush=True)
    plane = start_plane(args)
    try:
        print(f"local plane on {plane.url}", flush=True)
        # Each step as the persona who would take it, with the keys the plane wrote for its personas.
        submitter = local_endpoint(plane.url, plane.state_dir, "submitter")
        body = read_json_file(args.request)
        started = expect(call(submitter, "POST", "/v1/workflows/doc-review/executions", body), 202)
        print(f"submitted doc-review: execution {started['execution_id']}", flush=True)
        approver = local_endpoint(plane.url, plane.state_dir, "approver")

        def approve_when_asked(run: dict[str, Any]) -> None:
            for pending in pending_approvals(approver, run["execution_id"]):
                risk = pending["subject"]["risk"]
                print(f"approval: risk {risk['level']} ({risk['reasons'][-1]}) waits for a person")
                settle(
                    approver,
                    pending["approval_id"],
                    "approve",
                    "demo: the refuted claim was reviewed",
                    pending["args_sha256"],
                )
                print("approval: approved by the approver persona; the run resumes", flush=True)

        execution = follow(submitter, started["execution_id"], timeout=args.timeout, while_running=approve_when_asked)
        plane.settle(timeout=args.timeout)  # bus deliveries, buffered queues, decision streams
        execution = follow(submitter, started["execution_id"], timeout=args.timeout)
        print(render(execution))
        enriched = [s for s in execution["steps"] if s["agent"] == "entity-tagger" and s["status"] == "SUCCEEDED"]
        print()
        if enriched:
            print(f"enrichment: decision.recorded handled by entity-tagger in {enriched[0]['duration_ms']:.1f} ms")
        else:
            print("enrichment: decision.recorded was NOT handled by entity-tagger")
        from infra.llm_report import from_dynamodb

        decisions = plane.physical("DataDecisions", "AWS::DynamoDB::Table")
        print("\n".join(from_dynamodb(plane.client("dynamodb"), decisions, execution["execution_id"])))
        auditor = local_endpoint(plane.url, plane.state_dir, "auditor")
        verified = _demo_ledger(plane, auditor, execution["trace_id"])
        plane.settle()
        spans = plane.spans.trace(execution["trace_id"])
        print(f"trace: {len(spans)} spans; `agentplane trace {execution['trace_id']}` prints the waterfall")
        ok = execution["status"] == "SUCCEEDED" and bool(enriched) and verified
        print("demo " + ("passed" if ok else "FAILED"))
        return 0 if ok else 1
    finally:
        plane.stop()


def _demo_ledger(plane: Any, auditor: Endpoint, trace_id: str) -> bool:
    """Sign a digest now, export the ledger over the API, and verify it as an auditor would."""
    import io

    from functions.runtime.ledger import read_export, verify_export

    plane.scheduler.run()
    lineage = expect(call(auditor, "GET", f"/v1/audit/traces/{trace_id}"), 200)
    export = read_export(io.StringIO(fetch_export(auditor)))
    report = verify_export(export)
    steps = len(lineage["steps"])
    state = "verified" if lineage["verified"] else "NOT verified"
    print(f"ledger: this run's {steps} decisions are chained and signed ({state})")
    if report.ok:
        print(f"ledger: audit verify of the export: {report.entries} entries, {report.digests} digest(s): verified")
    elif report.first_problem is not None:
        print(f"ledger: audit verify FAILED: {report.first_problem.subject}: {report.first_problem.reason}")
    return bool(report.ok and lineage["verified"])


def register(commands: Commands) -> None:
    demo = commands.add_parser("demo", help="run doc-review end to end on the local plane")
    plane_options(demo, 0)
    demo.add_argument("--request", default=str(REPO_ROOT / "events" / "doc-review-request.json"))
    demo.add_argument("--timeout", type=float, default=60.0)
    demo.set_defaults(handler=cmd_demo)

    local = commands.add_parser("local", help="the local plane").add_subparsers(
        dest="local_command", required=True, parser_class=Parser
    )
    serve = local.add_parser("serve", help="serve the plane on 127.0.0.1 until stopped")
    serve.add_argument(
        "--rollout-minute-s", type=float, help="seconds a rollout's deployment minute lasts here (default 6)"
    )
    plane_options(serve, DEFAULT_PORT)
    serve.add_argument(
        "--assembly", help="serve this synthesized cloud assembly (e.g. cdk.out) instead of synthesizing"
    )
    serve.set_defaults(handler=cmd_serve)
