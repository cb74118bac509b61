"""A small HTTP client for e2e tests: real sockets to the plane on 127.0.0.1, bounded waits.

Requests are SigV4-signed as a persona with the keys of the plane this process serves at ``base``: admin (every
route) unless a test says otherwise, as RBAC tests do; ``persona=None`` sends them unsigned.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infra.local.auth import served_at, sign


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def content_type(self) -> str:
        return {k.lower(): v for k, v in self.headers.items()}.get("content-type", "")


def _keys(base: str, persona: str) -> Mapping[str, str] | None:
    plane = served_at(base)
    if plane is None:
        return None  # not a plane of this process (e.g. one started by the CLI): unsigned
    key = plane.defaults[persona]
    return {"access_key_id": key.access_key_id, "secret_access_key": key.secret_access_key}


def _api_key(base: str, persona: str) -> str | None:
    plane = served_at(base)
    return None if plane is None else plane.defaults[persona].api_key


def request(
    base: str,
    method: str,
    path: str,
    body: bytes | dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    *,
    credentials: Mapping[str, str] | None = None,
    persona: str | None = "admin",
) -> Response:
    """``credentials`` ({access_key_id, secret_access_key}) sign as given; else the plane's key for ``persona``."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    sent = {"Content-Type": "application/json", **(headers or {})}
    keys = credentials or (_keys(base, persona) if persona is not None else None)
    api_key = _api_key(base, persona or "admin")
    if api_key is not None and not any(h.lower() == "x-api-key" for h in sent):
        sent["x-api-key"] = api_key  # the persona's usage plan, as the CLI sends it
    if keys is not None:
        sent = sign(method, base + path, sent, data, **keys)
    req = urllib.request.Request(base + path, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(req, timeout=30) as answer:
            raw, status, got = answer.read(), answer.status, dict(answer.headers)
    except urllib.error.HTTPError as error:
        raw, status, got = error.read(), error.code, dict(error.headers)
    return Response(status, got, json.loads(raw) if raw else None)


def settle_approvals(base: str, execution_id: str, decision: str) -> int:
    """As the approver persona, decide every pending approval of this run; returns how many it decided."""
    pending = request(base, "GET", "/v1/approvals?status=PENDING", persona="approver").body["approvals"]
    mine = [a for a in pending if a["execution_id"] == execution_id]
    for approval in mine:
        body = {"decision": decision, "reason": f"e2e: {decision}", "args_sha256": approval["args_sha256"]}
        answer = request(base, "POST", f"/v1/approvals/{approval['approval_id']}", body, persona="approver")
        assert answer.status == 200, answer.body
    return len(mine)


def finished(
    base: str, execution_id: str, *, timeout: float = 60.0, enriched: bool = False, approve: str | None = None
) -> dict[str, Any]:
    """The run once it has ended (and, with ``enriched``, once entity-tagger has handled its decision).

    With ``approve`` ("approve" or "reject"), a run waiting at the approval gate is decided as the approver.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = request(base, "GET", f"/v1/executions/{execution_id}")
        if answer.status == 429:  # the persona's usage plan: poll again later, as any client would
            time.sleep(0.05)
            continue
        run: dict[str, Any] = answer.body
        if approve and run["status"] == "RUNNING":
            settle_approvals(base, execution_id, approve)
        done = run["status"] not in ("RUNNING", "PENDING")
        if done and (not enriched or any(s["agent"] == "entity-tagger" for s in run["steps"])):
            return run
        time.sleep(0.05)
    raise AssertionError(f"execution {execution_id} did not finish in {timeout}s")
