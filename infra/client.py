"""The one HTTP client of an agentplane API: SigV4 signing, problem answers, paging, following a run.

The CLI, the cost measurement, the drills, the benchmarks and the e2e tests all talk to a plane through it,
whether the plane is a local one (keys from its state dir, or from this process's served planes) or a
deployed API (the environment's AWS credentials).
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.local.auth import served_at, sign
from infra.local.template import REGION as LOCAL_REGION

DEFAULT_PORT = 4577
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
# A deployed API wants the persona's API key beside the signature (its usage plan): read once with
# `aws apigateway get-api-key --api-key <stack output XxxApiKeyId> --include-value`.
API_KEY_SETTING = "AGENTPLANE_API_KEY"
_EXECUTE_API_HOST = re.compile(r"\.execute-api\.(?P<region>[a-z0-9-]+)\.amazonaws\.com")


class ClientError(Exception):
    """A request that could not be made, or an answer the caller did not expect: one line for a person."""


@dataclass(frozen=True)
class SigningKey:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


@dataclass(frozen=True)
class Endpoint:
    """Where requests go, and the key that SigV4-signs them (None: sent unsigned)."""

    url: str
    key: SigningKey | None = None
    region: str = LOCAL_REGION
    api_key: str | None = None  # x-api-key: puts the requests on the persona's usage plan


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: Any

    def header(self, name: str) -> str | None:
        return {k.lower(): v for k, v in self.headers.items()}.get(name.lower())

    @property
    def content_type(self) -> str:
        return self.header("content-type") or ""


# --- where a plane is, and with which key ---------------------------------------------------------


def plane_url(state_dir: Path) -> str | None:
    """The URL a local plane serving from ``state_dir`` wrote into its ``plane.json``, if one does."""
    state = state_dir / "plane.json"
    return str(json.loads(state.read_text())["url"]).rstrip("/") if state.is_file() else None


def local_endpoint(url: str, state_dir: Path, persona: str) -> Endpoint:
    """The plane at ``url`` with the persona's keys from the credentials a local plane wrote into its state dir."""
    path = state_dir / "credentials.json"
    try:
        keys = json.loads(path.read_text())
    except FileNotFoundError:
        raise ClientError(
            f"no local credentials at {path}; is `agentplane local serve --state-dir {state_dir}` running?"
        ) from None
    except (OSError, json.JSONDecodeError) as error:
        raise ClientError(f"cannot read local credentials at {path}: {error}") from None
    if not isinstance(keys, dict) or persona not in keys:
        names = ", ".join(sorted(keys)) if isinstance(keys, dict) else "none"
        raise ClientError(f"{path} has no {persona!r} credentials (personas: {names})")
    try:
        entry = keys[persona]
        key = SigningKey(str(entry["access_key_id"]), str(entry["secret_access_key"]))
        return Endpoint(url, key, api_key=str(entry["api_key"]) if entry.get("api_key") else None)
    except (KeyError, TypeError, AttributeError):
        raise ClientError(f"{path}: the {persona!r} entry needs access_key_id and secret_access_key") from None


def served_endpoint(url: str, persona: str) -> Endpoint | None:
    """A plane this process serves (the demo, tests), with the persona's key; None when ``url`` is not one."""
    served = served_at(url)
    if served is None:
        return None
    if persona not in served.defaults:
        raise ClientError(f"the plane at {url} has no {persona!r} persona (personas: {', '.join(served.defaults)})")
    key = served.defaults[persona]
    return Endpoint(url, SigningKey(key.access_key_id, key.secret_access_key), api_key=key.api_key)


def ambient_endpoint(url: str) -> Endpoint:
    """A deployed API: signed with the AWS credentials of the environment, if there are any."""
    import boto3
    from botocore.exceptions import BotoCoreError

    try:
        session = boto3.Session()
        found = session.get_credentials()
        frozen = found.get_frozen_credentials() if found is not None else None
    except BotoCoreError as error:
        raise ClientError(f"cannot load AWS credentials: {error}") from None
    key = None
    if frozen is not None and frozen.access_key and frozen.secret_key:
        key = SigningKey(frozen.access_key, frozen.secret_key, frozen.token)
    host = _EXECUTE_API_HOST.search(url)
    region = host["region"] if host else session.region_name or LOCAL_REGION
    return Endpoint(url, key, region, api_key=os.environ.get(API_KEY_SETTING) or None)


# --- requests -------------------------------------------------------------------------------------


def signed_headers(
    endpoint: Endpoint, method: str, url: str, headers: Mapping[str, str] | None, body: bytes | None
) -> dict[str, str]:
    """What a request to ``url`` sends: JSON content type, the API key, and a SigV4 signature if there is a key."""
    sent = {"Content-Type": "application/json", **(headers or {})}
    if endpoint.api_key is not None and not any(name.lower() == "x-api-key" for name in sent):
        sent["x-api-key"] = endpoint.api_key
    if endpoint.key is None:
        return sent
    return sign(
        method,
        url,
        sent,
        body,
        access_key_id=endpoint.key.access_key_id,
        secret_access_key=endpoint.key.secret_access_key,
        session_token=endpoint.key.session_token,
        region=endpoint.region,
    )


def call(
    endpoint: Endpoint,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    *,
    raw: bool = False,
    timeout: float = 120.0,
) -> Answer:
    """One request; the body comes back parsed as JSON (text when it is not JSON, or with ``raw``)."""
    url = endpoint.url + path
    sent = signed_headers(endpoint, method, url, headers, body)
    # The scheme is the caller's: the CLI checks --api-url, a local plane is http.
    request = urllib.request.Request(url, data=body, method=method, headers=sent)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            content = response.read()
            return Answer(response.status, dict(response.headers), content.decode() if raw else _json(content))
    except urllib.error.HTTPError as error:
        return Answer(error.code, dict(error.headers), _json(error.read()))
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ClientError(
            f"cannot reach the plane at {endpoint.url} ({reason}); is `agentplane local serve` running?"
        ) from None


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return raw.decode(errors="replace")


def one_line(text: object, limit: int = 200) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def expect(answer: Answer, *statuses: int) -> Any:
    """The body of an answer with one of ``statuses``; otherwise its problem (RFC 9457) in one line."""
    if answer.status in statuses:
        return answer.body
    body = answer.body if isinstance(answer.body, dict) else {}
    detail = body.get("detail") or body.get("message") or answer.body
    raise ClientError(f"{answer.status} {one_line(body.get('title', 'error'))}: {one_line(detail)}")


def expect_execution(answer: Answer, base: str) -> dict[str, Any]:
    """An execution as the plane reports it, or one line saying the URL is not an agentplane API."""
    body = expect(answer, 200)
    if not (isinstance(body, dict) and {"execution_id", "status", "steps"} <= body.keys()):
        raise ClientError(f"{base} did not answer like an agentplane API (got {one_line(body, 80)!r})")
    return body


# --- what clients do with those requests ----------------------------------------------------------

REFUSED_FOR_NOW = (429, 503)  # throttled by a usage plan, or the workflow at capacity: both say when to retry


def submit(
    endpoint: Endpoint,
    workflow: str,
    body: bytes,
    headers: Mapping[str, str] | None = None,
    *,
    patience: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Answer:
    """Start a run of ``workflow``; a refusal for now (429/503) is sent again after its ``Retry-After`` for up to
    ``patience`` seconds, as a well-behaved client does (send an ``Idempotency-Key`` so a retry never runs twice).
    The last answer comes back, whatever it is."""
    give_up = clock() + patience
    while True:
        answer = call(endpoint, "POST", f"/v1/workflows/{workflow}/executions", body, headers)
        retry_after = answer.header("Retry-After")
        if answer.status not in REFUSED_FOR_NOW or retry_after is None or not retry_after.isdigit():
            return answer
        wait = max(1.0, float(retry_after))
        if clock() + wait > give_up:
            return answer
        sleep(wait)


# The most a status read may wait server-side for its run to end (functions.api.service.MAX_WAIT_S).
LONGEST_WAIT_S = 20.0


def follow(
    endpoint: Endpoint,
    execution_id: str,
    *,
    timeout: float,
    until: Callable[[dict[str, Any]], bool] | None = None,
    while_running: Callable[[dict[str, Any]], None] | None = None,
    interval: float = 0.1,
) -> dict[str, Any]:
    """Follow a run until it ends (and ``until`` holds), or fail after ``timeout`` seconds.

    Each read asks the API to hold it until the run ends (``?wait=``, at most :data:`LONGEST_WAIT_S` and never past
    ``timeout``), so a run costs a read or two rather than a poll every ``interval``. With ``while_running`` (a
    caller that acts while the run waits, e.g. approves it) the reads answer at once, every ``interval``.
    A 429 (the persona's usage plan) is read again later, as any client would.
    """
    deadline = time.monotonic() + timeout
    status = "unknown"
    path = f"/v1/executions/{execution_id}"
    while True:
        wait = 0.0 if while_running is not None else round(min(LONGEST_WAIT_S, deadline - time.monotonic()), 1)
        query = f"?wait={wait:g}" if wait > 0 else ""
        answer = call(endpoint, "GET", path + query, timeout=wait + 60.0)
        if answer.status != 429:
            body = expect_execution(answer, endpoint.url)
            status = body["status"]
            if status in TERMINAL and (until is None or until(body)):
                return body
            if status == "RUNNING" and while_running is not None:
                while_running(body)
        if time.monotonic() > deadline:
            raise ClientError(f"execution {execution_id} still {status} after {timeout:.0f}s")
        time.sleep(interval)


def pending_approvals(endpoint: Endpoint, execution_id: str | None = None) -> list[dict[str, Any]]:
    body = expect(call(endpoint, "GET", "/v1/approvals?status=PENDING"), 200)
    approvals: list[dict[str, Any]] = body["approvals"]
    return [a for a in approvals if execution_id is None or a["execution_id"] == execution_id]


def settle(endpoint: Endpoint, approval_id: str, decision: str, reason: str, args_sha256: str) -> dict[str, Any]:
    """Decide one approval on what was reviewed (``args_sha256``): the API voids it if that changed."""
    payload: dict[str, Any] = {"decision": decision, "reason": reason, "args_sha256": args_sha256}
    settled: dict[str, Any] = expect(
        call(endpoint, "POST", f"/v1/approvals/{approval_id}", json.dumps(payload).encode()), 200
    )
    return settled


def fetch_export(endpoint: Endpoint) -> str:
    """The whole ledger export, page by page (each page names the next in ``X-Next-Cursor``)."""
    pages: list[str] = []
    cursor: str | None = None
    while True:
        query = "" if cursor is None else f"?cursor={urllib.parse.quote(cursor)}"
        answer = call(endpoint, "GET", f"/v1/audit/export{query}", raw=True)
        pages.append(expect(answer, 200))
        cursor = answer.header("x-next-cursor")
        if not cursor:
            return "".join(pages)


# --- a plane this process serves, by URL (tests, benchmarks) --------------------------------------


def request(
    base: str,
    method: str,
    path: str,
    body: bytes | dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    *,
    credentials: Mapping[str, str] | None = None,
    persona: str | None = "admin",
) -> Answer:
    """A request to the plane this process serves at ``base``, signed as ``persona`` with its key (admin, which
    may call every route, unless told otherwise; ``persona=None`` sends it unsigned, still with admin's API key),
    or with ``credentials`` ({access_key_id, secret_access_key}) as given. A URL this process does not serve gets
    unsigned requests. A dict body is sent as JSON."""
    served = served_endpoint(base, persona or "admin")
    key = None
    if credentials is not None:
        key = SigningKey(credentials["access_key_id"], credentials["secret_access_key"])
    elif persona is not None and served is not None:
        key = served.key
    endpoint = Endpoint(base, key, api_key=served.api_key if served else None)
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    return call(endpoint, method, path, data, headers, timeout=30.0)


def finished(
    base: str, execution_id: str, *, timeout: float = 60.0, enriched: bool = False, approve: str | None = None
) -> dict[str, Any]:
    """The run once it has ended (and, with ``enriched``, once entity-tagger has handled its decision).

    With ``approve`` ("approve" or "reject"), a run waiting at the approval gate is decided as the approver.
    """
    admin = served_endpoint(base, "admin") or Endpoint(base)
    approver = served_endpoint(base, "approver") or Endpoint(base)

    def decide(run: dict[str, Any]) -> None:
        for pending in pending_approvals(approver, execution_id):
            settle(approver, pending["approval_id"], approve or "", f"e2e: {approve}", pending["args_sha256"])

    def done(run: dict[str, Any]) -> bool:
        return not enriched or any(step["agent"] == "entity-tagger" for step in run["steps"])

    return follow(
        admin, execution_id, timeout=timeout, until=done, while_running=decide if approve else None, interval=0.05
    )
