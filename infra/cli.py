"""`agentplane`: the demo, the local plane, runs and their status, contract checks, synth, preflight.

Every failure a user can cause ends in one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from infra.local.auth import LOCAL_ROUTES_PERSONA, served_at, sign
from infra.local.template import REGION as LOCAL_REGION
from infra.paths import CONTRACTS_DIR, FUNCTIONS_DIR, REPO_ROOT

if TYPE_CHECKING:  # the ledger is imported by the audit commands alone, when they run
    from functions.runtime.ledger import Checkpoint

DEFAULT_PORT = 4577
DEFAULT_STATE_DIR = Path(".agentplane")
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
# A deployed API wants the persona's API key beside the signature (its usage plan): read once with
# `aws apigateway get-api-key --api-key <stack output XxxApiKeyId> --include-value`.
API_KEY_SETTING = "AGENTPLANE_API_KEY"
_EXECUTE_API_HOST = re.compile(r"\.execute-api\.(?P<region>[a-z0-9-]+)\.amazonaws\.com")


class CliError(Exception):
    """A failure to report as one line."""


class UsageError(CliError):
    """Bad arguments: exit status 2, as argparse would."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see --help)")


# --- talking to a plane ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


def api_url(args: argparse.Namespace) -> str:
    if getattr(args, "api_url", None):
        url = str(args.api_url).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise CliError(f"--api-url must be http(s), not {args.api_url!r}")
        return url
    return _plane_url(Path(args.state_dir)) or f"http://127.0.0.1:{DEFAULT_PORT}"


def _plane_url(state_dir: Path) -> str | None:
    state = state_dir / "plane.json"
    return str(json.loads(state.read_text())["url"]).rstrip("/") if state.is_file() else None


@dataclass(frozen=True)
class SigningKey:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


@dataclass(frozen=True)
class Endpoint:
    """Where client commands send requests, and the key that SigV4-signs them (None: sent unsigned)."""

    url: str
    key: SigningKey | None = None
    region: str = LOCAL_REGION
    api_key: str | None = None  # x-api-key: puts the requests on the persona's usage plan


def local_endpoint(url: str, state_dir: Path, persona: str) -> Endpoint:
    """The plane at ``url`` with the persona's keys from the credentials a local plane wrote into its state dir."""
    path = state_dir / "credentials.json"
    try:
        keys = json.loads(path.read_text())
    except FileNotFoundError:
        raise CliError(
            f"no local credentials at {path}; is `agentplane local serve --state-dir {state_dir}` running?"
        ) from None
    except (OSError, json.JSONDecodeError) as error:
        raise CliError(f"cannot read local credentials at {path}: {error}") from None
    if not isinstance(keys, dict) or persona not in keys:
        names = ", ".join(sorted(keys)) if isinstance(keys, dict) else "none"
        raise CliError(f"{path} has no {persona!r} credentials (personas: {names})")
    try:
        entry = keys[persona]
        key = SigningKey(str(entry["access_key_id"]), str(entry["secret_access_key"]))
        return Endpoint(url, key, api_key=str(entry["api_key"]) if entry.get("api_key") else None)
    except (KeyError, TypeError, AttributeError):
        raise CliError(f"{path}: the {persona!r} entry needs access_key_id and secret_access_key") from None


def _ambient(url: str) -> Endpoint:
    """A deployed API: signed with the AWS credentials of the environment, if there are any."""
    import boto3
    from botocore.exceptions import BotoCoreError

    try:
        session = boto3.Session()
        found = session.get_credentials()
        frozen = found.get_frozen_credentials() if found is not None else None
    except BotoCoreError as error:
        raise CliError(f"cannot load AWS credentials: {error}") from None
    key = None
    if frozen is not None and frozen.access_key and frozen.secret_key:
        key = SigningKey(frozen.access_key, frozen.secret_key, frozen.token)
    host = _EXECUTE_API_HOST.search(url)
    region = host["region"] if host else session.region_name or LOCAL_REGION
    return Endpoint(url, key, region, api_key=os.environ.get(API_KEY_SETTING) or None)


def connect(args: argparse.Namespace, *, persona: str | None = None) -> Endpoint:
    """The plane to talk to, with the key of ``persona`` (else ``--persona``, else the command's persona) when it
    is a local one."""
    url = api_url(args)
    persona = persona or args.persona or args.default_persona
    served = served_at(url)
    if served is not None:  # a plane this process serves (the demo; tests)
        if persona not in served.defaults:
            raise CliError(f"the plane at {url} has no {persona!r} persona (personas: {', '.join(served.defaults)})")
        key = served.defaults[persona]
        return Endpoint(url, SigningKey(key.access_key_id, key.secret_access_key), api_key=key.api_key)
    state_dir = Path(args.state_dir)
    if not args.api_url or _plane_url(state_dir) == url:
        return local_endpoint(url, state_dir, persona)
    return _ambient(url)


def call(
    endpoint: Endpoint,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    raw: bool = False,
) -> Answer:
    base = endpoint.url
    sent = {"Content-Type": "application/json", **(headers or {})}
    if endpoint.api_key is not None:
        sent["x-api-key"] = endpoint.api_key
    if endpoint.key is not None:
        sent = sign(
            method,
            base + path,
            sent,
            body,
            access_key_id=endpoint.key.access_key_id,
            secret_access_key=endpoint.key.secret_access_key,
            session_token=endpoint.key.session_token,
            region=endpoint.region,
        )
    # The scheme is checked by api_url (or is the local plane's http).
    request = urllib.request.Request(base + path, data=body, method=method, headers=sent)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            content = response.read()
            return Answer(response.status, dict(response.headers), content.decode() if raw else _json(content))
    except urllib.error.HTTPError as error:
        return Answer(error.code, dict(error.headers), _json(error.read()))
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise CliError(f"cannot reach the plane at {base} ({reason}); is `agentplane local serve` running?") from None


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return raw.decode(errors="replace")


def one_line(text: object, limit: int = 200) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def expect(answer: Answer, *statuses: int) -> Any:
    if answer.status in statuses:
        return answer.body
    body = answer.body if isinstance(answer.body, dict) else {}
    detail = body.get("detail") or body.get("message") or answer.body
    raise CliError(f"{answer.status} {one_line(body.get('title', 'error'))}: {one_line(detail)}")


def expect_execution(answer: Answer, base: str) -> dict[str, Any]:
    """An execution as the plane reports it, or one line saying the URL is not an agentplane API."""
    body = expect(answer, 200)
    if not (isinstance(body, dict) and {"execution_id", "status", "steps"} <= body.keys()):
        raise CliError(f"{base} did not answer like an agentplane API (got {one_line(body, 80)!r})")
    return body


def follow(
    endpoint: Endpoint,
    execution_id: str,
    *,
    timeout: float,
    until: Callable[[dict[str, Any]], bool] | None = None,
    while_running: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Poll a run until it ends (and ``until`` holds), or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        body = expect_execution(call(endpoint, "GET", f"/v1/executions/{execution_id}"), endpoint.url)
        if body["status"] in TERMINAL and (until is None or until(body)):
            return body
        if body["status"] == "RUNNING" and while_running is not None:
            while_running(body)
        if time.monotonic() > deadline:
            raise CliError(f"execution {execution_id} still {body['status']} after {timeout:.0f}s")
        time.sleep(0.1)


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


# --- commands -------------------------------------------------------------------------------------


def read_json_file(path: str) -> bytes:
    try:
        raw = Path(path).read_bytes()
        json.loads(raw)
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise CliError(f"{path} is not JSON: {error.msg} at line {error.lineno}") from None
    return raw


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
    url = api_url(args)
    if served_at(url) is None and args.api_url and _plane_url(Path(args.state_dir)) != url:
        raise CliError(
            "rollout start drives the local plane; on AWS, deploying the changed stack starts the rollout "
            "(CodeDeploy): follow it with `agentplane rollout status`"
        )
    query = urllib.parse.urlencode({"agent": args.agent, **({"fault": args.fault} if args.fault else {})})
    started = expect(call(connect(args, persona=LOCAL_ROUTES_PERSONA), "POST", f"/local/rollouts?{query}"), 202)
    latest = started["history"][-1]["event"]
    print(json.dumps(started, indent=2) if args.json else f"{started['deployment_id']}: {latest}")
    return 0


def cmd_rollout_demo(args: argparse.Namespace) -> int:
    """A rollout on a fresh local plane, with doc-review traffic until it completes or rolls back."""
    if args.runs < 1:
        raise CliError(f"--runs must be at least 1, not {args.runs}")
    print("starting the local plane (synthesizing the CDK app, standing it up on moto)...", flush=True)
    plane = _start_plane(args)
    try:
        admin = local_endpoint(plane.url, plane.state_dir, "admin")
        query = urllib.parse.urlencode({"agent": args.agent, **({"fault": args.new_fault} if args.new_fault else {})})
        started = expect(call(admin, "POST", f"/local/rollouts?{query}"), 202)
        fault = f", the new version failing with {args.new_fault}" if args.new_fault else ""
        print(f"rollout {started['deployment_id']} of {started['agent']}: {started['config']}{fault}")
        print(f"  (a deployment minute lasts {plane.options.rollout_minute_s:g} s on this plane)")
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


def pending_approvals(endpoint: Endpoint, execution_id: str | None = None) -> list[dict[str, Any]]:
    body = expect(call(endpoint, "GET", "/v1/approvals?status=PENDING"), 200)
    approvals: list[dict[str, Any]] = body["approvals"]
    return [a for a in approvals if execution_id is None or a["execution_id"] == execution_id]


def settle(endpoint: Endpoint, approval_id: str, decision: str, reason: str, args_sha256: str) -> dict[str, Any]:
    payload: dict[str, Any] = {"decision": decision, "reason": reason, "args_sha256": args_sha256}
    settled: dict[str, Any] = expect(
        call(endpoint, "POST", f"/v1/approvals/{approval_id}", json.dumps(payload).encode()), 200
    )
    return settled


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


def fetch_export(endpoint: Endpoint) -> str:
    """The whole export, page by page (each page names the next in ``X-Next-Cursor``)."""
    pages: list[str] = []
    cursor: str | None = None
    while True:
        query = "" if cursor is None else f"?cursor={urllib.parse.quote(cursor)}"
        answer = call(endpoint, "GET", f"/v1/audit/export{query}", raw=True)
        pages.append(expect(answer, 200))
        cursor = {k.lower(): v for k, v in answer.headers.items()}.get("x-next-cursor")
        if not cursor:
            return "".join(pages)


def _fetch_export(args: argparse.Namespace) -> str:
    return fetch_export(connect(args))


def _read_export(path: str) -> Any:
    from functions.runtime.ledger import ExportError, read_export

    try:
        with Path(path).open() as fp:
            return read_export(fp)
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}") from None
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


def warn(message: str) -> None:
    print(f"agentplane: warning: {message}", file=sys.stderr)


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
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "file"
        raise CliError(f"{path} is not an audit checkpoint ({where}: {first['msg']})") from None


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


def _lineage(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = expect(call(connect(args), "GET", f"/v1/audit/traces/{args.trace_id}"), 200)
    return body


def cmd_audit_explain(args: argparse.Namespace) -> int:
    body = _lineage(args)
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
    return 0 if body["verified"] else 1


_XRAY_TRACE_ID = re.compile(r"^1-[0-9a-f]{8}-[0-9a-f]{24}$")


def _spans(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The trace's spans: from the local plane's OTLP receiver, or from X-Ray for a deployed plane."""
    if not _XRAY_TRACE_ID.match(args.trace_id):
        raise CliError(f"{args.trace_id!r} is not a trace id (1-xxxxxxxx-xxxxxxxxxxxxxxxxxxxxxxxx)")
    url = api_url(args)
    if served_at(url) is None and args.api_url and _plane_url(Path(args.state_dir)) != url:
        from infra.traces import spans_from_xray

        return spans_from_xray(_xray_traces(args.trace_id, _ambient(url).region))
    journal = Path(args.state_dir) / "spans.jsonl"
    if not args.api_url and _plane_url(Path(args.state_dir)) is None and journal.is_file():
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
    lineage = _lineage(args)
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


def cmd_audit_digest(args: argparse.Namespace) -> int:
    body = expect(call(connect(args, persona=LOCAL_ROUTES_PERSONA), "POST", "/local/schedules/run"), 200)
    for fired in body["fired"]:
        print(f"{fired['rule']}: {json.dumps(fired['result'])}")
    return 0


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


def _contracts(directory: str | None) -> dict[str, Any]:
    from contracts.loader import ContractError, load_contracts

    try:
        return dict(load_contracts(Path(directory))) if directory else dict(load_contracts())
    except (ContractError, OSError) as error:
        raise CliError(str(error)) from None


def cmd_contracts_card(args: argparse.Namespace) -> int:
    from contracts.card import agent_card

    contracts = _contracts(args.directory)
    if args.name not in contracts:
        raise CliError(f"no contract named {args.name!r} (known: {', '.join(contracts)})")
    url = str(args.url or _plane_url(Path(args.state_dir)) or f"http://127.0.0.1:{DEFAULT_PORT}").rstrip("/")
    print(json.dumps(agent_card(contracts[args.name], url=url), indent=2))
    return 0


def cmd_invoke(args: argparse.Namespace) -> int:
    import contextlib

    from infra.local.agent_run import AgentRunError, LocalAgents, step_event

    contracts = _contracts(args.contracts)
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


def _synthesize(out: Path, context: dict[str, str] | None = None) -> Any:
    """The CDK app synthesized into ``out`` (cdk-nag runs); a failure is one line."""
    from contracts.loader import ContractError
    from infra.app import ContextError, build_app
    from infra.components.layers import MissingLambdaDependencies

    try:
        return build_app(out, context=context).synth()
    except (MissingLambdaDependencies, ContractError, ContextError) as error:
        raise CliError(str(error)) from None
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        report = out / "validation-report.json"
        raise CliError(f"synth failed: {first}" + (f" (see {report})" if report.exists() else "")) from None


def cmd_synth(args: argparse.Namespace) -> int:
    out = Path(args.out)
    assembly = _synthesize(out)
    for stack in assembly.stacks:
        print(f"{stack.stack_name}: {out / stack.template_file}  (cdk-nag AwsSolutions: clean)")
    return 0


def cmd_preflight(args: argparse.Namespace) -> int:
    from infra.preflight import PreflightError, preflight

    if args.assembly:
        assembly = Path(args.assembly)
        if args.context:
            raise UsageError("agentplane preflight: --context applies when synthesizing, not to --assembly")
        if not assembly.is_dir():
            raise UsageError(f"agentplane preflight: --assembly {assembly}: no such cloud assembly directory")
    else:
        assembly = Path(args.state_dir) / "preflight"
        context = {"aws:cdk:enable-asset-metadata": "true"}  # preflight reads the staged assets
        for setting in args.context or []:
            key, equals, value = setting.partition("=")
            if not equals or not key:
                raise UsageError(f"agentplane preflight: --context {setting!r}: expected KEY=VALUE")
            context[key] = value
        _synthesize(assembly, context)
    try:
        findings = preflight(assembly, args.stack)
    except PreflightError as error:
        raise UsageError(f"agentplane preflight: {error}") from None
    if args.json:
        print(json.dumps([finding.as_json() for finding in findings], indent=2))
    else:
        for finding in findings:
            print(finding.line())
    return 1 if any(finding.severity == "error" for finding in findings) else 0


def cmd_cost(args: argparse.Namespace) -> int:
    from infra.cost import CostError, Profile, estimate, load_pricing, parse_rate, render
    from infra.cost.measure import measure_locally

    try:
        rate = parse_rate(args.rate)
        prices = load_pricing(args.region, Path(args.pricing) if args.pricing else None)
        if args.profile:
            profile = Profile.read(Path(args.profile))
        else:
            request = Path(args.request) if args.request else None
            assembly = Path(args.assembly) if args.assembly else None
            profile = measure_locally(
                args.workflow, request, runs=args.runs, state_dir=Path(args.state_dir), assembly=assembly
            )
        if profile.workflow != args.workflow:
            raise CostError(f"the profile measured {profile.workflow!r}, not {args.workflow!r}")
        result = estimate(profile, prices, rate)
    except CostError as error:
        raise CliError(str(error)) from None
    if args.save_profile:
        try:
            Path(args.save_profile).write_text(profile.model_dump_json(indent=2) + "\n")
        except OSError as error:
            raise CliError(f"cannot write {args.save_profile}: {error.strerror}") from None
    print(result.model_dump_json(indent=2) if args.json else render(result, profile))
    return 0


def _start_plane(args: argparse.Namespace) -> Any:
    from infra.local.faults import FaultPlan, FaultSpecError
    from infra.local.plane import LocalPlane, PlaneOptions, StateDirInUse

    try:
        faults = FaultPlan.parse(args.fault or [])
    except FaultSpecError as error:
        raise CliError(str(error)) from None
    assembly = Path(args.assembly) if getattr(args, "assembly", None) else None
    if assembly is not None and not assembly.is_dir():
        raise CliError(f"--assembly {assembly}: no such cloud assembly directory")
    options = PlaneOptions(
        state_dir=Path(args.state_dir), port=args.port, faults=faults, assembly_dir=assembly, fresh=args.fresh
    )
    if getattr(args, "rollout_minute_s", None) is not None:
        if args.rollout_minute_s <= 0:
            raise CliError(f"--rollout-minute-s must be positive, not {args.rollout_minute_s}")
        options.rollout_minute_s = args.rollout_minute_s
    try:
        return LocalPlane(options).start()
    except StateDirInUse as error:
        raise CliError(str(error)) from None
    except OSError as error:
        raise CliError(f"cannot start the local plane on 127.0.0.1:{args.port}: {error.strerror or error}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    plane = _start_plane(args)
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
    print(f"state and logs in {plane.state_dir}; Ctrl-C stops it", flush=True)
    try:
        stop.wait()
    finally:
        plane.stop()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    print("starting the local plane (synthesizing the CDK app, standing it up on moto)...", flush=True)
    plane = _start_plane(args)
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


def parser() -> argparse.ArgumentParser:
    root = _Parser(prog="agentplane", description="Orchestration plane for AI agents on AWS.")
    commands = root.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def plane_options(p: argparse.ArgumentParser, port: int) -> None:
        p.add_argument("--port", type=int, default=port, help=f"port on 127.0.0.1 (default {port}; 0 picks one)")
        p.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR), help="state, logs, synthesized app")
        p.add_argument("--fault", action="append", metavar="AGENT=ERROR[:RATE]", help="inject a failure into an agent")
        p.add_argument(
            "--fresh", action="store_true", help="wipe what a previous plane left in the state dir (else: refuse it)"
        )

    def client_options(p: argparse.ArgumentParser, persona: str) -> None:
        p.add_argument(
            "--api-url", help="a deployed API (signed with your AWS credentials) or a plane (default: the local one)"
        )
        p.add_argument(
            "--state-dir", default=str(DEFAULT_STATE_DIR), help="where `local serve` wrote plane.json, credentials.json"
        )
        p.add_argument("--persona", help=f"local plane: sign with this persona's local key (default {persona})")
        p.add_argument("--json", action="store_true", help="print the raw JSON")
        p.set_defaults(default_persona=persona)

    demo = commands.add_parser("demo", help="run doc-review end to end on the local plane")
    plane_options(demo, 0)
    demo.add_argument("--request", default=str(REPO_ROOT / "events" / "doc-review-request.json"))
    demo.add_argument("--timeout", type=float, default=60.0)
    demo.set_defaults(handler=cmd_demo)

    local = commands.add_parser("local", help="the local plane").add_subparsers(
        dest="local_command", required=True, parser_class=_Parser
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

    run = commands.add_parser("run", help="start a workflow run")
    run.add_argument("workflow")
    run.add_argument("--input", required=True, help="JSON request body file")
    run.add_argument("--idempotency-key")
    run.add_argument("--wait", action="store_true", help="follow the run to its end")
    run.add_argument("--timeout", type=float, default=120.0)
    client_options(run, "submitter")
    run.set_defaults(handler=cmd_run)

    status = commands.add_parser("status", help="a run's status, steps and decision")
    status.add_argument("execution_id")
    client_options(status, "submitter")
    status.set_defaults(handler=cmd_status)

    capabilities = commands.add_parser("capabilities", help="the registry: implementations, health, circuits")
    client_options(capabilities, "submitter")
    capabilities.set_defaults(handler=cmd_capabilities)

    rollout = commands.add_parser("rollout", help="canary rollouts of agent versions").add_subparsers(
        dest="rollout_command", required=True, parser_class=_Parser
    )
    rollout_status = rollout.add_parser("status", help="each agent's and workflow's live versions and weights")
    client_options(rollout_status, "auditor")
    rollout_status.set_defaults(handler=cmd_rollout_status)
    rollout_start = rollout.add_parser(
        "start", help="local plane: publish an agent's new version and shift traffic to it as its group says"
    )
    rollout_start.add_argument("agent")
    rollout_start.add_argument("--fault", help="Error[:rate] injected into the new version only, e.g. ModelError")
    client_options(rollout_start, "admin")
    rollout_start.set_defaults(handler=cmd_rollout_start)
    rollout_demo = rollout.add_parser(
        "demo", help="a rollout on a fresh local plane under doc-review traffic, until it completes or rolls back"
    )
    rollout_demo.add_argument("agent", nargs="?", default="evidence-verifier")
    rollout_demo.add_argument("--new-fault", metavar="ERROR[:RATE]", help="make the new version fail, e.g. ModelError")
    rollout_demo.add_argument("--runs", type=int, default=40, help="at most this many doc-review runs (default 40)")
    # Long enough for a run that waits for a person (a degraded one) to fit in the canary's first minutes.
    rollout_demo.add_argument("--rollout-minute-s", type=float, default=2.0, help="seconds per deployment minute")
    rollout_demo.add_argument("--request", default=str(REPO_ROOT / "events" / "doc-review-low-risk.json"))
    rollout_demo.add_argument("--timeout", type=float, default=60.0)
    plane_options(rollout_demo, 0)
    rollout_demo.set_defaults(handler=cmd_rollout_demo)

    approvals = commands.add_parser("approvals", help="human approval of high-risk runs").add_subparsers(
        dest="approvals_command", required=True, parser_class=_Parser
    )
    listing = approvals.add_parser("list", help="pending approvals")
    client_options(listing, "approver")
    listing.set_defaults(handler=cmd_approvals_list)
    for decision in ("approve", "reject"):
        deciding = approvals.add_parser(decision, help=f"{decision} a pending approval (resumes its run)")
        deciding.add_argument("approval_id")
        deciding.add_argument("--reason", required=True)
        deciding.add_argument(
            "--args-sha256", help="digest of what you reviewed (from `approvals list`; default: what waits now)"
        )
        client_options(deciding, "approver")
        deciding.set_defaults(handler=cmd_approvals_decide, decision=decision)

    audit = commands.add_parser("audit", help="the tamper-evident ledger").add_subparsers(
        dest="audit_command", required=True, parser_class=_Parser
    )
    export = audit.add_parser("export", help="entries and signed digests as JSON Lines")
    export.add_argument("--out", required=True)
    client_options(export, "auditor")
    export.set_defaults(handler=cmd_audit_export)
    verify = audit.add_parser("verify", help="check every chain link, Merkle root, signature and digest link")
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
    client_options(verify, "auditor")
    verify.set_defaults(handler=cmd_audit_verify)
    prove_cmd = audit.add_parser("prove", help="inclusion proof of one record, verifiable offline")
    prove_cmd.add_argument("record_id")
    prove_cmd.add_argument("--file", required=True, help="an export")
    prove_cmd.set_defaults(handler=cmd_audit_prove)
    explain = audit.add_parser("explain", help="the lineage of one trace, verified step by step")
    explain.add_argument("trace_id")
    client_options(explain, "auditor")
    explain.set_defaults(handler=cmd_audit_explain)
    digest = audit.add_parser("digest", help="sign a digest now (local plane: fires its scheduled rules)")
    client_options(digest, "auditor")
    digest.set_defaults(handler=cmd_audit_digest)

    trace_cmd = commands.add_parser("trace", help="the waterfall of one trace: every hop, its duration and status")
    trace_cmd.add_argument("trace_id")
    client_options(trace_cmd, "auditor")
    trace_cmd.set_defaults(handler=cmd_trace)
    explain_cmd = commands.add_parser("explain", help="incident view: a trace's spans joined with its ledger lineage")
    explain_cmd.add_argument("trace_id")
    client_options(explain_cmd, "auditor")
    explain_cmd.set_defaults(handler=cmd_explain)

    contracts = commands.add_parser("contracts", help="capability contracts").add_subparsers(
        dest="contracts_command", required=True, parser_class=_Parser
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

    cost = commands.add_parser("cost", help="monthly cost and cost per 1,000 runs of a workflow at a rate")
    cost.add_argument("--workflow", required=True)
    cost.add_argument("--rate", required=True, help="runs per second, minute, hour, day or month: 50/s, 1e6/month")
    cost.add_argument("--region", default="us-east-1", help="price list in infra/cost/pricing/ (default us-east-1)")
    cost.add_argument("--pricing", help="a price list file instead of the region's")
    cost.add_argument("--profile", help="a saved run profile (default: measure runs on a local plane now)")
    cost.add_argument("--save-profile", help="write the measured run profile here")
    cost.add_argument("--request", help="request body for the measured runs (default: the workflow's sample)")
    cost.add_argument("--runs", type=int, default=2, help="runs to measure and average")
    cost.add_argument("--assembly", help="measure this synthesized cloud assembly instead of synthesizing")
    cost.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR / "cost"))
    cost.add_argument("--json", action="store_true", help="print the estimate as JSON")
    cost.set_defaults(handler=cmd_cost)

    card = contracts.add_parser("card", help="print a contract as an A2A Agent Card")
    card.add_argument("name")
    card.add_argument("--directory", help="contracts directory (default: the shipped contracts)")
    card.add_argument("--url", help="where the plane is reached (default: the local plane)")
    card.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR), help="where `local serve` wrote plane.json")
    card.set_defaults(handler=cmd_contracts_card)

    def agent_dirs(p: argparse.ArgumentParser) -> None:
        p.add_argument("--contracts", default=str(CONTRACTS_DIR / "agents"), help="contracts directory")
        p.add_argument("--functions", default=str(FUNCTIONS_DIR), help="functions directory (agents' code)")

    invoke_cmd = commands.add_parser("invoke", help="run one agent in-process on a sample event (moto for AWS)")
    invoke_cmd.add_argument("agent")
    invoke_cmd.add_argument("--event", required=True, help="JSON file: a payload, an envelope or a bus event")
    agent_dirs(invoke_cmd)
    invoke_cmd.set_defaults(handler=cmd_invoke)

    new = commands.add_parser("new", help="scaffold a new component").add_subparsers(
        dest="new_command", required=True, parser_class=_Parser
    )
    new_agent_cmd = new.add_parser("agent", help="write a contract and a handler for a new agent")
    new_agent_cmd.add_argument("name", help="kebab-case agent name")
    new_agent_cmd.add_argument("--description")
    agent_dirs(new_agent_cmd)
    new_agent_cmd.set_defaults(handler=cmd_new_agent)

    synth = commands.add_parser("synth", help="synthesize the CDK app (cdk-nag runs)")
    synth.add_argument("--out", default="cdk.out")
    synth.set_defaults(handler=cmd_synth)

    check = commands.add_parser("preflight", help="check a synthesized app for what only AWS would refuse")
    check.add_argument("--assembly", help="a synthesized cloud assembly (default: synthesize the app now)")
    check.add_argument("--stack", help="check this stack only (default: every stack of the assembly)")
    check.add_argument(
        "-c", "--context", action="append", metavar="KEY=VALUE", help="CDK context for the synth, as `cdk -c`"
    )
    check.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR), help="where the synthesized app is written")
    check.add_argument("--json", action="store_true", help="print the findings as JSON")
    check.set_defaults(handler=cmd_preflight)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
        code: int = args.handler(args)
    except UsageError as error:
        print(error, file=sys.stderr)
        return 2
    except CliError as error:
        print(f"agentplane: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("agentplane: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
