"""Per-persona throttling over real HTTP: each persona's usage plan, 429 with Retry-After, nothing started.

The buckets' clock is frozen, so the counts are exact: a plan admits its burst and then nothing until the clock
moves, and the test moves it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from infra.client import request
from infra.components.personas import PERSONA_THROTTLE
from infra.local.plane import LocalPlane, PlaneOptions
from tests.sample_events import load_event


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


CLOCK = Clock()


@pytest.fixture(scope="module")
def plane(plane_options: Callable[..., PlaneOptions]) -> Iterator[LocalPlane]:
    options = plane_options(schedule_scale=0, throttle_clock=CLOCK)
    with LocalPlane(options) as running:
        yield running


@pytest.fixture(autouse=True)
def refilled() -> None:
    CLOCK.now += 3600  # every bucket full again


def executions_started(plane: LocalPlane) -> int:
    sfn = plane.client("stepfunctions")
    return sum(
        len(sfn.list_executions(stateMachineArn=m["stateMachineArn"])["executions"])
        for m in sfn.list_state_machines()["stateMachines"]
    )


def test_a_persona_gets_its_burst_then_429_with_retry_after(plane: LocalPlane) -> None:
    burst = PERSONA_THROTTLE["auditor"].burst

    answers = [request(plane.url, "GET", "/v1/capabilities", persona="auditor") for _ in range(burst + 1)]

    assert [a.status for a in answers[:burst]] == [200] * burst
    refused = answers[burst]
    assert refused.status == 429
    assert refused.content_type == "application/problem+json"
    assert refused.body["type"].endswith("/throttled")
    assert int({k.lower(): v for k, v in refused.headers.items()}["retry-after"]) >= 1


def test_one_persona_spent_leaves_the_others_served(plane: LocalPlane) -> None:
    for _ in range(PERSONA_THROTTLE["auditor"].burst + 1):
        request(plane.url, "GET", "/v1/capabilities", persona="auditor")

    assert request(plane.url, "GET", "/v1/capabilities", persona="approver").status == 200
    assert request(plane.url, "GET", "/v1/capabilities", persona="auditor").status == 429


def test_the_bucket_refills_at_the_plans_rate(plane: LocalPlane) -> None:
    throttle = PERSONA_THROTTLE["approver"]
    for _ in range(throttle.burst):
        request(plane.url, "GET", "/v1/approvals", persona="approver")
    assert request(plane.url, "GET", "/v1/approvals", persona="approver").status == 429

    CLOCK.now += 1.0
    statuses = [request(plane.url, "GET", "/v1/approvals", persona="approver").status for _ in range(20)]

    assert statuses.count(200) == int(throttle.rate)


def test_a_throttled_submission_starts_nothing(plane: LocalPlane) -> None:
    for _ in range(PERSONA_THROTTLE["submitter"].burst):
        request(plane.url, "GET", "/v1/capabilities", persona="submitter")
    before = executions_started(plane)

    answer = request(
        plane.url,
        "POST",
        "/v1/workflows/doc-review/executions",
        load_event("doc-review-request.json"),
        persona="submitter",
    )

    assert answer.status == 429
    assert executions_started(plane) == before
