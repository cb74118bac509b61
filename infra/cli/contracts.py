"""`agentplane contracts check | diff | release | card`: capability contracts and their release lock."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from infra.cli.base import DEFAULT_STATE_DIR, CliError, Commands, Parser, UsageError
from infra.client import DEFAULT_PORT, plane_url
from infra.paths import REPO_ROOT


def cmd_contracts_check(args: argparse.Namespace) -> int:
    from contracts.loader import ContractError, load_contracts
    from contracts.schema_export import drift

    try:
        contracts = load_contracts(Path(args.directory)) if args.directory else load_contracts()
    except ContractError as error:
        raise CliError(str(error)) from None
    for contract in contracts.values():
        print(f"ok  {contract.name} {contract.version}  ({', '.join(contract.capabilities)}; {contract.runtime.kind})")
    stale = drift()
    if stale:
        raise CliError(f"generated schemas are stale ({', '.join(stale)}): run `python -m contracts.schema_export`")
    print(f"{len(contracts)} contracts valid; schemas in sync")
    return 0


BREAKING_EXIT = 3


def _selected_contracts(names: list[str], directory: str | None) -> dict[str, Any]:
    """Contracts by name: each NAME is a contract name or a contract file; none means every contract."""
    from contracts.loader import load_contract, load_contracts

    everything = load_contracts(Path(directory)) if directory else load_contracts()
    selected = {}
    for name in names or everything:
        if name.endswith((".yaml", ".yml")) or Path(name).is_file():
            contract = load_contract(Path(name), check_name=False)
        elif name in everything:
            contract = everything[name]
        else:
            raise CliError(f"no contract {name!r} (contracts: {', '.join(everything)})")
        selected[contract.name] = contract
    return selected


def cmd_contracts_diff(args: argparse.Namespace) -> int:
    from contracts.compat import CompatError, diff, snapshot
    from contracts.loader import ContractError, load_contract
    from contracts.release import GateReport, LockError, gate, read_lock

    try:
        if args.against:
            current = _selected_contracts(args.contracts, args.contracts_dir)
            released = read_lock(Path(args.lock))
            if args.contracts:  # only the named ones: the others are not "removed"
                released = {name: released[name] for name in current if name in released}
            report = gate(current, released)
        elif len(args.contracts) == 2:
            old, new = (load_contract(Path(path), check_name=False) for path in args.contracts)
            report = GateReport(diffs=(diff(snapshot(old), snapshot(new)),), unreleased=(), removed=())
        else:
            raise UsageError("agentplane contracts diff: give OLD and NEW contract files, or --against released")
    except (ContractError, LockError, CompatError) as error:
        raise CliError(str(error)) from None
    except OSError as error:
        raise CliError(f"cannot read {error.filename}: {error.strerror or error}") from None
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        for found in report.diffs:
            unchanged = not found.changes and found.verdict is None
            print(f"{found.name} {found.new_version}: no changes" if unchanged else "\n".join(found.lines()))
        for name in report.unreleased:
            print(f"{name}: not released yet (new)")
        for name in report.removed:
            print(f"{name}: released, now gone: BREAKING for its callers")
    breaking = bool(report.removed) or any(found.breaking for found in report.diffs)
    return BREAKING_EXIT if breaking or not report.ok else 0


def cmd_contracts_release(args: argparse.Namespace) -> int:
    from contracts.compat import CompatError
    from contracts.loader import ContractError
    from contracts.release import LockError, read_lock, release, write_lock

    lock = Path(args.lock)
    try:
        contracts = _selected_contracts([], args.contracts_dir)
        before = read_lock(lock)
        after = release(contracts, before, allow_removed=args.allow_removed)
        write_lock(after, lock)
    except (ContractError, LockError, CompatError) as error:
        raise CliError(str(error)) from None
    except OSError as error:
        raise CliError(f"cannot use {error.filename or lock}: {error.strerror or error}") from None
    for name, released in sorted(after.items()):
        was = before.get(name)
        state = "new" if was is None else ("unchanged" if was == released else f"was {was.version}")
        print(f"released {name} {released.version} ({state})")
    for name in sorted(before.keys() - after.keys()):
        print(f"retired {name} {before[name].version}")
    print(f"wrote {lock}")
    return 0


def contracts_in(directory: str | None) -> dict[str, Any]:
    from contracts.loader import ContractError, load_contracts

    try:
        return dict(load_contracts(Path(directory))) if directory else dict(load_contracts())
    except (ContractError, OSError) as error:
        raise CliError(str(error)) from None


def cmd_contracts_card(args: argparse.Namespace) -> int:
    from contracts.card import agent_card

    contracts = contracts_in(args.directory)
    if args.name not in contracts:
        raise CliError(f"no contract named {args.name!r} (known: {', '.join(contracts)})")
    url = str(args.url or plane_url(Path(args.state_dir)) or f"http://127.0.0.1:{DEFAULT_PORT}").rstrip("/")
    print(json.dumps(agent_card(contracts[args.name], url=url), indent=2))
    return 0


def register(commands: Commands) -> None:
    contracts = commands.add_parser("contracts", help="capability contracts").add_subparsers(
        dest="contracts_command", required=True, parser_class=Parser
    )
    check = contracts.add_parser("check", help="validate contracts and generated schemas")
    check.add_argument("directory", nargs="?")
    check.set_defaults(handler=cmd_contracts_check)
    lock_default = str(REPO_ROOT / "contracts" / "released.lock.json")
    diffing = contracts.add_parser(
        "diff", help=f"classify changes as compatible or breaking (exit {BREAKING_EXIT} when breaking)"
    )
    diffing.add_argument("contracts", nargs="*", metavar="CONTRACT", help="OLD NEW files, or names with --against")
    diffing.add_argument("--against", choices=["released"], help="compare with the release lock")
    diffing.add_argument("--lock", default=lock_default, help="the release lock (default: the repository's)")
    diffing.add_argument("--contracts-dir", help="where contract names are looked up (default contracts/agents)")
    diffing.add_argument("--json", action="store_true", help="print the changes as JSON")
    diffing.set_defaults(handler=cmd_contracts_diff)
    releasing = contracts.add_parser("release", help="record the current contracts in the release lock")
    releasing.add_argument("--lock", default=lock_default, help="the release lock (default: the repository's)")
    releasing.add_argument("--contracts-dir", help="the contracts to release (default contracts/agents)")
    releasing.add_argument("--allow-removed", action="store_true", help="retire released contracts that are gone")
    releasing.set_defaults(handler=cmd_contracts_release)
    card = contracts.add_parser("card", help="print a contract as an A2A Agent Card")
    card.add_argument("name")
    card.add_argument("--directory", help="contracts directory (default: the shipped contracts)")
    card.add_argument("--url", help="where the plane is reached (default: the local plane)")
    card.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR), help="where `local serve` wrote plane.json")
    card.set_defaults(handler=cmd_contracts_card)
