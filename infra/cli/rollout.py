"""`agentplane rollout status | start | demo`: canary rollouts of agent versions."""

from __future__ import annotations

import argparse
import json
import urllib.parse
from typing import Any

from infra.cli.base import (
    CliError,
    Commands,
    Parser,
    client_command,
    connect,
    is_deployed,
    plane_options,
    read_json_file,
)
from infra.cli.local import start_plane
from infra.client import call, expect, follow, local_endpoint, pending_approvals, settle
from infra.local.auth import LOCAL_ROUTES_PERSONA
from infra.paths import REPO_ROOT


def _weights(versions: list[dict[str, Any]]) -> str:
    return ", ".join(f"v{v['version']} {v['weight']:.0%}" for v in versions) or "-"


def render_rollouts(listing: dict[str, Any]) -> str:
    """One line per alias: its versions and weights, and the newest deployment of its group."""
    lines = [f"  {'agent':<32} {'traffic':<22} deployment"]
    for agent in listing["agents"]:
        if "error" in agent:
            lines.append(f"  {agent['agent']:<32} {'?':<22} cannot read its alias: {agent['error']}")
            continue
        deployment = agent.get("deployment")
        shown = "-"
        if deployment:
            shown = (
                f"{deployment['deployment_id']} {deployment['status']} "
                f"v{deployment['from_version']} -> v{deployment['to_version']}"
            )
            if deployment.get("message"):
                shown += f": {deployment['message']}"
        lines.append(f"  {agent['agent']:<32} {_weights(agent['versions']):<22} {shown}")
    lines.append(f"  {'workflow':<32} traffic")
    for workflow in listing["workflows"]:
        if "error" in workflow:
            lines.append(f"  {workflow['workflow']:<32} cannot read its alias: {workflow['error']}")
        else:
            lines.append(f"  {workflow['workflow']:<32} {_weights(workflow['versions'])}")
    return "\n".join(lines)


def cmd_rollout_status(args: argparse.Namespace) -> int:
    listing = expect(call(connect(args), "GET", "/v1/rollouts"), 200)
    print(json.dumps(listing, indent=2) if args.json else render_rollouts(listing))
    return 0


def cmd_rollout_start(args: argparse.Namespace) -> int:
    """Local plane only: on AWS a deploy of the changed stack starts the rollout (CodeDeploy)."""
    if is_deployed(args):
        raise CliError(
            "rollout start drives the local plane; on AWS, deploying the changed stack starts the rollout "
            "(CodeDeploy): follow it with `agentplane rollout status`"
        )
    query = urllib.parse.urlencode({"agent": args.agent, **({"fault": args.fault} if args.fault else {})})
    started = expect(call(connect(args, persona=LOCAL_ROUTES_PERSONA), "POST", f"/local/rollouts?{query}"), 202)
    latest = started["history"][-1]["event"]
    print(json.dumps(started, indent=2) if args.json else f"{started['deployment_id']}: {latest}")
    return 0


class RunClock:
    """A deployment clock read in minutes, moved by hand."""

    def __init__(self) -> None:
        self.minutes = 0

    def __call__(self) -> float:
        return float(self.minutes)


def cmd_rollout_demo(args: argparse.Namespace) -> int:
    """A rollout on a fresh local plane, with doc-review traffic until it completes or rolls back."""
    if args.runs < 1:
        raise CliError(f"--runs must be at least 1, not {args.runs}")
    print("starting the local plane (synthesizing the CDK app, standing it up on moto)...", flush=True)
    # The deployment's clock moves one minute per run, not with the wall clock: how much traffic each step
    # of the shift sees, and so what the demo shows, does not depend on how fast this machine is.
    clock = RunClock()
    plane = start_plane(args, rollout_clock=clock, rollout_minute_s=1.0, rollout_tick_s=0)
    try:
        admin = local_endpoint(plane.url, plane.state_dir, "admin")
        query = urllib.parse.urlencode({"agent": args.agent, **({"fault": args.new_fault} if args.new_fault else {})})
        started = expect(call(admin, "POST", f"/local/rollouts?{query}"), 202)
        fault = f", the new version failing with {args.new_fault}" if args.new_fault else ""
        print(f"rollout {started['deployment_id']} of {started['agent']}: {started['config']}{fault}")
        print("  (the demo's deployment clock moves one minute per doc-review run)")
        body = read_json_file(args.request)
        deployment: dict[str, Any] = started
        approver = local_endpoint(plane.url, plane.state_dir, "approver")

        def approve_when_asked(run: dict[str, Any]) -> None:
            # A run whose claims a failing canary sent to the fallback is degraded: it waits for a person.
            for pending in pending_approvals(approver, run["execution_id"]):
                settle(approver, pending["approval_id"], "approve", "rollout demo: reviewed", pending["args_sha256"])

        for number in range(1, args.runs + 1):
            run = expect(call(admin, "POST", "/v1/workflows/doc-review/executions", body), 202)
            ended = follow(admin, run["execution_id"], timeout=args.timeout, while_running=approve_when_asked)
            clock.minutes += 1
            plane.deployments.tick()
            listing = expect(call(admin, "GET", "/v1/rollouts"), 200)
            agent = next(a for a in listing["agents"] if a["agent"] == started["agent"])
            deployment = agent["deployment"] or deployment
            traffic = _weights(agent["versions"])
            print(f"run {number}: {ended['status']:<9} traffic {traffic:<20} {deployment['status']}")
            if deployment["status"] != "InProgress":
                break
        print(f"deployment {deployment['deployment_id']}: {deployment['status']}: {deployment.get('message', '')}")
        for event in plane.deployments.deployments[started["deployment_id"]].history:
            print(f"  minute {event['minute']:>5}: {event['event']}")
        return 0 if deployment["status"] != "InProgress" else 1
    finally:
        plane.stop()


def register(commands: Commands) -> None:
    rollout = commands.add_parser("rollout", help="canary rollouts of agent versions").add_subparsers(
        dest="rollout_command", required=True, parser_class=Parser
    )
    client_command(
        rollout, "status", "each agent's and workflow's live versions and weights", cmd_rollout_status, "auditor"
    )
    rollout_start = client_command(
        rollout,
        "start",
        "local plane: publish an agent's new version and shift traffic to it as its group says",
        cmd_rollout_start,
        "admin",
    )
    rollout_start.add_argument("agent")
    rollout_start.add_argument("--fault", help="Error[:rate] injected into the new version only, e.g. ModelError")
    rollout_demo = rollout.add_parser(
        "demo", help="a rollout on a fresh local plane under doc-review traffic, until it completes or rolls back"
    )
    rollout_demo.add_argument("agent", nargs="?", default="evidence-verifier")
    rollout_demo.add_argument("--new-fault", metavar="ERROR[:RATE]", help="make the new version fail, e.g. ModelError")
    rollout_demo.add_argument("--runs", type=int, default=40, help="at most this many doc-review runs (default 40)")
    # Long enough for a run that waits for a person (a degraded one) to fit in the canary's first minutes.
    rollout_demo.add_argument("--request", default=str(REPO_ROOT / "events" / "doc-review-low-risk.json"))
    rollout_demo.add_argument("--timeout", type=float, default=60.0)
    plane_options(rollout_demo, 0)
    rollout_demo.set_defaults(handler=cmd_rollout_demo)
