"""`agentplane invoke` and `new agent`: one agent in-process on moto, and a new agent's scaffold."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from infra.cli.base import CliError, Commands, Parser, read_json_file
from infra.cli.contracts import contracts_in
from infra.paths import CONTRACTS_DIR, FUNCTIONS_DIR


def cmd_invoke(args: argparse.Namespace) -> int:
    import contextlib

    from infra.local.agent_run import AgentRunError, LocalAgents, step_event

    contracts = contracts_in(args.contracts)
    if args.agent not in contracts:
        raise CliError(f"no contract named {args.agent!r} (known: {', '.join(contracts)})")
    sample = json.loads(read_json_file(args.event))
    try:
        # The agent's own logs go to stderr: stdout is its output, for pipes.
        with contextlib.redirect_stdout(sys.stderr), LocalAgents(contracts, functions_dir=Path(args.functions)) as run:
            result = run.invoke(args.agent, step_event(contracts[args.agent], sample))
    except AgentRunError as error:
        raise CliError(str(error)) from None
    calls = ", ".join(str(call) for call in result.calls) or "none"
    if result.failure is not None:
        raise CliError(f"{args.agent} failed: {result.failure} (AWS calls: {calls})")
    print(json.dumps(result.output, indent=2))
    print(f"{args.agent}: ok in {result.duration_ms:.1f} ms; AWS calls: {calls}", file=sys.stderr)
    return 0


def cmd_new_agent(args: argparse.Namespace) -> int:
    from infra.scaffold import ScaffoldError, new_agent

    try:
        made = new_agent(
            args.name,
            contracts_dir=Path(args.contracts),
            functions_dir=Path(args.functions),
            description=args.description or "",
        )
    except (ScaffoldError, OSError) as error:
        raise CliError(str(error)) from None
    print(f"contract: {made.contract}")
    print(f"handler:  {made.handler}")
    where = ""
    if (
        Path(args.contracts).resolve() != (CONTRACTS_DIR / "agents").resolve()
        or Path(args.functions).resolve() != FUNCTIONS_DIR
    ):
        where = f" --contracts {args.contracts} --functions {args.functions}"
    print(f"try it:   agentplane invoke {args.name} --event events/payloads/ClaimCheck.json{where}")
    return 0


def cmd_new_project(args: argparse.Namespace) -> int:
    from infra.scaffold import ScaffoldError, new_project

    folder = Path(args.dir)
    try:
        written = new_project(folder, args.name)
    except (ScaffoldError, OSError) as error:
        raise CliError(str(error)) from None
    for path in written:
        print(f"wrote {path}")
    print(f"next:  agentplane workflows check --project {folder} && agentplane synth --project {folder}")
    return 0


def register(commands: Commands) -> None:
    def agent_dirs(p: argparse.ArgumentParser) -> None:
        p.add_argument("--contracts", default=str(CONTRACTS_DIR / "agents"), help="contracts directory")
        p.add_argument("--functions", default=str(FUNCTIONS_DIR), help="functions directory (agents' code)")

    invoke_cmd = commands.add_parser("invoke", help="run one agent in-process on a sample event (moto for AWS)")
    invoke_cmd.add_argument("agent")
    invoke_cmd.add_argument("--event", required=True, help="JSON file: a payload, an envelope or a bus event")
    agent_dirs(invoke_cmd)
    invoke_cmd.set_defaults(handler=cmd_invoke)

    new = commands.add_parser("new", help="scaffold a new component").add_subparsers(
        dest="new_command", required=True, parser_class=Parser
    )
    new_agent_cmd = new.add_parser("agent", help="write a contract and a handler for a new agent")
    new_agent_cmd.add_argument("name", help="kebab-case agent name")
    new_agent_cmd.add_argument("--description")
    agent_dirs(new_agent_cmd)
    new_agent_cmd.set_defaults(handler=cmd_new_agent)
    new_project_cmd = new.add_parser("project", help="write a working agent project: two agents, a workflow, samples")
    new_project_cmd.add_argument("dir", help="the project folder (new, or empty)")
    new_project_cmd.add_argument("--name", help="the project's kebab-case name (default: the folder's name)")
    new_project_cmd.set_defaults(handler=cmd_new_project)
