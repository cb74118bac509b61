"""The public API's Lambda handler with API Gateway proxy events, against Step Functions and DynamoDB in moto."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from functions.runtime.canonical import canonical_json, sha256_hex
from functions.runtime.decisions import DecisionRecord, DynamoDecisionStore
from functions.runtime.tracing import trace_id_from_traceparent
from tests.integration.fakes import REGION, TRACE_ID, ColdStart, LambdaContext, Plane, table
from tests.sample_events import load_event

pytestmark = pytest.mark.integration

PROBLEM_JSON = "application/problem+json"
PASS_DEFINITION = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})
START = "/v1/workflows/{name}/executions"
CONTRACTS = {
    "decision-recorder",
    "document-intake",
    "entity-tagger",
    "evidence-verifier",
    "fact-checker-llm",
    "failure-recorder",
    "risk-scorer",
    "summarizer",
    "summarizer-cpu",
}
Api = Callable[..., dict[str, Any]]


def proxy_event(
    method: str,
    path: str,
    *,
    resource: str | None = None,
    path_parameters: dict[str, str] | None = None,
    body: str | None = None,
    headers: dict[str, str] | None = None,
    user_arn: str = "arn:aws:sts::123456789012:assumed-role/agentplane-PersonasSubmitterRole/submitter",
) -> dict[str, Any]:
    """An API Gateway REST (v1) proxy integration event, signed (IAM) by ``user_arn``."""
    resource = resource or path
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers or {},
        "multiValueHeaders": {k: [v] for k, v in (headers or {}).items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "requestId": "6f1c3b8a-0e2d-4c7f-9a51-2b8d4e6f0a13",
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/v1{path}",
            "stage": "v1",
            "accountId": "123456789012",
            "identity": {"sourceIp": "203.0.113.7", "userArn": user_arn, "accountId": "123456789012"},
        },
        "body": body,
        "isBase64Encoded": False,
    }


def header(response: dict[str, Any], name: str) -> str | None:
    """A response header, whichever of the two proxy response shapes carries it."""
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    for key, values in (response.get("multiValueHeaders") or {}).items():
        if key.lower() == name.lower():
            return str(values[0])
    return None


def assert_problem(response: dict[str, Any], status: int) -> dict[str, Any]:
    """An RFC 9457 problem: the status, its content type, and type/title/status/detail in the body."""
    assert response["statusCode"] == status
    assert header(response, "Content-Type") == PROBLEM_JSON
    body: dict[str, Any] = json.loads(response["body"])
    assert body["type"].startswith("https://")
    assert body["title"]
    assert body["status"] == status
    assert body["detail"]
    return body


@pytest.fixture
def state_machine(plane: Plane) -> str:
    created = boto3.client("stepfunctions", region_name=REGION).create_state_machine(
        name="doc-review",
        definition=PASS_DEFINITION,
        roleArn="arn:aws:iam::123456789012:role/doc-review-state-machine",
    )
    arn: str = created["stateMachineArn"]
    return arn


@pytest.fixture
def api(
    plane: Plane,
    state_machine: str,
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: LambdaContext,
    cold_start: ColdStart,
) -> Api:
    """The API handler, cold-started with the environment the stack gives it."""
    workflows = {"doc-review": {"state_machine_arn": state_machine, "input_model": "DocReviewRequest", "ttl_ms": 60000}}
    monkeypatch.setenv("WORKFLOWS", json.dumps(workflows))
    monkeypatch.setenv("EXECUTIONS_TABLE", plane.executions_table)
    monkeypatch.setenv("DECISIONS_TABLE", plane.decisions_table)
    monkeypatch.setenv("REGISTRY_TABLE", plane.registry_table)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "agentplane-api")
    handler = cold_start("functions.api.handler").lambda_handler

    def call(method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response: dict[str, Any] = handler(proxy_event(method, path, **kwargs), lambda_context)
        return response

    return call


def start(api: Api, body: Any, **headers: str) -> dict[str, Any]:
    raw = body if isinstance(body, str) else json.dumps(body)
    return api(
        "POST",
        "/v1/workflows/doc-review/executions",
        resource=START,
        path_parameters={"name": "doc-review"},
        body=raw,
        headers={"Content-Type": "application/json", **headers},
    )


def executions(state_machine: str) -> list[dict[str, Any]]:
    listed = boto3.client("stepfunctions", region_name=REGION).list_executions(stateMachineArn=state_machine)
    found: list[dict[str, Any]] = listed["executions"]
    return found


def test_start_execution_starts_the_state_machine(api: Api, state_machine: str) -> None:
    # GIVEN the sample request and an X-Ray trace header
    request = load_event("doc-review-request.json")

    # WHEN it is posted
    response = start(api, request, **{"X-Amzn-Trace-Id": f"Root={TRACE_ID};Parent=53995c3f42cd8ad8;Sampled=1"})

    # THEN the run is accepted, with where to follow it
    assert response["statusCode"] == 202
    body = json.loads(response["body"])
    assert body["trace_id"] == TRACE_ID
    assert body["status_url"] == f"/v1/executions/{body['execution_id']}"
    assert header(response, "Location") == body["status_url"]
    assert header(response, "Idempotent-Replayed") is None
    # AND one execution, named by the run id, got the request, the run's ids and its deadline
    [started] = executions(state_machine)
    assert started["name"] == body["execution_id"]
    described = boto3.client("stepfunctions", region_name=REGION).describe_execution(
        executionArn=started["executionArn"]
    )
    run_input = json.loads(described["input"])
    assert run_input["request"] == request
    assert (run_input["workflow"], run_input["correlation_id"], run_input["trace_id"]) == (
        "doc-review",
        body["execution_id"],
        TRACE_ID,
    )
    deadline = datetime.fromisoformat(run_input["deadline"]) - datetime.fromisoformat(run_input["submitted_at"])
    assert deadline == timedelta(milliseconds=60000)


def test_start_execution_without_trace_header_makes_an_xray_trace_id(api: Api) -> None:
    # GIVEN / WHEN a request without a trace header is posted
    response = start(api, load_event("doc-review-low-risk.json"))

    # THEN the run gets a trace id in X-Ray's format
    assert response["statusCode"] == 202
    assert json.loads(response["body"])["trace_id"].startswith("1-")
    assert len(json.loads(response["body"])["trace_id"]) == 35


def test_idempotency_key_replay_returns_the_first_run(api: Api, state_machine: str) -> None:
    # GIVEN a run started with an Idempotency-Key
    request = load_event("doc-review-request.json")
    first = start(api, request, **{"Idempotency-Key": "review-2026-q4-northwind"})

    # WHEN the same request is sent again with the same key (key order differs: same JSON)
    again = start(api, dict(reversed(list(request.items()))), **{"Idempotency-Key": "review-2026-q4-northwind"})

    # THEN the first run is returned, marked as a replay, and no second execution started
    assert again["statusCode"] == 202
    assert json.loads(again["body"]) == json.loads(first["body"])
    assert header(again, "Idempotent-Replayed") == "true"
    assert header(again, "Location") == header(first, "Location")
    assert len(executions(state_machine)) == 1


def test_requests_without_a_key_start_separate_runs(api: Api, state_machine: str) -> None:
    # GIVEN / WHEN the same request is posted twice without an Idempotency-Key
    first = json.loads(start(api, load_event("doc-review-request.json"))["body"])
    second = json.loads(start(api, load_event("doc-review-request.json"))["body"])

    # THEN they are two runs
    assert first["execution_id"] != second["execution_id"]
    assert len(executions(state_machine)) == 2


def test_idempotency_key_reused_with_another_body_is_refused(api: Api, state_machine: str) -> None:
    # GIVEN a key used for one request
    start(api, load_event("doc-review-request.json"), **{"Idempotency-Key": "k-1"})

    # WHEN it is sent with a different request
    response = start(api, load_event("doc-review-low-risk.json"), **{"Idempotency-Key": "k-1"})

    # THEN it is refused as a problem, and nothing else started
    body = assert_problem(response, 422)
    assert body["title"] == "Idempotency key reused"
    assert len(executions(state_machine)) == 1


def test_malformed_json_is_a_bad_request(api: Api, state_machine: str) -> None:
    # GIVEN / WHEN a body that is not JSON is posted
    response = start(api, '{"document": {"title": "x",')

    # THEN it is a 400 problem saying so, and nothing started
    body = assert_problem(response, 400)
    assert body["title"] == "Malformed JSON"
    assert executions(state_machine) == []


def test_a_missing_field_is_named(api: Api, state_machine: str) -> None:
    # GIVEN / WHEN a request without a title is posted
    response = start(api, {"document": {"text": "Northwind Analytics was founded in 2012."}})

    # THEN the problem names the field, and lists every error
    body = assert_problem(response, 400)
    assert body["detail"].startswith("document.title: Field required")
    assert {"field": "document.title", "message": "Field required"} in body["errors"]
    assert executions(state_machine) == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_a_json_body_not_sent_as_json_is_415_and_starts_nothing(
    api: Api, state_machine: str, content_type: str
) -> None:
    before = len(executions(state_machine))

    response = start(api, load_event("doc-review-low-risk.json"), **{"Content-Type": content_type})

    body = assert_problem(response, 415)
    assert body["type"].endswith("/unsupported-media-type")
    assert len(executions(state_machine)) == before


@pytest.mark.parametrize("header", ["Root=garbage", "Root=1-xyz", "Sampled=1;;="])
def test_a_malformed_xray_header_starts_the_run_in_a_new_trace(api: Api, header: str) -> None:
    response = start(api, load_event("doc-review-low-risk.json"), **{"X-Amzn-Trace-Id": header})

    assert response["statusCode"] == 202, response["body"]
    assert re.fullmatch(r"1-[0-9a-f]{8}-[0-9a-f]{24}", json.loads(response["body"])["trace_id"])


def test_a_request_that_starts_no_run_leaves_the_callers_trace_to_the_next(api: Api) -> None:
    # GIVEN a caller's traceparent, first sent with a body the contract refuses, then with an idempotent replay's
    caller = "00-6b0bbbbb0123456789abcdef01234567-1111111111111111-01"
    first = start(api, load_event("doc-review-low-risk.json"), **{"Idempotency-Key": "trace-kept"})
    assert first["statusCode"] == 202, first["body"]
    refused = start(api, {"document": {}}, traceparent=caller)
    replayed = start(
        api, load_event("doc-review-low-risk.json"), traceparent=caller, **{"Idempotency-Key": "trace-kept"}
    )
    assert refused["statusCode"] == 400
    assert replayed["statusCode"] == 202
    assert header(replayed, "Idempotent-Replayed") == "true"

    # WHEN it sends a run that starts
    sent = start(api, load_event("doc-review-low-risk.json"), traceparent=caller)

    # THEN that run continues the caller's trace: the requests that started nothing did not take it
    assert sent["statusCode"] == 202, sent["body"]
    assert json.loads(sent["body"])["trace_id"] == trace_id_from_traceparent(caller)


def test_an_unknown_workflow_is_not_found(api: Api) -> None:
    # GIVEN / WHEN a run of a workflow that does not exist is requested
    response = api(
        "POST",
        "/v1/workflows/tax-review/executions",
        resource=START,
        path_parameters={"name": "tax-review"},
        body=json.dumps(load_event("doc-review-request.json")),
        headers={"Content-Type": "application/json"},
    )

    # THEN it is a 404 problem naming the workflows that do exist
    body = assert_problem(response, 404)
    assert "'tax-review'" in body["detail"]
    assert "doc-review" in body["detail"]


def test_get_execution_reports_status_and_steps(api: Api, plane: Plane) -> None:
    # GIVEN a started run, one of whose steps is on record
    started = json.loads(start(api, load_event("doc-review-request.json"))["body"])
    run = started["execution_id"]
    began = datetime.now(UTC)
    input_json = canonical_json({"document": "..."})
    DynamoDecisionStore(plane.decisions).put(
        DecisionRecord(
            correlation_id=run,
            step_key=f"{run}/Intake",
            trace_id=started["trace_id"],
            causation_id=f"{run}/Intake",
            agent="document-intake",
            agent_version="1.0.0",
            capability="document-intake",
            capability_version="1.0.0",
            status="SUCCEEDED",
            actor="agent:document-intake",
            input_json=input_json,
            input_sha256=sha256_hex(input_json.encode()),
            output_json="{}",
            started_at=began,
            finished_at=began + timedelta(milliseconds=42),
            duration_ms=42.0,
        )
    )

    # WHEN the run is asked for
    response = api(
        "GET", f"/v1/executions/{run}", resource="/v1/executions/{execution_id}", path_parameters={"execution_id": run}
    )

    # THEN it reports the engine's status and the recorded steps
    assert response["statusCode"] == 200
    assert header(response, "Content-Type") == "application/json"
    body = json.loads(response["body"])
    assert (body["execution_id"], body["workflow"], body["trace_id"]) == (run, "doc-review", started["trace_id"])
    assert body["status"] == "RUNNING"
    assert body["decision"] is None
    [step] = body["steps"]
    assert (step["step"], step["agent"], step["status"], step["duration_ms"]) == (
        "Intake",
        "document-intake",
        "SUCCEEDED",
        42.0,
    )
    assert step["input_sha256"] == sha256_hex(input_json.encode())


def test_an_unknown_execution_is_not_found(api: Api) -> None:
    # GIVEN / WHEN a run that does not exist is asked for
    response = api(
        "GET",
        "/v1/executions/no-such-run",
        resource="/v1/executions/{execution_id}",
        path_parameters={"execution_id": "no-such-run"},
    )

    # THEN it is a 404 problem
    body = assert_problem(response, 404)
    assert body["title"] == "Unknown execution"


def test_an_idempotency_marker_is_not_an_execution(api: Api, plane: Plane) -> None:
    # GIVEN a run started with an Idempotency-Key (which leaves a marker item in the executions table)
    start(api, load_event("doc-review-request.json"), **{"Idempotency-Key": "k-1"})
    marker = "idempotency-key#doc-review#k-1"

    # WHEN the marker's id is asked for as an execution
    response = api(
        "GET",
        f"/v1/executions/{marker}",
        resource="/v1/executions/{execution_id}",
        path_parameters={"execution_id": marker},
    )

    # THEN it is not one (not a 200 describing a run, and no server error either)
    assert response["statusCode"] == 404


def test_capabilities_lists_the_shipped_contracts(api: Api, plane: Plane) -> None:
    # GIVEN the registry knows one implementation, with an open circuit
    table(plane.registry_table).put_item(
        Item={
            "implementation": "evidence-verifier",
            "agent": "evidence-verifier",
            "variant": "primary",
            "capabilities": ["fact-check"],
            "contract_version": "1.0.0",
            "runtime": "lambda",
            "target": "arn:aws:lambda:us-east-1:123456789012:function:verifier",
            "circuit_json": '{"state": "open", "reason": "3 consecutive failures"}',
        }
    )

    # WHEN the capabilities are listed
    response = api("GET", "/v1/capabilities")

    # THEN every contract is there with its capabilities, io and SLO
    assert response["statusCode"] == 200
    listed = {c["name"]: c for c in json.loads(response["body"])["capabilities"]}
    assert set(listed) == CONTRACTS
    assert listed["evidence-verifier"]["capabilities"] == ["fact-check", "confidence-scoring"]
    assert listed["evidence-verifier"]["io"] == {"input": "ClaimCheck", "output": "Verdict"}
    assert listed["evidence-verifier"]["runtime"] == "lambda"
    assert listed["risk-scorer"]["slo"]["p95_ms"] == 300
    assert listed["summarizer"]["runtime"] == "sagemaker"
    assert listed["fact-checker-llm"]["runtime"] == "llm"
    (registered,) = listed["evidence-verifier"]["implementations"]
    assert registered["circuit"]["state"] == "open"
    assert registered["health"]["samples"] == 0
    assert listed["risk-scorer"]["implementations"] == []


def test_capabilities_carry_each_agents_card(api: Api) -> None:
    # GIVEN / WHEN the capabilities are listed through the API's domain
    response = api("GET", "/v1/capabilities", headers={"Host": "abc123.execute-api.us-east-1.amazonaws.com"})

    # THEN each contract comes with its A2A Agent Card, naming where the API was reached
    listed = {c["name"]: c for c in json.loads(response["body"])["capabilities"]}
    card = listed["evidence-verifier"]["card"]
    assert (card["name"], card["version"]) == ("evidence-verifier", "1.2.0")
    assert [skill["id"] for skill in card["skills"]] == ["fact-check", "confidence-scoring"]
    assert card["security"] == [{"sigv4": []}]
    assert card["url"] == "https://abc123.execute-api.us-east-1.amazonaws.com/v1"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/nope"), ("DELETE", "/v1/capabilities"), ("GET", "/v1/workflows/doc-review/executions")],
)
def test_an_unknown_route_is_a_not_found_problem(api: Api, method: str, path: str) -> None:
    # GIVEN / WHEN a route the API does not have is called
    response = api(method, path)

    # THEN it is a 404 problem naming the method and path
    body = assert_problem(response, 404)
    assert body["detail"] == f"no route for {method} {path}"
    assert body["instance"] == path


def test_an_engine_failure_is_a_500_problem_and_frees_the_key(api: Api, state_machine: str) -> None:
    # GIVEN a workflow whose state machine is gone
    sfn = boto3.client("stepfunctions", region_name=REGION)
    sfn.delete_state_machine(stateMachineArn=state_machine)

    # WHEN a run is requested with an Idempotency-Key
    response = start(api, load_event("doc-review-request.json"), **{"Idempotency-Key": "k-1"})

    # THEN it is a 500 problem that leaks nothing of the failure
    body = assert_problem(response, 500)
    assert body["detail"] == "the request could not be completed"
    assert "Traceback" not in response["body"]
    assert "StateMachine" not in response["body"]
    # AND once the state machine is back, the same key starts the run: the failed attempt released it
    sfn.create_state_machine(
        name="doc-review", definition=PASS_DEFINITION, roleArn="arn:aws:iam::123456789012:role/doc-review-state-machine"
    )
    retried = start(api, load_event("doc-review-request.json"), **{"Idempotency-Key": "k-1"})
    assert retried["statusCode"] == 202
    assert header(retried, "Idempotent-Replayed") is None
    assert len(executions(state_machine)) == 1


def test_a_workflow_at_capacity_refuses_with_503_retry_after_and_frees_the_key(
    plane: Plane,
    state_machine: str,
    monkeypatch: pytest.MonkeyPatch,
    api: Api,  # the tables and the environment the stack gives the API
    cold_start: ColdStart,
    lambda_context: LambdaContext,
) -> None:
    # GIVEN a workflow that admits 2 runs per (long) window: the limit the stack derives from the contracts
    workflows = {
        "doc-review": {
            "state_machine_arn": state_machine,
            "input_model": "DocReviewRequest",
            "ttl_ms": 60000,
            "max_in_flight": 2,
            "admission_window_ms": 3_600_000,
        }
    }
    monkeypatch.setenv("WORKFLOWS", json.dumps(workflows))
    handler = cold_start("functions.api.handler").lambda_handler  # the settings are read at cold start

    def capped(method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response: dict[str, Any] = handler(proxy_event(method, path, **kwargs), lambda_context)
        return response

    request = load_event("doc-review-request.json")
    first = start(capped, request, **{"Idempotency-Key": "a-1"})
    second = start(capped, request, **{"Idempotency-Key": "a-2"})

    # WHEN a third run is requested in the same window
    refused = start(capped, request, **{"Idempotency-Key": "a-3"})

    # THEN the two before it were accepted, and it is refused: a 503 problem saying when to retry
    assert (first["statusCode"], second["statusCode"]) == (202, 202)
    body = assert_problem(refused, 503)
    assert body["type"].endswith("/at-capacity")
    retry_after = header(refused, "Retry-After")
    assert retry_after is not None
    assert 1 <= int(retry_after) <= 3600
    assert body["retry_after_s"] == int(retry_after)
    # AND it started nothing, and its key is free: a retry is refused the same way, not answered as a replay
    assert len(executions(state_machine)) == 2
    again = start(capped, request, **{"Idempotency-Key": "a-3"})
    assert again["statusCode"] == 503
    # AND a retry of an accepted run is still answered with that run, at capacity or not
    replayed = start(capped, request, **{"Idempotency-Key": "a-1"})
    assert replayed["statusCode"] == 202
    assert header(replayed, "Idempotent-Replayed") == "true"
