"""The front door under hostile input: only 4xx problems, never a 5xx, never a started run; retries start one run."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts.models import DocReviewRequest
from functions.runtime.tracing import trace_id_from_traceparent
from infra.client import finished, request, served_endpoint, submit
from infra.local.plane import LocalPlane, PlaneOptions
from tests.sample_events import load_event

trace_id_pattern = re.compile(r"1-[0-9a-f]{8}-[0-9a-f]{24}")

pytestmark = pytest.mark.e2e

PATH = "/v1/workflows/doc-review/executions"
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
NEAR_VALID = st.fixed_dictionaries(
    {"document": st.fixed_dictionaries({"title": JSON, "text": JSON})},
    optional={"metadata": JSON, "approved": st.booleans(), "status": st.text(max_size=10)},
)


@pytest.fixture(scope="module")
def plane(plane_options: Callable[..., PlaneOptions]) -> Iterator[LocalPlane]:
    # Validation, not throttling, is under test here: the fuzz may outpace the admin's usage plan.
    options = plane_options(schedule_scale=0, throttle_scale=100)
    with LocalPlane(options) as running:
        yield running


def started(plane: LocalPlane) -> int:
    machine = plane.physical("DocReviewStateMachine", "AWS::StepFunctions::StateMachine")
    return len(plane.client("stepfunctions").list_executions(stateMachineArn=machine)["executions"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=JSON | NEAR_VALID)
def test_arbitrary_bodies_start_a_run_only_when_they_meet_the_contract(plane: LocalPlane, body: Any) -> None:
    # GIVEN any JSON body; the contract model is the oracle for which ones are acceptable
    try:
        DocReviewRequest.model_validate(body)
        acceptable = True
    except ValidationError:
        acceptable = False
    before = started(plane)

    answer = request(plane.url, "POST", PATH, json.dumps(body).encode())

    # THEN an acceptable body starts exactly one run; anything else is a 400 problem that starts nothing
    if acceptable:
        assert answer.status == 202, answer.body
        assert started(plane) == before + 1
    else:
        assert answer.status == 400, answer.body
        assert answer.content_type == "application/problem+json"
        assert answer.body["detail"]
        assert started(plane) == before


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        pytest.param(b"\xff\xfe{", "application/json", id="bad unicode"),
        pytest.param(b'{"document": ', "application/json", id="truncated json"),
        pytest.param(b"title=x&text=y", "application/x-www-form-urlencoded", id="form body"),
        pytest.param(b"", "application/json", id="empty"),
    ],
)
def test_bytes_that_are_not_a_json_body_are_refused(plane: LocalPlane, raw: bytes, content_type: str) -> None:
    before = started(plane)

    answer = request(plane.url, "POST", PATH, raw, {"Content-Type": content_type})

    assert answer.status == 400
    assert answer.content_type == "application/problem+json"
    assert started(plane) == before


def test_an_oversize_body_is_refused_before_anything_runs(plane: LocalPlane) -> None:
    before = started(plane)
    body = {"document": {"title": "big", "text": "x" * (11 * 1024 * 1024)}}

    answer = request(plane.url, "POST", PATH, body)

    assert answer.status == 413
    assert started(plane) == before


def test_racing_retries_with_one_key_start_exactly_one_run(plane: LocalPlane) -> None:
    before = started(plane)
    body = load_event("doc-review-low-risk.json")

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(
            pool.map(lambda _: request(plane.url, "POST", PATH, body, {"Idempotency-Key": "race-1"}), range(8))
        )

    assert {a.status for a in answers} == {202}
    assert len({a.body["execution_id"] for a in answers}) == 1
    assert started(plane) == before + 1


def test_a_path_with_no_route_is_refused_as_api_gateway_refuses_it(plane: LocalPlane) -> None:
    answer = request(plane.url, "GET", "/v1/no-such-route", persona="admin")

    assert answer.status == 403
    assert answer.content_type == "application/problem+json"
    assert answer.body["detail"] == "Missing Authentication Token"
    assert answer.body["type"].endswith("/refused")


INTERNALS = ("Error", "Exception", "Traceback", "codec", "recursion", "line 1", "position")


def assert_clean_problem(answer: Any, *statuses: int) -> dict[str, Any]:
    """A 4xx RFC 9457 problem whose detail names no exception, class or parser internals."""
    assert answer.status in statuses, (answer.status, answer.body)
    assert answer.content_type == "application/problem+json"
    body: dict[str, Any] = answer.body
    assert not any(word in body["detail"] for word in INTERNALS), body["detail"]
    return body


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(nested(10_000), id="10000 nested arrays"),
        pytest.param(
            b'{"document": {"title": "t", "text": "x"}, "metadata": {"k": ' + nested(900) + b"}}", id="deep value"
        ),
        pytest.param(b'{"document": {"title": "t", "text": "x"}, "metadata": {"k": "\xff\xfe"}}', id="invalid utf-8"),
    ],
)
def test_malformed_bodies_are_a_clean_400(plane: LocalPlane, raw: bytes) -> None:
    before = started(plane)

    answer = request(plane.url, "POST", PATH, raw)

    assert_clean_problem(answer, 400)
    assert started(plane) == before


def test_deep_json_on_a_route_without_a_model_is_a_clean_4xx(plane: LocalPlane) -> None:
    answer = request(plane.url, "POST", "/v1/approvals/nope", nested(10_000), persona="approver")

    assert_clean_problem(answer, 400)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"traceparent": "00-not-a-trace-01"}, id="traceparent"),
        pytest.param({"traceparent": "00-" + "0" * 32 + "-" + "0" * 16 + "-01"}, id="zero traceparent"),
        pytest.param({"X-Amzn-Trace-Id": "Root=garbage;Parent=zz"}, id="x-ray root"),
        pytest.param({"X-Amzn-Trace-Id": "Root=1-xyz-0123"}, id="x-ray short root"),
        pytest.param({"X-Amzn-Trace-Id": ";;=;Root"}, id="x-ray junk"),
    ],
)
def test_malformed_tracing_headers_are_ignored_and_the_plane_mints_a_trace(
    plane: LocalPlane, headers: dict[str, str]
) -> None:
    # GIVEN a valid request whose tracing header is malformed (W3C: an invalid traceparent is ignored)
    answer = request(plane.url, "POST", PATH, load_event("doc-review-low-risk.json"), headers)

    # THEN it starts a run in a trace of the plane's own, as if the header had not been sent
    assert answer.status == 202, answer.body
    assert trace_id_pattern.fullmatch(answer.body["trace_id"]), answer.body


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"X-Padding": "a" * 70_000}, id="one huge header"),
        pytest.param({"traceparent": "00-" + "a" * 12_000}, id="huge traceparent"),
        pytest.param({f"X-Pad-{i}": "b" * 200 for i in range(60)}, id="headers over 10 KiB"),
    ],
)
def test_oversized_headers_are_a_431_problem(plane: LocalPlane, headers: dict[str, str]) -> None:
    before = started(plane)

    answer = request(plane.url, "POST", PATH, load_event("doc-review-low-risk.json"), headers)

    assert assert_clean_problem(answer, 431)["type"].endswith("/refused")
    assert started(plane) == before


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "multipart/form-data; boundary=x", ""])
def test_a_json_body_sent_as_another_type_starts_nothing(plane: LocalPlane, content_type: str) -> None:
    before = started(plane)
    body = json.dumps(load_event("doc-review-low-risk.json")).encode()

    answer = request(plane.url, "POST", PATH, body, {"Content-Type": content_type})

    assert assert_clean_problem(answer, 415)["type"].endswith("/unsupported-media-type")
    assert started(plane) == before


def test_json_with_a_charset_is_json(plane: LocalPlane) -> None:
    body = json.dumps(load_event("doc-review-low-risk.json")).encode()

    answer = request(plane.url, "POST", PATH, body, {"Content-Type": "application/json; charset=utf-8"})

    assert answer.status == 202, answer.body


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "TRACE", "CONNECT", "BREW"])
def test_other_methods_get_a_problem_not_an_html_page(plane: LocalPlane, method: str) -> None:
    answer = request(plane.url, method, PATH)

    assert answer.status in (403, 405), answer.status
    assert answer.content_type == "application/problem+json"
    if method != "HEAD":  # a HEAD answer has headers only
        assert answer.body["status"] == answer.status


def test_two_runs_sent_under_one_traceparent_have_separate_lineages(plane: LocalPlane) -> None:
    # GIVEN two unrelated runs a client submits under the same traceparent
    caller = "00-6b0aaaaa0123456789abcdef01234567-1111111111111111-01"
    admin = served_endpoint(plane.url, "admin")
    assert admin is not None
    body = json.dumps(load_event("doc-review-low-risk.json")).encode()
    # (the fuzz above leaves runs in flight: each waits its turn at admission, as a client would)
    sent = [submit(admin, "doc-review", body, {"traceparent": caller}, patience=60) for _ in range(2)]
    assert [s.status for s in sent] == [202, 202]
    for answer in sent:
        assert finished(plane.url, answer.body["execution_id"])["status"] == "SUCCEEDED"
    plane.settle()

    # THEN the first continues the caller's trace, the second gets one of its own
    first, second = (s.body["trace_id"] for s in sent)
    assert first == trace_id_from_traceparent(caller)
    assert second != first
    # AND each trace's audit lineage holds its own run's steps only
    for trace_id in (first, second):
        lineage = request(plane.url, "GET", f"/v1/audit/traces/{trace_id}", persona="auditor")
        assert lineage.status == 200, lineage.body
        assert [s["step"] for s in lineage.body["steps"]].count("Intake") == 1
