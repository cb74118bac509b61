"""The `agentplane` CLI: exit codes, one-line errors, and a real HTTP round trip to a stand-in API."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from contracts.loader import CONTRACTS_DIR
from infra import cli, client
from infra.cli.runs import render
from infra.local.faults import FaultPlan, FaultSpecError

pytestmark = pytest.mark.unit

EXECUTION = {
    "execution_id": "x",
    "workflow": "doc-review",
    "status": "SUCCEEDED",
    "trace_id": "1-6745a1b2-5e0c3d9a7b1f42e68c0d9a31",
    "submitted_at": "2026-11-02T10:15:00+00:00",
    "started_at": "2026-11-02T10:15:00.120000+00:00",
    "stopped_at": "2026-11-02T10:15:29.800000+00:00",
    "output": None,
    "error": None,
    "decision": {
        "decision_id": "d-5b1f0c2e9a7d4c3b8e6f1a20",
        "workflow": "doc-review",
        "outcome": "escalate",
        "risk_level": "high",
        "summary": "Vendor assessment: Northwind Analytics: 10 claims; risk high -> escalate",
        "decided_at": "2026-11-02T10:15:29+00:00",
    },
    "steps": [
        {
            "step": "Intake",
            "agent": "document-intake",
            "agent_version": "1.0.0",
            "capability": "document-intake",
            "capability_version": "1.0.0",
            "status": "SUCCEEDED",
            "started_at": "2026-11-02T10:15:00.200000+00:00",
            "finished_at": "2026-11-02T10:15:00.260000+00:00",
            "duration_ms": 61.25,
            "input_sha256": "0" * 64,
        },
        {
            "step": "VerifyClaim/0",
            "agent": "evidence-verifier",
            "agent_version": "1.0.0",
            "capability": "fact-check",
            "capability_version": "1.0.0",
            "status": "SUCCEEDED",
            "started_at": "2026-11-02T10:15:00.300000+00:00",
            "finished_at": "2026-11-02T10:15:00.420000+00:00",
            "duration_ms": 118.5,
            "input_sha256": "1" * 64,
        },
    ],
}
PROBLEM_JSON = "application/problem+json"


def one_line(text: str) -> str:
    """The text, which must be exactly one line (and no traceback)."""
    lines = text.splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


@dataclass
class StandIn:
    """A stand-in for the plane's API on 127.0.0.1: canned answers, and the requests it got."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)  # of each GET, names lower-cased
    # path -> (status, content type, body) overriding the canned routes
    answers: dict[str, tuple[int, str, bytes]] = field(default_factory=dict)


def problem(status: int, title: str, detail: str, instance: str) -> bytes:
    body = {"type": "https://agentplane.dev/problems/not-found", "title": title, "status": status, "detail": detail}
    return json.dumps({**body, "instance": instance}).encode()


@pytest.fixture
def api() -> Iterator[StandIn]:
    stand_in = StandIn(url="")

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, content_type: str, body: bytes, **headers: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            stand_in.requests.append({"method": "GET", "path": self.path})
            stand_in.headers.append({k.lower(): v for k, v in self.headers.items()})
            if self.path in stand_in.answers:
                self._reply(*stand_in.answers[self.path])
            elif self.path.split("?", 1)[0] == "/v1/executions/x":  # a status read, held (?wait=) or not
                self._reply(200, "application/json", json.dumps(EXECUTION).encode())
            else:
                execution_id = self.path.rsplit("/", 1)[-1]
                body = problem(404, "Unknown execution", f"no execution {execution_id!r}", self.path)
                self._reply(404, PROBLEM_JSON, body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            stand_in.requests.append(
                {
                    "method": "POST",
                    "path": self.path,
                    "body": self.rfile.read(length),
                    "idempotency_key": self.headers.get("Idempotency-Key"),
                }
            )
            if self.path == "/v1/workflows/doc-review/executions":
                started = {"execution_id": "x", "trace_id": EXECUTION["trace_id"], "status_url": "/v1/executions/x"}
                self._reply(202, "application/json", json.dumps(started).encode(), Location="/v1/executions/x")
            else:
                body = problem(404, "Unknown workflow", "no workflow named 'nope'; known: doc-review", self.path)
                self._reply(404, PROBLEM_JSON, body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        stand_in.url = f"http://127.0.0.1:{server.server_address[1]}"
        yield stand_in
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def no_plane_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from an empty directory: no `.agentplane/plane.json` of a real plane is picked up."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- usage errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        pytest.param([], "required: command", id="no arguments"),
        pytest.param(["frobnicate"], "invalid choice: 'frobnicate'", id="unknown command"),
        pytest.param(["status"], "required: execution_id", id="status without an id"),
        pytest.param(["run", "doc-review"], "required: --input", id="run without --input"),
        pytest.param(["contracts"], "required: contracts_command", id="contracts without a subcommand"),
        pytest.param(["local", "serve", "--port", "eighty"], "invalid int value: 'eighty'", id="bad --port"),
        pytest.param(["rollout"], "required: rollout_command", id="rollout without a subcommand"),
        pytest.param(["rollout", "start"], "required: agent", id="rollout start without an agent"),
    ],
)
def test_usage_errors_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], says: str) -> None:
    # GIVEN / WHEN the CLI is called with arguments it cannot use
    code = cli.main(argv)

    # THEN it exits 2 with one line on stderr that says what is wrong and where to look
    out, err = capsys.readouterr()
    assert code == 2
    line = one_line(err)
    assert line.startswith("agentplane")
    assert says in line
    assert line.endswith("(see --help)")
    assert out == ""


# --- talking to a plane ---------------------------------------------------------------------------


def test_rollout_start_against_a_deployed_api_says_a_deploy_starts_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = "https://abc123.execute-api.eu-west-1.amazonaws.com/api"
    code = cli.main(["rollout", "start", "risk-scorer", "--api-url", url, "--state-dir", str(tmp_path)])

    _, err = capsys.readouterr()
    assert code == 1
    assert one_line(err) == err.strip()
    assert "deploying the changed stack starts the rollout (CodeDeploy)" in err


def test_rollout_demo_refuses_no_runs_before_starting_anything(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["rollout", "demo", "--runs", "0"]) == 1
    assert "--runs must be at least 1" in capsys.readouterr().err


def test_status_without_a_plane_says_it_cannot_reach_it(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a URL where nothing listens
    url = f"http://127.0.0.1:{free_port()}"

    # WHEN a run's status is asked for
    code = cli.main(["status", "some-id", "--api-url", url])

    # THEN it exits 1 with one line naming the URL and what to do
    assert code == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"agentplane: cannot reach the plane at {url}")
    assert "agentplane local serve" in line


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:4577", "127.0.0.1:4577"])
def test_an_api_url_that_is_not_http_is_refused(capsys: pytest.CaptureFixture[str], url: str) -> None:
    # GIVEN / WHEN a status is asked for from a URL that is not http(s)
    code = cli.main(["status", "x", "--api-url", url])

    # THEN it exits 1 with one line saying so
    assert code == 1
    assert one_line(capsys.readouterr().err) == f"agentplane: --api-url must be http(s), not {url!r}"


def test_an_api_url_without_scheme_or_port_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN / WHEN a status is asked for from a bare host name
    code = cli.main(["status", "x", "--api-url", "localhost"])

    # THEN it exits 1 with one line saying the URL must be http(s)
    assert code == 1
    assert "must be http(s)" in one_line(capsys.readouterr().err)


def test_run_with_a_missing_input_file_fails_in_one_line(
    capsys: pytest.CaptureFixture[str], no_plane_state: Path
) -> None:
    # GIVEN / WHEN a run is started from a file that does not exist
    missing = no_plane_state / "nope.json"
    code = cli.main(["run", "doc-review", "--input", str(missing), "--api-url", f"http://127.0.0.1:{free_port()}"])

    # THEN it exits 1 naming the file and why, before calling any plane
    assert code == 1
    assert one_line(capsys.readouterr().err) == f"agentplane: cannot read {missing}: No such file or directory"


def test_run_with_an_input_that_is_not_json_fails_in_one_line(
    capsys: pytest.CaptureFixture[str], no_plane_state: Path
) -> None:
    # GIVEN a request file that is not JSON
    broken = no_plane_state / "request.json"
    broken.write_text('{"document": {\n  "title": "memo",\n', encoding="utf-8")

    # WHEN a run is started from it
    code = cli.main(["run", "doc-review", "--input", str(broken), "--api-url", f"http://127.0.0.1:{free_port()}"])

    # THEN it exits 1 naming the file and where the JSON breaks
    assert code == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"agentplane: {broken} is not JSON: ")
    assert "at line 3" in line


# --- contracts ------------------------------------------------------------------------------------


def test_contracts_check_lists_the_shipped_contracts(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN / WHEN the shipped contracts are checked
    code = cli.main(["contracts", "check"])

    # THEN each is listed as ok, and the summary counts them
    out, err = capsys.readouterr()
    assert code == 0
    assert err == ""
    listed = [line.split()[1] for line in out.splitlines() if line.startswith("ok  ")]
    assert listed == [
        "decision-recorder",
        "document-intake",
        "entity-tagger",
        "evidence-verifier",
        "fact-checker-llm",
        "failure-recorder",
        "risk-scorer",
        "summarizer",
        "summarizer-cpu",
    ]
    assert out.splitlines()[-1] == "9 contracts valid; schemas in sync"


def test_contracts_check_names_file_field_and_reason_of_a_broken_contract(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # GIVEN a directory with one good contract and one whose latency budget is negative
    (tmp_path / "document-intake.yaml").write_text(
        (CONTRACTS_DIR / "document-intake.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    broken = tmp_path / "risk-scorer.yaml"
    text = (CONTRACTS_DIR / "risk-scorer.yaml").read_text(encoding="utf-8")
    assert "p95_ms: 300" in text
    broken.write_text(text.replace("p95_ms: 300", "p95_ms: -5"), encoding="utf-8")

    # WHEN the directory is checked
    code = cli.main(["contracts", "check", str(tmp_path)])

    # THEN it exits 1 with one line: file, field, reason (with the offending value)
    assert code == 1
    assert one_line(capsys.readouterr().err) == (
        f"agentplane: {broken}: slo.p95_ms: Input should be greater than 0 (got -5)"
    )


def test_contracts_check_reports_invalid_yaml_in_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # GIVEN a contract file that is not YAML
    broken = tmp_path / "risk-scorer.yaml"
    broken.write_text("name: risk-scorer\nversion: [1.0.0\n", encoding="utf-8")

    # WHEN it is checked THEN one line names the file and the line
    assert cli.main(["contracts", "check", str(tmp_path)]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"agentplane: {broken}: <document>: invalid YAML: line ")


# --- faults ---------------------------------------------------------------------------------------


@pytest.fixture
def plane_must_not_start(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoPlane:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise AssertionError("the local plane was started despite a bad --fault")

    monkeypatch.setattr("infra.local.plane.LocalPlane", NoPlane)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        pytest.param("verifier-explodes", "expected agent=ErrorName[:rate]", id="no error name"),
        pytest.param("evidence-verifier=ModelError:1.5", "rate must be in (0, 1]", id="rate above 1"),
        pytest.param("Evidence-Verifier=ModelError", "expected agent=ErrorName[:rate]", id="agent not lower case"),
    ],
)
@pytest.mark.usefixtures("plane_must_not_start")
def test_demo_with_a_bad_fault_fails_before_starting_anything(
    capsys: pytest.CaptureFixture[str], no_plane_state: Path, spec: str, says: str
) -> None:
    # GIVEN / WHEN the demo is asked to inject a fault it cannot parse
    code = cli.main(["demo", "--fault", spec])

    # THEN it exits 1 with one line quoting the spec, and no plane was started (NoPlane would have raised)
    assert code == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"agentplane: fault {spec!r}: ")
    assert says in line
    assert not (no_plane_state / ".agentplane").exists()


def test_fault_plan_parses_what_the_cli_accepts() -> None:
    # GIVEN / WHEN good specs are parsed
    plan = FaultPlan.parse(["evidence-verifier=ModelError", "risk-scorer=Lambda.ServiceException:0.5"])

    # THEN each agent gets its error and rate
    assert {name: (f.error, f.rate) for name, f in plan.faults.items()} == {
        "evidence-verifier": ("ModelError", 1.0),
        "risk-scorer": ("Lambda.ServiceException", 0.5),
    }
    with pytest.raises(FaultSpecError, match="rate must be in"):
        FaultPlan.parse(["risk-scorer=PolicyError:0"])


# --- a real HTTP round trip -----------------------------------------------------------------------


def test_status_renders_the_run(capsys: pytest.CaptureFixture[str], api: StandIn) -> None:
    # GIVEN an API that knows run x
    # WHEN its status is asked for
    code = cli.main(["status", "x", "--api-url", api.url])

    # THEN the table shows the run, each step with its agent, and the decision
    out, err = capsys.readouterr()
    assert code == 0
    assert err == ""
    assert "execution x  workflow doc-review  status SUCCEEDED" in out
    assert EXECUTION["trace_id"] in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("  ") and line.split()}
    assert rows["Intake"][1:5] == ["document-intake", "1.0.0", "SUCCEEDED", "61.2"]
    assert rows["VerifyClaim/0"][1:5] == ["evidence-verifier", "1.0.0", "SUCCEEDED", "118.5"]
    assert "decision d-5b1f0c2e9a7d4c3b8e6f1a20: ESCALATE" in out
    assert api.requests == [{"method": "GET", "path": "/v1/executions/x"}]


def test_status_json_prints_what_the_api_answered(capsys: pytest.CaptureFixture[str], api: StandIn) -> None:
    # GIVEN / WHEN run x's status is asked for as JSON
    code = cli.main(["status", "x", "--api-url", api.url + "/", "--json"])

    # THEN the API's body is printed as is (a trailing slash on the URL does not matter)
    assert code == 0
    assert json.loads(capsys.readouterr().out) == EXECUTION


def test_status_of_an_unknown_run_prints_the_problem(capsys: pytest.CaptureFixture[str], api: StandIn) -> None:
    # GIVEN / WHEN the status of a run the API does not know is asked for
    code = cli.main(["status", "missing", "--api-url", api.url])

    # THEN it exits 1 with the problem's status, title and detail on one line
    assert code == 1
    assert one_line(capsys.readouterr().err) == "agentplane: 404 Unknown execution: no execution 'missing'"


def test_run_posts_the_request_and_follows_it(
    capsys: pytest.CaptureFixture[str], api: StandIn, no_plane_state: Path
) -> None:
    # GIVEN a request file
    request = no_plane_state / "request.json"
    request.write_text(json.dumps({"document": {"title": "memo", "text": "It was founded in 2012."}}), encoding="utf-8")

    # WHEN a run is started with an idempotency key and followed
    code = cli.main(
        ["run", "doc-review", "--input", str(request), "--idempotency-key", "k-1", "--wait", "--api-url", api.url]
    )

    # THEN the file's bytes and the key were sent, and the finished run is rendered
    assert code == 0
    posted = api.requests[0]
    assert (posted["method"], posted["path"]) == ("POST", "/v1/workflows/doc-review/executions")
    assert posted["body"] == request.read_bytes()
    assert posted["idempotency_key"] == "k-1"
    # AND the run was read once, the API asked to hold the read until it ends instead of being polled
    [read] = api.requests[1:]
    assert read["method"] == "GET"
    assert read["path"].startswith("/v1/executions/x?wait=")
    assert "decision d-5b1f0c2e9a7d4c3b8e6f1a20: ESCALATE" in capsys.readouterr().out


def test_run_of_an_unknown_workflow_prints_the_problem(
    capsys: pytest.CaptureFixture[str], api: StandIn, no_plane_state: Path
) -> None:
    # GIVEN a request file
    request = no_plane_state / "request.json"
    request.write_text("{}", encoding="utf-8")

    # WHEN a run of a workflow the API does not have is started
    code = cli.main(["run", "nope", "--input", str(request), "--api-url", api.url])

    # THEN the API's problem is the one line
    assert code == 1
    assert one_line(capsys.readouterr().err) == (
        "agentplane: 404 Unknown workflow: no workflow named 'nope'; known: doc-review"
    )


def test_an_error_page_that_is_not_a_problem_is_still_one_line(
    capsys: pytest.CaptureFixture[str], api: StandIn
) -> None:
    # GIVEN an API behind a proxy that answers with an HTML error page
    api.answers["/v1/executions/x"] = (
        502,
        "text/html",
        b"<html>\n<body>\n<h1>502 Bad Gateway</h1>\n</body>\n</html>\n",
    )

    # WHEN a status is asked for THEN it exits 1 with one line
    assert cli.main(["status", "x", "--api-url", api.url]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("agentplane: 502 ")


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param((200, "text/html", b"<html><body>Welcome to nginx!</body></html>"), id="HTML page"),
        pytest.param((200, "application/json", b'{"status": "ok"}'), id="other JSON"),
    ],
)
def test_status_from_something_that_is_not_the_plane_fails_in_one_line(
    capsys: pytest.CaptureFixture[str], api: StandIn, answer: tuple[int, str, bytes]
) -> None:
    # GIVEN an --api-url that answers 200 with something that is not an execution
    api.answers["/v1/executions/x"] = answer

    # WHEN a status is asked for THEN it exits 1 with one line, not a traceback
    assert cli.main(["status", "x", "--api-url", api.url]) == 1
    one_line(capsys.readouterr().err)


def test_a_deployed_api_gets_the_api_key_from_the_environment(
    capsys: pytest.CaptureFixture[str], api: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(client.API_KEY_SETTING, "key-of-the-submitter-plan")

    assert cli.main(["status", "x", "--api-url", api.url]) == 0

    assert api.headers[-1]["x-api-key"] == "key-of-the-submitter-plan"


def test_local_credentials_carry_the_personas_api_key(tmp_path: Path) -> None:
    (tmp_path / "credentials.json").write_text(
        json.dumps({"auditor": {"access_key_id": "AKID", "secret_access_key": "s", "api_key": "k-auditor"}})
    )

    endpoint = client.local_endpoint("http://127.0.0.1:1", tmp_path, "auditor")

    assert endpoint.api_key == "k-auditor"
    assert endpoint.key == client.SigningKey("AKID", "s")


def test_local_credentials_without_the_persona_fail_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "credentials.json").write_text(json.dumps({"auditor": "not an object"}))

    code = cli.main(["status", "x", "--state-dir", str(tmp_path), "--persona", "auditor"])

    assert code != 0
    assert "auditor" in one_line(capsys.readouterr().err)


def test_render_shows_the_runs_summary() -> None:
    # GIVEN a finished run whose output carries the summarizer's summary
    run = {**EXECUTION, "output": {**(EXECUTION.get("output") or {}), "summary": "Northwind was founded in 2012."}}

    # THEN the rendered status shows it under the decision
    assert "  summary: Northwind was founded in 2012." in render(run).splitlines()
