"""`agentplane trace` and `explain`: a trace's waterfall, and the trace joined with the ledger."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from infra.cli.audit import read_lineage
from infra.cli.base import CliError, Commands, api_url, client_command, connect, is_deployed
from infra.client import ambient_endpoint, call, expect, one_line, plane_url
from infra.local.auth import LOCAL_ROUTES_PERSONA

_XRAY_TRACE_ID = re.compile(r"^1-[0-9a-f]{8}-[0-9a-f]{24}$")


def _spans(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The trace's spans: from the local plane's OTLP receiver, or from X-Ray for a deployed plane."""
    if not _XRAY_TRACE_ID.match(args.trace_id):
        raise CliError(f"{args.trace_id!r} is not a trace id (1-xxxxxxxx-xxxxxxxxxxxxxxxxxxxxxxxx)")
    url = api_url(args)
    if is_deployed(args):
        from infra.traces import spans_from_xray

        return spans_from_xray(_xray_traces(args.trace_id, ambient_endpoint(url).region))
    journal = Path(args.state_dir) / "spans.jsonl"
    if not args.api_url and plane_url(Path(args.state_dir)) is None and journal.is_file():
        from infra.local.otlp import read_journal

        return read_journal(journal, args.trace_id)  # a stopped plane (e.g. after `make demo`)
    body = expect(
        call(connect(args, persona=LOCAL_ROUTES_PERSONA), "GET", f"/local/traces?trace_id={args.trace_id}"), 200
    )
    spans: list[dict[str, Any]] = body["spans"]
    return spans


def _xray_traces(trace_id: str, region: str) -> list[dict[str, Any]]:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        xray = boto3.client("xray", region_name=region)
        found: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = xray.batch_get_traces(TraceIds=[trace_id], **({"NextToken": token} if token else {}))
            found.extend(page.get("Traces", []))
            token = page.get("NextToken")
            if not token:
                return found
    except (BotoCoreError, ClientError) as error:
        raise CliError(f"cannot read trace {trace_id} from X-Ray in {region}: {one_line(error)}") from None


def cmd_trace(args: argparse.Namespace) -> int:
    from infra.traces import as_json, render_waterfall, waterfall

    hops = waterfall(_spans(args))
    if not hops:
        raise CliError(f"no spans for trace {args.trace_id} (not sampled, not yet exported, or another plane's)")
    print(as_json(args.trace_id, hops) if args.json else render_waterfall(args.trace_id, hops))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from infra.traces import explain, render_explained, waterfall

    hops = waterfall(_spans(args))
    lineage = read_lineage(args)
    steps = explain(hops, lineage)
    untraced = sum(1 for step in steps if step.attempts == 0)
    if args.json:
        print(
            json.dumps(
                {"trace_id": args.trace_id, "verified": lineage["verified"], "steps": [asdict(s) for s in steps]},
                indent=2,
            )
        )
    else:
        print(render_explained(args.trace_id, bool(lineage["verified"]), steps, untraced))
    return 0 if lineage["verified"] else 1


def register(commands: Commands) -> None:
    trace_cmd = client_command(
        commands, "trace", "the waterfall of one trace: every hop, its duration and status", cmd_trace, "auditor"
    )
    trace_cmd.add_argument("trace_id")
    explain_cmd = client_command(
        commands, "explain", "incident view: a trace's spans joined with its ledger lineage", cmd_explain, "auditor"
    )
    explain_cmd.add_argument("trace_id")
