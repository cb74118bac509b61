"""`agentplane audit export | verify | prove | explain | digest`: the tamper-evident ledger."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contracts.validation import first_error
from infra.cli.base import CliError, Commands, Parser, client_command, connect, warn
from infra.client import call, expect, fetch_export
from infra.local.auth import LOCAL_ROUTES_PERSONA

if TYPE_CHECKING:  # the ledger is imported by the audit commands alone, when they run
    from functions.runtime.ledger import Checkpoint


def _fetch_export(args: argparse.Namespace) -> str:
    return fetch_export(connect(args))


def _read_export(path: str) -> Any:
    from functions.runtime.ledger import ExportError, read_export

    try:
        with Path(path).open(encoding="utf-8") as fp:  # exports are UTF-8 whatever the locale says
            return read_export(fp)
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise CliError(f"{path}: not UTF-8 text, so not a ledger export") from None
    except ExportError as error:
        raise CliError(f"{path}: {error}") from None


def _trusted_key(args: argparse.Namespace) -> str | None:
    from functions.runtime.ledger.digest import load_public_key

    if not args.public_key:
        return None
    try:
        pem = Path(args.public_key).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise CliError(f"cannot read {args.public_key}: {getattr(error, 'strerror', None) or error}") from None
    if load_public_key(pem) is None:
        raise CliError(f"{args.public_key} holds no P-256 public key in PEM")
    return pem


def cmd_audit_export(args: argparse.Namespace) -> int:
    text = _fetch_export(args)
    Path(args.out).write_text(text)
    print(f"wrote {sum(1 for line in text.splitlines() if line.strip())} lines to {args.out}")
    return 0


def _read_checkpoint(path: Path) -> Checkpoint | None:
    """The checkpoint kept at ``path``, or None when there is none yet (the first verification)."""
    from pydantic import ValidationError

    from functions.runtime.ledger import Checkpoint

    try:
        return Checkpoint.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except OSError as error:
        raise CliError(f"cannot read checkpoint {path}: {error.strerror}") from None
    except ValidationError as error:
        raise CliError(f"{path} is not an audit checkpoint ({first_error(error, root='file')})") from None


def _write_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write the checkpoint whole or not at all: a temp file beside it, synced, then renamed over it."""
    temp: Path | None = None
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        temp = Path(name)
        with os.fdopen(fd, "w") as fp:
            fp.write(checkpoint.model_dump_json(indent=2) + "\n")
            fp.flush()
            os.fsync(fp.fileno())
        temp.replace(path)
    except OSError as error:
        if temp is not None:
            temp.unlink(missing_ok=True)
        raise CliError(f"cannot write checkpoint {path}: {error.strerror}") from None


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from functions.runtime.ledger import digest_age_problem, verify_export
    from functions.runtime.ledger.digest import key_fingerprint

    if args.file:
        export = _read_export(args.file)
    else:
        out = Path(args.state_dir) / "ledger-export.jsonl"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(_fetch_export(args))
        export = _read_export(str(out))
    trusted = _trusted_key(args)
    checkpoint_path = Path(args.checkpoint) if args.checkpoint else None
    checkpoint = _read_checkpoint(checkpoint_path) if checkpoint_path else None
    report = verify_export(export, trusted_public_key_pem=trusted, checkpoint=checkpoint, allow_empty=args.allow_empty)
    if not report.ok:
        first = report.first_problem
        culprit = f"{first.subject}: {first.reason}" if first else "unknown problem"
        raise CliError(f"ledger does NOT verify: {culprit} ({len(report.problems)} problem(s))")
    # An export fetched now must be current; a file may be an old export kept on purpose.
    stale = digest_age_problem(export, datetime.now(UTC))
    if stale is not None and (args.require_fresh or not args.file):
        raise CliError(f"ledger does NOT verify: {stale} (digesting stopped, or the newest digests were withheld)")
    if stale is not None:
        warn(f"{stale}; an old export, or a rolled-back one (--require-fresh makes this an error)")
    if trusted is None and checkpoint is None:
        warn(
            f"no pinned key: trusting the export's own key {export.key_id!r} (SHA-256 fingerprint "
            f"{key_fingerprint(export.public_key_pem)}) on first use; pin it with --public-key or --checkpoint"
        )
    kept = ""
    if checkpoint_path is not None and report.checkpoint is not None:
        _write_checkpoint(checkpoint_path, report.checkpoint)
        kept = f"; checkpoint {checkpoint_path} now at digest {report.checkpoint.digest_seq}"
    print(
        f"verified: {report.entries} entries, {report.digests} digests; chains, Merkle roots and signatures hold{kept}"
    )
    return 0


def cmd_audit_prove(args: argparse.Namespace) -> int:
    from functions.runtime.ledger import prove, verify_proof

    export = _read_export(args.file)
    try:
        proof = prove(export, args.record_id)
    except (KeyError, LookupError, ValueError) as error:
        raise CliError(f"cannot prove {args.record_id}: {error}") from None
    problem = verify_proof(proof, export.public_key_pem)
    if problem is not None:
        raise CliError(f"proof for {args.record_id} does NOT verify: {problem}")
    print(proof.model_dump_json(indent=2))
    return 0


def read_lineage(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = expect(call(connect(args), "GET", f"/v1/audit/traces/{args.trace_id}"), 200)
    return body


def cmd_audit_explain(args: argparse.Namespace) -> int:
    body = read_lineage(args)
    if args.json:
        print(json.dumps(body, indent=2))
        return 0 if body.get("verified") else 1
    print(f"trace {body['trace_id']}: {'verified' if body['verified'] else 'NOT verified'}")
    print(f"  {'step':<18} {'actor':<28} {'ms':>8}  {'input':<12} {'output':<12} {'ledger':<14} verification")
    for step in body["steps"]:
        digest = "-" if step["digest"] is None else f"digest {step['digest']}"
        print(
            f"  {step['step']:<18} {step['actor'] or '-':<28} {float(step['duration_ms'] or 0):>8.1f}  "
            f"{(step['input_sha256'] or '-')[:12]:<12} {(step['output_sha256'] or '-')[:12]:<12} "
            f"{step['chain']}#{step['seq']:<6} {step['verification']} ({digest})"
        )
    if args.content:
        endpoint = connect(args)
        for step in body["steps"]:
            if "turn" in step:
                print_turn(step["step"], step["turn"], lambda sha: content_of(endpoint, sha))
    return 0 if body["verified"] else 1


def content_of(endpoint: Any, sha256: str) -> Any:
    return expect(call(endpoint, "GET", f"/v1/audit/content/{sha256}"), 200)["content"]


def print_turn(step: str, turn: dict[str, Any], fetch: Any, width: int = 300) -> None:
    """One turn of a conversation: what was new in what the model was sent, and what it answered."""
    usage = turn.get("usage", {})
    print(
        f"\n{step}  {turn.get('model_id')}  stop {turn.get('stop_reason')}  "
        f"{usage.get('input_tokens', 0)} in / {usage.get('output_tokens', 0)} out  ${turn.get('cost_usd', 0)}"
        + (f"  ({turn['served_by']})" if turn.get("served_by") else "")
    )
    sent = fetch(turn["request_sha256"])
    if sent:
        print(f"  sent     {_blocks(sent[-1].get('content', []), width)}")
    print(f"  answered {_blocks(fetch(turn['content_sha256']), width)}")


def _blocks(blocks: list[dict[str, Any]], width: int) -> str:
    shown = []
    for block in blocks:
        if "text" in block:
            shown.append(str(block["text"]))
        elif "toolUse" in block:
            use = block["toolUse"]
            shown.append(f"calls {use.get('name')}({json.dumps(use.get('input'), sort_keys=True)})")
        elif "toolResult" in block:
            result = block["toolResult"]
            shown.append(
                f"{result.get('status', 'success')} result {json.dumps(result.get('content'), sort_keys=True)}"
            )
    text = " | ".join(shown)
    return text if len(text) <= width else text[: width - 1] + "…"


def cmd_audit_digest(args: argparse.Namespace) -> int:
    body = expect(call(connect(args, persona=LOCAL_ROUTES_PERSONA), "POST", "/local/schedules/run"), 200)
    for fired in body["fired"]:
        print(f"{fired['rule']}: {json.dumps(fired['result'])}")
    return 0


def register(commands: Commands) -> None:
    audit = commands.add_parser("audit", help="the tamper-evident ledger").add_subparsers(
        dest="audit_command", required=True, parser_class=Parser
    )
    export = client_command(audit, "export", "entries and signed digests as JSON Lines", cmd_audit_export, "auditor")
    export.add_argument("--out", required=True)
    verify = client_command(
        audit, "verify", "check every chain link, Merkle root, signature and digest link", cmd_audit_verify, "auditor"
    )
    verify.add_argument("file", nargs="?", help="an export (default: fetch one from the plane)")
    verify.add_argument("--public-key", help="PEM of the signing key you trust (default: the export's own)")
    verify.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="the last verified digest: fail on a rollback behind it, update it on success (created if absent)",
    )
    verify.add_argument("--allow-empty", action="store_true", help="accept an export with no entries")
    verify.add_argument(
        "--require-fresh",
        action="store_true",
        help="fail (not warn) when the newest digest is over 2 digest intervals old (always so without a file)",
    )
    prove_cmd = audit.add_parser("prove", help="inclusion proof of one record, verifiable offline")
    prove_cmd.add_argument("record_id")
    prove_cmd.add_argument("--file", required=True, help="an export")
    prove_cmd.set_defaults(handler=cmd_audit_prove)
    explain = client_command(
        audit, "explain", "the lineage of one trace, verified step by step", cmd_audit_explain, "auditor"
    )
    explain.add_argument("trace_id")
    explain.add_argument(
        "--content", action="store_true", help="also each llm turn: what the model was sent and answered"
    )
    client_command(
        audit, "digest", "sign a digest now (local plane: fires its scheduled rules)", cmd_audit_digest, "auditor"
    )
