"""quick-check: the synchronous hot path on the local plane (Express, StartSyncExecution emulated)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from infra.client import request
from infra.local.plane import LocalPlane, PlaneOptions

pytestmark = pytest.mark.e2e

PATH = "/v1/workflows/quick-check/invoke"


@pytest.fixture(scope="module")
def plane(plane_options: Callable[..., PlaneOptions]) -> Iterator[LocalPlane]:
    with LocalPlane(plane_options(schedule_scale=0)) as running:
        yield running


@pytest.mark.parametrize(
    ("claim", "label"),
    [
        ("Northwind Analytics was founded in 2012.", "supported"),
        ("Northwind Analytics was founded in 2009.", "refuted"),
    ],
)
def test_a_claim_is_checked_inside_the_request(plane: LocalPlane, claim: str, label: str) -> None:
    answer = request(plane.url, "POST", PATH, {"claim": claim})

    assert answer.status == 200
    assert answer.body["status"] == "SUCCEEDED"
    assert answer.body["output"]["verdict"]["label"] == label


def test_the_check_is_recorded_as_a_decision_of_the_evidence_verifier(plane: LocalPlane) -> None:
    answer = request(plane.url, "POST", PATH, {"claim": "Northwind Analytics was founded in 2012."})
    table = plane.physical("DataDecisions", "AWS::DynamoDB::Table")

    item = plane.client("dynamodb").get_item(
        TableName=table,
        Key={
            "correlation_id": {"S": answer.body["execution_id"]},
            "step_key": {"S": f"{answer.body['execution_id']}/QuickVerify"},
        },
    )["Item"]
    assert item["agent"]["S"] == "evidence-verifier"
    assert item["status"]["S"] == "SUCCEEDED"


def test_the_wrong_route_or_body_is_a_problem(plane: LocalPlane) -> None:
    asynchronous = request(plane.url, "POST", "/v1/workflows/doc-review/invoke", {"claim": "x"})
    synchronous = request(plane.url, "POST", "/v1/workflows/quick-check/executions", {"claim": "x"})
    malformed = request(plane.url, "POST", PATH, {"claim": 5})
    assigned = request(plane.url, "POST", PATH, {"claim": "x", "approved": True})

    assert asynchronous.status == 409
    assert synchronous.status == 409
    assert (malformed.status, malformed.body["errors"][0]["field"]) == (400, "claim")
    assert (assigned.status, assigned.body["errors"][0]["field"]) == (400, "approved")
    assert all(a.content_type == "application/problem+json" for a in (asynchronous, synchronous, malformed, assigned))
