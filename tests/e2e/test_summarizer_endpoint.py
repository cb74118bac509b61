"""doc-review's summarize step on the local plane: through the endpoint's container on loopback, and its fallback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from infra.client import finished, request
from infra.local.faults import Fault
from infra.local.plane import LocalPlane, PlaneOptions
from tests.sample_events import load_event

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def plane(plane_options: Callable[..., PlaneOptions]) -> Iterator[LocalPlane]:
    with LocalPlane(plane_options()) as running:
        yield running


def review(plane: LocalPlane) -> dict[str, Any]:
    answer = request(plane.url, "POST", "/v1/workflows/doc-review/executions", load_event("doc-review-low-risk.json"))
    assert answer.status == 202, answer.body
    # a run summarized by the CPU fallback waits for a person (degraded), who approves it here
    run: dict[str, Any] = finished(plane.url, answer.body["execution_id"], approve="approve")
    return run


def summarize_steps(run: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(s["step"], s["agent"], s["status"]) for s in run["steps"] if s["step"].startswith("Summarize")]


def endpoint_items(plane: LocalPlane) -> int:
    (endpoint,) = plane.endpoints.endpoints.values()
    return endpoint.server.app.metrics.snapshot().items


def test_the_endpoint_is_served_on_loopback(plane: LocalPlane) -> None:
    (endpoint,) = plane.endpoints.endpoints.values()
    assert endpoint.server.host == "127.0.0.1"
    assert endpoint.server.port > 0
    assert endpoint.server.app.loaded  # the plane pinged it before putting it in service, as SageMaker does


def test_doc_review_summarizes_through_the_endpoint_before_verifying(plane: LocalPlane) -> None:
    before = endpoint_items(plane)
    run = review(plane)
    assert run["status"] == "SUCCEEDED"
    assert summarize_steps(run) == [("SummarizeDocument", "summarizer", "SUCCEEDED")]
    assert run["decision"]["degraded"] == []
    assert run["decision"].get("approval") is None  # low risk, nothing degraded: no person asked
    steps = [s["step"] for s in run["steps"]]
    assert (
        steps.index("Intake")
        < steps.index("SummarizeDocument")
        < min(steps.index(s) for s in steps if s.startswith("VerifyClaim/"))
    )
    assert endpoint_items(plane) == before + 1  # the container's batcher served the request


def test_throttling_falls_back_to_the_cpu_lambda(plane: LocalPlane) -> None:
    plane.options.faults.faults["summarizer"] = Fault(error="EndpointThrottled")
    try:
        run = review(plane)
    finally:
        del plane.options.faults.faults["summarizer"]
    assert run["status"] == "SUCCEEDED"
    assert summarize_steps(run) == [("SummarizeOnCpu", "summarizer-cpu", "SUCCEEDED")]
    # AND the low-risk memo went to a person, because its summary came from the fallback, and the record says so
    assert run["decision"]["risk_level"] == "high"
    assert run["decision"]["approval"]["decision"] == "approve"
    [degraded] = run["decision"]["degraded"]
    assert degraded.startswith("SummarizeOnCpu: the summarizer endpoint failed (EndpointThrottled")


def test_a_container_error_falls_back_and_leaves_the_failed_attempt_on_record(plane: LocalPlane) -> None:
    # GIVEN the endpoint's model fails (the container answers 500, SageMaker says ModelError)
    (endpoint,) = plane.endpoints.endpoints.values()
    predictor = endpoint.server.app.predictor
    original = predictor.predict

    def broken(items: list[Any]) -> Any:
        raise RuntimeError("CUDA error: device-side assert triggered")

    predictor.predict = broken
    try:
        run = review(plane)
    finally:
        predictor.predict = original

    # THEN the invoker recorded a ModelError and the CPU implementation summarized instead
    assert run["status"] == "SUCCEEDED"
    assert summarize_steps(run) == [
        ("SummarizeDocument", "summarizer", "FAILED"),
        ("SummarizeOnCpu", "summarizer-cpu", "SUCCEEDED"),
    ]
    failed = next(s for s in run["steps"] if s["status"] == "FAILED")
    assert failed["error"]["type"] == "ModelError"
