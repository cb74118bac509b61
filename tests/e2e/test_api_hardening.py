"""The front door under hostile input: only 4xx problems, never a 5xx, never a started run; retries start one run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts.models import DocReviewRequest
from infra.local.plane import LocalPlane, PlaneOptions
from tests.e2e.client import request
from tests.sample_events import load_event

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
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlane]:
    # Validation, not throttling, is under test here: the fuzz may outpace the admin's usage plan.
    options = PlaneOptions(state_dir=tmp_path_factory.mktemp("plane"), schedule_scale=0, throttle_scale=100)
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
