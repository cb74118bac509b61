"""The public API's logic, with in-memory ports: no AWS."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from itertools import count
from typing import Any

import pytest

from contracts.models import DocReviewRequest
from functions.api.service import (
    ProblemError,
    RunInput,
    RunStatus,
    Workflow,
    describe,
    load_workflows,
    own_trace,
    parse_body,
    require_json,
    submit,
    xray_root,
)
from functions.runtime.canonical import canonical_json, sha256_hex
from functions.runtime.decisions import InMemoryDecisionStore, step_in_run, step_key, step_name
from functions.runtime.executions import InMemoryExecutionStore
from tests.sample_events import load_event

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TRACE = "1-6b000000-0123456789abcdef01234567"
WORKFLOWS = {"doc-review": Workflow("doc-review", "arn:sm:doc-review", DocReviewRequest, ttl_ms=60_000)}


class FakeEngine:
    def __init__(self, *, fail: bool = False) -> None:
        self.started: list[dict[str, Any]] = []
        self.fail = fail

    def start(self, *, state_machine_arn: str, run: RunInput) -> str:
        if self.fail:
            raise ConnectionError("engine unavailable")
        self.started.append({"arn": state_machine_arn, "name": run.correlation_id, "input": json.loads(run.to_json())})
        return f"{state_machine_arn}:exec:{run.correlation_id}"

    def describe(self, execution_arn: str) -> RunStatus:
        return RunStatus("SUCCEEDED", json.dumps({"ok": True}), None, None, NOW, NOW)


def submit_body(
    body: Any,
    *,
    engine: FakeEngine,
    executions: InMemoryExecutionStore,
    key: str | None = None,
    name: str = "doc-review",
) -> Any:
    ids = count(1)
    return submit(
        name,
        body if isinstance(body, str) or body is None else json.dumps(body),
        idempotency_key=key,
        trace_id=TRACE,
        workflows=WORKFLOWS,
        engine=engine,
        executions=executions,
        now=NOW,
        new_id=lambda: f"run-{next(ids)}-{id(body)}",
    )


def test_a_valid_request_starts_one_run_carrying_trace_and_deadline() -> None:
    engine, executions = FakeEngine(), InMemoryExecutionStore()

    submitted = submit_body(load_event("doc-review-request.json"), engine=engine, executions=executions)

    [started] = engine.started
    assert started["name"] == submitted.execution_id
    assert started["input"]["trace_id"] == TRACE
    assert started["input"]["correlation_id"] == submitted.execution_id
    assert started["input"]["deadline"] == "2026-11-23T12:01:00+00:00"
    assert executions.get(submitted.execution_id) is not None


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        pytest.param(None, 400, "send a JSON object", id="no body"),
        pytest.param("{nope", 400, "not JSON", id="not json"),
        pytest.param({"document": {"title": 42, "text": "t"}}, 400, "document.title", id="wrong type"),
        pytest.param({"document": {"title": "t", "text": "t"}, "x": 1}, 400, "x: Extra inputs", id="unknown field"),
    ],
)
def test_bad_bodies_are_problems_and_start_nothing(body: Any, status: int, detail: str) -> None:
    engine = FakeEngine()
    with pytest.raises(ProblemError) as problem:
        submit_body(body, engine=engine, executions=InMemoryExecutionStore())

    assert problem.value.status == status
    assert detail in problem.value.detail
    assert engine.started == []


def test_an_unknown_workflow_is_404() -> None:
    with pytest.raises(ProblemError) as problem:
        submit_body(
            load_event("doc-review-request.json"), engine=FakeEngine(), executions=InMemoryExecutionStore(), name="nope"
        )
    assert problem.value.status == 404
    assert problem.value.body("/x")["type"].endswith("/not-found")


def test_an_idempotency_key_replays_and_refuses_a_different_body() -> None:
    engine, executions = FakeEngine(), InMemoryExecutionStore()
    body = load_event("doc-review-request.json")

    first = submit_body(body, engine=engine, executions=executions, key="k1")
    replay = submit_body(body, engine=engine, executions=executions, key="k1")
    with pytest.raises(ProblemError) as reused:
        submit_body(load_event("doc-review-low-risk.json"), engine=engine, executions=executions, key="k1")

    assert replay.replayed
    assert replay.execution_id == first.execution_id
    assert reused.value.status == 422
    assert len(engine.started) == 1


def test_a_failed_start_releases_the_key_so_a_retry_can_run() -> None:
    executions = InMemoryExecutionStore()
    body = load_event("doc-review-request.json")
    with pytest.raises(ConnectionError):
        submit_body(body, engine=FakeEngine(fail=True), executions=executions, key="k2")

    retried = submit_body(body, engine=FakeEngine(), executions=executions, key="k2")

    assert not retried.replayed


def test_describe_reports_steps_named_after_their_state() -> None:
    engine, executions, decisions = FakeEngine(), InMemoryExecutionStore(), InMemoryDecisionStore()
    submitted = submit_body(load_event("doc-review-request.json"), engine=engine, executions=executions)

    body = describe(submitted.execution_id, engine=engine, executions=executions, decisions=decisions)

    assert body["status"] == "SUCCEEDED"
    assert body["output"] == {"ok": True}
    assert body["steps"] == []
    with pytest.raises(ProblemError):
        describe("missing", engine=engine, executions=executions, decisions=decisions)


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("run-1/Intake", "Intake"),
        ("run-1/VerifyClaim/3", "VerifyClaim/3"),
        ("run-1/VerifyClaim/3#failed#2026-11-23T12:00:00", "VerifyClaim/3"),
        ("run-1/entity-tagging#event-9", "entity-tagging"),
    ],
)
def test_step_names(key: str, name: str) -> None:
    assert step_name(key, "run-1") == name


def test_a_step_key_is_its_causation_id_and_its_qualifiers() -> None:
    key = step_key("run-1/VerifyClaim/3", "failed", "2026-11-23T12:00:00")
    assert key == "run-1/VerifyClaim/3#failed#2026-11-23T12:00:00"
    assert step_in_run(key, "run-1") == "VerifyClaim/3#failed#2026-11-23T12:00:00"
    assert step_key("run-1/Intake") == "run-1/Intake"


def test_workflows_setting_is_parsed() -> None:
    raw = json.dumps({"doc-review": {"state_machine_arn": "arn:x", "input_model": "DocReviewRequest", "ttl_ms": 5}})
    assert load_workflows(raw)["doc-review"].input_model is DocReviewRequest


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("[" * 10_000 + "]" * 10_000, id="10000 nested arrays"),
        pytest.param(
            '{"document": {"title": "t", "text": "x"}, "metadata": {"k": ' + "[" * 5000 + "]" * 5000 + "}}", id="deep"
        ),
    ],
)
def test_bodies_nested_too_deep_are_a_400_without_internals(raw: str) -> None:
    with pytest.raises(ProblemError) as refused:
        parse_body(raw, DocReviewRequest)

    assert refused.value.status == 400
    assert "Recursion" not in refused.value.detail


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "application/x-www-form-urlencoded", "json"])
def test_only_json_bodies_are_read(content_type: str | None) -> None:
    with pytest.raises(ProblemError) as refused:
        require_json(content_type)

    assert (refused.value.status, refused.value.kind) == (415, "unsupported-media-type")
    require_json("Application/JSON; charset=utf-8")  # media types are case-insensitive; parameters are allowed


@pytest.mark.parametrize(
    ("header", "root"),
    [
        ("Root=1-6b000000-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1", TRACE),
        ("Root=garbage", None),
        ("Root=1-xyz-0123", None),
        (";;=;Root", None),
        ("", None),
    ],
)
def test_a_malformed_xray_header_is_ignored(header: str, root: str | None) -> None:
    assert xray_root(header) == root


def test_a_trace_holds_one_run_and_a_second_run_under_it_gets_its_own() -> None:
    executions = InMemoryExecutionStore()
    minted = iter(["1-6b000001-000000000000000000000001", "1-6b000001-000000000000000000000002"])

    def own(requested: str | None, execution_id: str) -> str:
        return own_trace(requested, execution_id=execution_id, executions=executions, new_trace=lambda: next(minted))

    assert own(TRACE, "run-1") == TRACE  # the caller's trace parents the first run sent under it
    assert own(TRACE, "run-2") == "1-6b000001-000000000000000000000001"
    assert own(None, "run-3") == "1-6b000001-000000000000000000000002"


class StubRequests:
    bucket = "documents-bucket"

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, body: bytes) -> None:
        self.objects[key] = body


def test_a_claim_checked_request_is_stored_canonical_and_the_run_carries_only_its_reference() -> None:
    # GIVEN a workflow that claim-checks its requests
    workflows = {"doc-review": replace(WORKFLOWS["doc-review"], claim_check=True)}
    engine, requests = FakeEngine(), StubRequests()

    # WHEN a request is submitted
    submit(
        "doc-review",
        json.dumps(load_event("doc-review-request.json")),
        idempotency_key=None,
        trace_id=TRACE,
        workflows=workflows,
        engine=engine,
        executions=InMemoryExecutionStore(),
        now=NOW,
        new_id=lambda: "run-1",
        requests=requests,
    )

    # THEN the bucket holds its canonical form under its digest, and the run's input names it instead of the body
    [started] = engine.started
    ref = started["input"]["request_ref"]
    stored = requests.objects[ref["key"]]
    assert "request" not in started["input"]
    assert ref == {
        "bucket": "documents-bucket",
        "key": ref["key"],
        "sha256": sha256_hex(stored),
        "size_bytes": len(stored),
    }
    assert ref["key"] == f"documents/requests/{ref['sha256']}.json"
    assert stored.decode() == canonical_json(
        DocReviewRequest.model_validate(load_event("doc-review-request.json")).model_dump(mode="json")
    )
