"""`agentplane approvals list | approve | reject`: the people at the approval gate."""

from __future__ import annotations

import argparse
import json

from infra.cli.base import CliError, Commands, Parser, client_command, connect
from infra.client import pending_approvals, settle


def cmd_approvals_list(args: argparse.Namespace) -> int:
    approvals = pending_approvals(connect(args))
    if args.json:
        print(json.dumps(approvals, indent=2))
        return 0
    for a in approvals:
        risk = a.get("subject", {}).get("risk", {})
        print(
            f"{a['approval_id']}  run {a['execution_id']}  risk {risk.get('level', '?')}  "
            f"expires {a['expires_at']}  args {a['args_sha256'][:12]}"
        )
    print(f"{len(approvals)} pending")
    return 0


def cmd_approvals_decide(args: argparse.Namespace) -> int:
    endpoint = connect(args)
    reviewed = args.args_sha256
    if not reviewed:
        # What waits now is what gets decided: the API voids the decision if it changes before it lands.
        found = [a for a in pending_approvals(endpoint) if a["approval_id"] == args.approval_id]
        if not found:
            raise CliError(f"no pending approval {args.approval_id}; see `agentplane approvals list`")
        reviewed = str(found[0]["args_sha256"])
        print(f"{args.approval_id}: deciding on args {reviewed}", flush=True)
    settled = settle(endpoint, args.approval_id, args.decision, args.reason, reviewed)
    print(f"{settled['approval_id']}: {settled['status']} (run {settled['execution_id']} resumes)")
    return 0


def register(commands: Commands) -> None:
    approvals = commands.add_parser("approvals", help="human approval of high-risk runs").add_subparsers(
        dest="approvals_command", required=True, parser_class=Parser
    )
    client_command(approvals, "list", "pending approvals", cmd_approvals_list, "approver")
    for decision in ("approve", "reject"):
        deciding = client_command(
            approvals, decision, f"{decision} a pending approval (resumes its run)", cmd_approvals_decide, "approver"
        )
        deciding.add_argument("approval_id")
        deciding.add_argument("--reason", required=True)
        deciding.add_argument(
            "--args-sha256", help="digest of what you reviewed (from `approvals list`; default: what waits now)"
        )
        deciding.set_defaults(decision=decision)
