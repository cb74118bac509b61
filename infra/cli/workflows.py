"""`agentplane workflows check`: workflow specs validated against the contracts (logic: infra.workflows.check)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infra.cli.base import CliError, Commands, Parser


def cmd_workflows_check(args: argparse.Namespace) -> int:
    from contracts.loader import ContractError, load_contracts
    from contracts.workflow import WORKFLOWS_DIR
    from infra.workflows.check import check_paths

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
    check.set_defaults(handler=cmd_workflows_check)
