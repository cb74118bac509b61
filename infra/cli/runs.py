"""`agentplane run`, `status` and `capabilities`: start a run, follow it, read the registry."""

from __future__ import annotations

import argparse
import json
from typing import Any

from infra.cli.base import Commands, client_command, connect, read_json_file
from infra.client import call, expect, expect_execution, follow


def _passed_over(route: dict[str, Any]) -> str:
    tried = [f"{t['implementation']} failed ({t['error'][:80]})" for t in route.get("tried", [])]
    return "".join(f"; {note}" for note in [*tried, *route.get("skipped", [])])


def render(execution: dict[str, Any]) -> str:
    lines = [
        f"execution {execution['execution_id']}  workflow {execution['workflow']}  status {execution['status']}",
        f"trace {execution['trace_id']}",
        "",
        f"  {'step':<18} {'agent':<20} {'version':<10} {'status':<10} {'ms':>8}",
    ]
    for step in execution["steps"]:
        lines.append(
            f"  {step['step']:<18} {step['agent']:<20} {step['agent_version']:<10} {step['status']:<10} "
            f"{step['duration_ms']:>8.1f}"
            + (f"  {step['error']['type']}: {step['error']['message']}" if "error" in step else "")
        )
        route = step.get("route")
        if route and (route.get("tried") or route.get("skipped") or route["chosen"] != step["agent"]):
            lines.append(f"  {'':<18} dispatch: {route['chosen']} ({route['reason']})" + _passed_over(route))
    decision = execution.get("decision")
    if decision:
        lines += ["", f"decision {decision['decision_id']}: {decision['outcome'].upper()}", f"  {decision['summary']}"]
    output = execution.get("output") or {}
    if output.get("summary"):
        lines.append(f"  summary: {output['summary']}")
    for verdict in output.get("verdicts", []):
        lines.append(
            f"  {verdict['claim_id']} {verdict['label']:<16} {verdict['confidence']:.2f}  {verdict['rationale']}"
        )
    if execution.get("error"):
        lines += ["", f"error {execution['error']['error']}"]
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace) -> int:
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
    body = read_json_file(args.input)
    plane = connect(args)
    started = expect(call(plane, "POST", f"/v1/workflows/{args.workflow}/executions", body, headers), 202)
    if not args.wait:
        print(json.dumps(started))
        return 0
    execution = follow(plane, started["execution_id"], timeout=args.timeout)
    print(json.dumps(execution, indent=2) if args.json else render(execution))
    return 0 if execution["status"] == "SUCCEEDED" else 1


def cmd_status(args: argparse.Namespace) -> int:
    plane = connect(args)
    execution = expect_execution(call(plane, "GET", f"/v1/executions/{args.execution_id}"), plane.url)
    print(json.dumps(execution, indent=2) if args.json else render(execution))
    return 0


def render_capabilities(listing: dict[str, Any]) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    lines = [
        f"  {'capability':<20} {'implementation':<30} {'version':<8} {'p50 ms':>8} {'p95 ms':>8} {'errors':>7}  circuit"
    ]
    for contract in listing["capabilities"]:
        for impl in contract.get("implementations", []):
            health, circuit = impl["health"], impl["circuit"]
            state = circuit["state"] + (f" ({circuit['reason']})" if circuit.get("reason") else "")
            lines.append(
                f"  {','.join(contract['capabilities']):<20} {impl['implementation']:<30} "
                f"{impl['contract_version']:<8} {ms(health['p50_ms']):>8} {ms(health['p95_ms']):>8} "
                f"{health['error_rate']:>7.1%}  {state}"
            )
    return "\n".join(lines)


def cmd_capabilities(args: argparse.Namespace) -> int:
    plane = connect(args)
    listing = expect(call(plane, "GET", "/v1/capabilities"), 200)
    print(json.dumps(listing, indent=2) if args.json else render_capabilities(listing))
    return 0


def register(commands: Commands) -> None:
    run = client_command(commands, "run", "start a workflow run", cmd_run, "submitter")
    run.add_argument("workflow")
    run.add_argument("--input", required=True, help="JSON request body file")
    run.add_argument("--idempotency-key")
    run.add_argument("--wait", action="store_true", help="follow the run to its end")
    run.add_argument("--timeout", type=float, default=120.0)

    status = client_command(commands, "status", "a run's status, steps and decision", cmd_status, "submitter")
    status.add_argument("execution_id")

    client_command(
        commands, "capabilities", "the registry: implementations, health, circuits", cmd_capabilities, "submitter"
    )
