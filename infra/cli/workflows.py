"""`agentplane workflows check`: workflow specs validated against the contracts (logic: infra.workflows.check)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infra.cli.base import CliError, Commands, Parser, project_option


def cmd_workflows_check(args: argparse.Namespace) -> int:
    from contracts.loader import ContractError, load_contracts
    from contracts.project import load_project, plane_set
    from contracts.workflow import WORKFLOWS_DIR
    from infra.workflows.check import check_paths, check_spec

    if args.project:
        if args.paths or args.contracts:
            raise CliError("workflows check: --project checks the project's own specs and contracts, not paths")
        try:
            planes = plane_set([load_project(Path(folder)) for folder in args.project])
        except ContractError as error:
            raise CliError(str(error)) from None
        contracts = planes.contracts
        problems = [p for name, spec in planes.workflows.items() for p in check_spec(spec, contracts, name)]
        count = len(planes.workflows)
    else:
        try:
            contracts = load_contracts(Path(args.contracts)) if args.contracts else load_contracts()
        except ContractError as error:
            raise CliError(str(error)) from None
        count, problems = check_paths([Path(p) for p in args.paths] or [WORKFLOWS_DIR], contracts)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"{count} workflow specs valid against {len(contracts)} contracts")
    return 0


def register(commands: Commands) -> None:
    workflows = commands.add_parser("workflows", help="workflow specs").add_subparsers(
        dest="workflows_command", required=True, parser_class=Parser
    )
    check = workflows.add_parser("check", help="validate workflow specs against the contracts")
    check.add_argument("paths", nargs="*", help="spec files or folders (default: contracts/workflows)")
    check.add_argument("--contracts", help="the folder of contracts (default: contracts/agents)")
    project_option(check)
    check.set_defaults(handler=cmd_workflows_check)
