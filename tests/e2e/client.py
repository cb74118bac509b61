"""A small HTTP client for e2e tests: real sockets to the plane on 127.0.0.1, bounded waits."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def content_type(self) -> str:
        return {k.lower(): v for k, v in self.headers.items()}.get("content-type", "")


def request(
    base: str, method: str, path: str, body: bytes | dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> Response:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    req = urllib.request.Request(
        base + path, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as answer:
            raw, status, got = answer.read(), answer.status, dict(answer.headers)
    except urllib.error.HTTPError as error:
        raw, status, got = error.read(), error.code, dict(error.headers)
    return Response(status, got, json.loads(raw) if raw else None)


def finished(base: str, execution_id: str, *, timeout: float = 60.0, enriched: bool = False) -> dict[str, Any]:
    """The run once it has ended (and, with ``enriched``, once entity-tagger has handled its decision)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run: dict[str, Any] = request(base, "GET", f"/v1/executions/{execution_id}").body
        done = run["status"] not in ("RUNNING", "PENDING")
        if done and (not enriched or any(s["agent"] == "entity-tagger" for s in run["steps"])):
            return run
        time.sleep(0.05)
    raise AssertionError(f"execution {execution_id} did not finish in {timeout}s: {run['status']}")
