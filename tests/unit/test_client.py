"""The one HTTP client against a scripted stand-in on 127.0.0.1: polling past a 429, paging, problems, signing."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from infra.client import (
    Answer,
    ClientError,
    Endpoint,
    SigningKey,
    call,
    expect,
    fetch_export,
    follow,
    request,
    submit,
)

pytestmark = pytest.mark.unit

RUN = {"execution_id": "x", "status": "RUNNING", "steps": []}


@dataclass
class Script:
    """What the stand-in answers, path by path, one answer per request (the last one repeats)."""

    url: str = ""
    answers: dict[str, list[tuple[int, dict[str, str], bytes]]] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)


@pytest.fixture
def api() -> Iterator[Script]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            script.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            queue = script.answers.get(self.path) or script.answers[self.path.split("?")[0]]
            status, headers, body = queue.pop(0) if len(queue) > 1 else queue[0]
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.do_GET()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    script.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield script
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def run(status: str) -> bytes:
    return json.dumps({**RUN, "status": status}).encode()


def test_follow_polls_past_a_throttled_answer_and_a_running_run(api: Script) -> None:
    api.answers["/v1/executions/x"] = [
        (429, {"Retry-After": "1"}, b'{"title": "Too Many Requests"}'),
        (200, {}, run("RUNNING")),
        (200, {}, run("SUCCEEDED")),
    ]
    seen_running: list[str] = []

    ended = follow(
        Endpoint(api.url), "x", timeout=10, interval=0.01, while_running=lambda r: seen_running.append(r["status"])
    )

    assert ended["status"] == "SUCCEEDED"
    assert seen_running == ["RUNNING"]
    assert len(api.seen) == 3


def test_follow_asks_the_api_to_hold_each_read_until_the_run_ends(api: Script) -> None:
    api.answers["/v1/executions/x"] = [(200, {}, run("RUNNING")), (200, {}, run("SUCCEEDED"))]

    ended = follow(Endpoint(api.url), "x", timeout=300, interval=0.01)

    assert ended["status"] == "SUCCEEDED"
    assert [path for path, _ in api.seen] == ["/v1/executions/x?wait=20", "/v1/executions/x?wait=20"]


def test_follow_never_asks_to_wait_past_its_own_timeout(api: Script) -> None:
    api.answers["/v1/executions/x"] = [(200, {}, run("SUCCEEDED"))]

    follow(Endpoint(api.url), "x", timeout=5, interval=0.01)

    (path, _), *_ = api.seen
    waited = float(path.rsplit("wait=", 1)[1])
    assert 0 < waited <= 5


def test_a_follower_that_acts_while_the_run_waits_reads_without_holding(api: Script) -> None:
    api.answers["/v1/executions/x"] = [(200, {}, run("RUNNING")), (200, {}, run("SUCCEEDED"))]

    follow(Endpoint(api.url), "x", timeout=300, interval=0.01, while_running=lambda _: None)

    assert [path for path, _ in api.seen] == ["/v1/executions/x", "/v1/executions/x"]


def test_follow_gives_up_in_one_line_after_its_timeout(api: Script) -> None:
    api.answers["/v1/executions/x"] = [(200, {}, run("RUNNING"))]

    with pytest.raises(ClientError, match="execution x still RUNNING after 0s"):
        follow(Endpoint(api.url), "x", timeout=0.05, interval=0.01)


def test_the_export_is_read_page_by_page(api: Script) -> None:
    api.answers["/v1/audit/export"] = [(200, {"X-Next-Cursor": "c 2"}, b'{"a": 1}\n')]
    api.answers["/v1/audit/export?cursor=c%202"] = [(200, {}, b'{"b": 2}\n')]

    assert fetch_export(Endpoint(api.url)) == '{"a": 1}\n{"b": 2}\n'


def test_a_problem_becomes_one_line() -> None:
    answer = Answer(404, {}, {"title": "Unknown execution", "detail": "no execution 'y'\n(none)"})

    with pytest.raises(ClientError, match=r"^404 Unknown execution: no execution 'y' \(none\)$"):
        expect(answer, 200)


def test_requests_are_signed_with_the_endpoints_key_and_carry_its_api_key(api: Script) -> None:
    api.answers["/v1/health"] = [(200, {}, b"{}")]

    call(Endpoint(api.url, SigningKey("AKIDEXAMPLE", "secret"), api_key="k-1"), "GET", "/v1/health")
    request(api.url, "GET", "/v1/health")  # a URL this process does not serve: unsigned

    (_, signed), (_, unsigned) = api.seen
    assert signed["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert signed["x-api-key"] == "k-1"
    assert "authorization" not in unsigned
    assert "x-api-key" not in unsigned


def test_an_unreachable_plane_is_one_line() -> None:
    with pytest.raises(ClientError, match=r"cannot reach the plane at http://127\.0\.0\.1:9 "):
        call(Endpoint("http://127.0.0.1:9"), "GET", "/v1/health", timeout=2)


AT_CAPACITY = (503, {"Retry-After": "6"}, b'{"title": "At capacity"}')
ACCEPTED = (202, {}, b'{"execution_id": "r-1"}')


def test_a_submission_at_capacity_is_sent_again_after_retry_after(api: Script) -> None:
    api.answers["/v1/workflows/doc-review/executions"] = [AT_CAPACITY, AT_CAPACITY, ACCEPTED]
    now, slept = [0.0], []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    answer = submit(
        Endpoint(api.url), "doc-review", b"{}", {"Idempotency-Key": "k"}, patience=30, sleep=sleep, clock=lambda: now[0]
    )

    assert (answer.status, answer.body) == (202, {"execution_id": "r-1"})
    assert slept == [6.0, 6.0]
    assert [headers["idempotency-key"] for _, headers in api.seen] == ["k", "k", "k"]


def test_a_submission_gives_up_with_the_refusal_once_its_patience_is_spent(api: Script) -> None:
    api.answers["/v1/workflows/doc-review/executions"] = [AT_CAPACITY]
    now, slept = [0.0], []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    answer = submit(Endpoint(api.url), "doc-review", b"{}", patience=10, sleep=sleep, clock=lambda: now[0])

    # one wait fits in 10 s, a second would not: the caller gets the refusal, not a hang
    assert answer.status == 503
    assert slept == [6.0]
    # without patience a refusal comes straight back
    assert submit(Endpoint(api.url), "doc-review", b"{}").status == 503
