"""The load mix `make loadtest` sends to a local plane, SigV4-signed with the personas' local keys.

Run by bench/loadtest.py (which starts the plane and sets the AGENTPLANE_* variables), not on its own.
Submitters send doc-review submissions (each with an Idempotency-Key, some retried), synchronous
quick-checks and status polls; one approver approves pending high-risk runs. A 429 or 503 is shed load, not an
error. Every request and every accepted submission is written to AGENTPLANE_SAMPLES when the run stops.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from pathlib import Path
from typing import Any

from locust import HttpUser, LoadTestShape, constant_throughput, events, task

from infra.client import local_endpoint, signed_headers

REPO = Path(__file__).resolve().parents[1]
STATE_DIR = Path(os.environ.get("AGENTPLANE_STATE_DIR", ".agentplane"))
SAMPLES = Path(os.environ.get("AGENTPLANE_SAMPLES", "loadtest-samples.json"))
PER_USER_RPS = float(os.environ.get("AGENTPLANE_PER_USER_RPS", "1"))
USERS = int(os.environ.get("AGENTPLANE_USERS", "4"))
DURATION_S = float(os.environ.get("AGENTPLANE_DURATION_S", "30"))
SPAWN_RATE = float(os.environ.get("AGENTPLANE_SPAWN_RATE", "5"))
SURGE = os.environ.get("AGENTPLANE_SURGE") == "1"
HIGH_RISK_SHARE = 0.3  # of submissions: these stop at the approval gate
RETRY_SHARE = 0.2  # of submissions: sent again with the same Idempotency-Key, as a client retrying
LOW_RISK = (REPO / "events" / "doc-review-low-risk.json").read_bytes()
HIGH_RISK = (REPO / "events" / "doc-review-request.json").read_bytes()
CLAIMS = [
    "Northwind Analytics holds a SOC 2 Type II report.",
    "Northwind Analytics is headquartered in Rotterdam.",
    "Multi-factor authentication is mandatory for all Northwind Analytics employees.",
    "Northwind Analytics stores customer data in plain text.",
]
SUBMIT = "POST /v1/workflows/doc-review/executions"
INVOKE = "POST /v1/workflows/quick-check/invoke"
POLL = "GET /v1/executions/{id}"
LIST_APPROVALS = "GET /v1/approvals"
APPROVE = "POST /v1/approvals/{id}"

started = time.time()
samples: list[tuple[float, str, int, float]] = []  # (seconds since start, route, status, ms)
submissions: dict[str, list[str]] = {}  # Idempotency-Key -> execution ids answered (one, if the plane is right)


@events.request.add_listener
def _record(name: str, response_time: float, response: Any, **_: Any) -> None:
    status = getattr(response, "status_code", 0) or 0
    samples.append((round(time.time() - started, 3), name, int(status), round(response_time, 2)))


@events.test_stop.add_listener
def _dump(**_: Any) -> None:
    SAMPLES.write_text(json.dumps({"samples": samples, "submissions": submissions}))


class _Signed(HttpUser):
    abstract = True
    persona = "submitter"
    wait_time = constant_throughput(PER_USER_RPS)

    def on_start(self) -> None:
        # The persona's key, and its API key (its usage plan).
        self.endpoint = local_endpoint(str(self.host), STATE_DIR, self.persona)
        assert self.endpoint.key is not None

    def send(self, method: str, path: str, name: str, body: bytes | None = None, **headers: str) -> Any:
        sent = signed_headers(self.endpoint, method, f"{self.host}{path}", headers, body)
        with self.client.request(method, path, data=body, headers=sent, name=name, catch_response=True) as answer:
            if answer.status_code in (429, 503) or answer.status_code < 400:
                answer.success()  # shed load (throttled, or at capacity): counted apart by the report
            else:
                answer.failure(f"{answer.status_code}")
            return answer


class Submitter(_Signed):
    weight = 3

    def on_start(self) -> None:
        super().on_start()
        self.mine: list[str] = []

    @task(3)
    def submit(self) -> None:
        key = uuid.uuid4().hex
        body = HIGH_RISK if random.random() < HIGH_RISK_SHARE else LOW_RISK
        tries = 2 if random.random() < RETRY_SHARE else 1
        for _ in range(tries):
            answer = self.send("POST", "/v1/workflows/doc-review/executions", SUBMIT, body, **{"Idempotency-Key": key})
            if answer.status_code == 202:
                execution_id = answer.json()["execution_id"]
                submissions.setdefault(key, [])
                if execution_id not in submissions[key]:
                    submissions[key].append(execution_id)
                self.mine.append(execution_id)

    @task(3)
    def quick_check(self) -> None:
        body = json.dumps({"claim": random.choice(CLAIMS)}).encode()
        self.send("POST", "/v1/workflows/quick-check/invoke", INVOKE, body)

    @task(4)
    def poll(self) -> None:
        if self.mine:
            self.send("GET", f"/v1/executions/{random.choice(self.mine[-20:])}", POLL)


class Approver(_Signed):
    """One person at the approval queue: approves what waits (a submitter never approves its own run)."""

    persona = "approver"
    fixed_count = 1

    @task
    def approve(self) -> None:
        answer = self.send("GET", "/v1/approvals?status=PENDING", LIST_APPROVALS)
        if answer.status_code != 200:
            return
        for approval in answer.json()["approvals"][:3]:
            body = {"decision": "approve", "reason": "load test: reviewed", "args_sha256": approval["args_sha256"]}
            self.send("POST", f"/v1/approvals/{approval['approval_id']}", APPROVE, json.dumps(body).encode())


if SURGE:

    class Surge(LoadTestShape):
        """The base rate for the first half, then twice as many submitters (twice the rate) to the end."""

        def tick(self) -> tuple[int, float] | None:
            elapsed = self.get_run_time()
            if elapsed >= DURATION_S:
                return None
            users = USERS if elapsed < DURATION_S / 2 else 2 * USERS - 1  # the one approver is not doubled
            return users, SPAWN_RATE
