"""Traces and telemetry over real runs on the local plane: every step's span under the right parent, the
waterfall and incident view from the CLI, and every contract's declared metrics in the agents' logs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from contracts.capability import LambdaRuntime
from contracts.loader import load_contracts
from functions.runtime.tracing import trace_id_from_traceparent
from infra import cli
from infra.client import finished, request
from infra.local.faults import Fault
from infra.local.plane import LocalPlane, PlaneOptions
from tests.sample_events import load_event

pytestmark = pytest.mark.e2e

CALLER_TRACEPARENT = "00-6745a1b25e0c3d9a7b1f42e68c0d9a31-00f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def plane(plane_options: Callable[..., PlaneOptions]) -> Iterator[LocalPlane]:
    with LocalPlane(plane_options()) as running:
        yield running


@pytest.fixture(scope="module")
def runs(plane: LocalPlane) -> dict[str, dict[str, Any]]:
    """Both runs in one fixture, so the agents' logs of both land in the plane's log files together.

    "reviewed": the demo's run, submitted under a caller's traceparent, approved, enriched.
    "failed": a run whose risk scorer always fails transiently: retried, then caught and recorded as a failure.
    """
    answer = request(
        plane.url,
        "POST",
        "/v1/workflows/doc-review/executions",
        load_event("doc-review-request.json"),
        {"traceparent": CALLER_TRACEPARENT},
    )
    assert answer.status == 202, answer.body
    run = finished(plane.url, answer.body["execution_id"], enriched=True, approve="approve")
    assert run["status"] == "SUCCEEDED"

    plane.options.faults.faults["risk-scorer"] = Fault(error="Lambda.ServiceException")
    # ... and the summarizer endpoint throttled, so its CPU fallback runs (and emits its metrics) too.
    plane.options.faults.faults["summarizer"] = Fault(error="EndpointThrottled")
    try:
        failing = request(
            plane.url, "POST", "/v1/workflows/doc-review/executions", load_event("doc-review-request.json")
        )
        failed_run = finished(plane.url, failing.body["execution_id"], enriched=True)
    finally:
        del plane.options.faults.faults["risk-scorer"]
        del plane.options.faults.faults["summarizer"]
    assert failed_run["status"] == "FAILED"

    plane.settle()
    assert plane.scheduler is not None
    plane.scheduler.run()  # sign a digest now, so every ledger entry verifies
    return {
        "reviewed": {"answer": answer, "run": run, "trace_id": answer.body["trace_id"]},
        "failed": {"run": failed_run, "trace_id": failing.body["trace_id"]},
    }


@pytest.fixture(scope="module")
def reviewed(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return runs["reviewed"]


@pytest.fixture(scope="module")
def failed(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return runs["failed"]


def first_json(out: str) -> Any:
    """The command's JSON document; the plane's functions may log to the captured stdout after it."""
    return json.JSONDecoder().raw_decode(out[out.index("{") :])[0]


def spans(plane: LocalPlane, trace_id: str) -> list[dict[str, Any]]:
    plane.settle()
    return plane.spans.trace(trace_id)


def by_hop(found: list[dict[str, Any]], hop: str) -> list[dict[str, Any]]:
    return [s for s in found if s["attributes"].get("agentplane.hop") == hop]


def test_the_callers_traceparent_is_accepted_and_a_child_returned(plane: LocalPlane, reviewed: dict[str, Any]) -> None:
    answer = reviewed["answer"]
    returned = {k.lower(): v for k, v in answer.headers.items()}["traceparent"]

    # THEN the run joins the caller's trace, and the API's own span comes back as the new parent
    assert reviewed["trace_id"] == trace_id_from_traceparent(CALLER_TRACEPARENT)
    assert trace_id_from_traceparent(returned) == reviewed["trace_id"]
    [api] = by_hop(spans(plane, reviewed["trace_id"]), "api")
    assert api["parent_id"] == CALLER_TRACEPARENT.split("-")[2]
    assert returned.split("-")[2] == api["span_id"]


def test_every_step_of_a_run_has_a_span_under_its_invocation_under_the_api(
    plane: LocalPlane, reviewed: dict[str, Any]
) -> None:
    found = spans(plane, reviewed["trace_id"])
    ids = {s["span_id"]: s for s in found}
    [api] = by_hop(found, "api")
    agents = {s["attributes"]["agentplane.step"]: s for s in by_hop(found, "agent")}
    models = {s["attributes"]["agentplane.step"]: s for s in by_hop(found, "model")}

    # every recorded agent step of the run has its span (the approval is a person's, not an agent's), and every
    # model turn of an llm agent its own, in the invocation of the loop that took it
    steps = {s["step"] for s in reviewed["run"]["steps"] if s["agent"] != "approval-gate" and s["step"] != "Approval"}
    assert set(agents) | set(models) == steps
    for step, span in models.items():
        loop = agents[step.rsplit("/turn/", 1)[0]]
        assert ids[span["parent_id"]]["attributes"]["agentplane.agent"] == loop["attributes"]["agentplane.agent"]
        assert span["attributes"]["agentplane.input_tokens"] > 0
    for step, span in agents.items():
        if "/tool/" in step:  # an llm agent's tool call: dispatched under the loop's step
            dispatch = ids[ids[span["parent_id"]]["parent_id"]]
            assert dispatch["attributes"]["agentplane.hop"] == "dispatch"
            assert dispatch["attributes"]["agentplane.capability"] == span["attributes"]["agentplane.capability"]
            continue
        invocation = ids[span["parent_id"]]
        assert invocation["attributes"]["agentplane.hop"] == "invoke", (step, invocation["name"])
        assert invocation["attributes"]["agentplane.agent"] == span["attributes"]["agentplane.agent"]
        assert span["attributes"]["agentplane.trace_id"] == reviewed["trace_id"]
        assert span["status"] == "ok"
        if step == "entity-tagging":
            # across EventBridge: the tagger's invocation hangs under the step that published decision.recorded
            assert invocation["parent_id"] == agents["RecordDecision"]["span_id"]
            assert invocation["attributes"]["agentplane.event"] == "decision.recorded"
        elif step.startswith("VerifyClaim/"):
            # a dispatched step: the dispatcher's invocation (under the API) dispatched it, then called the agent
            dispatch = ids[invocation["parent_id"]]
            assert dispatch["attributes"]["agentplane.hop"] == "dispatch"
            dispatcher = ids[dispatch["parent_id"]]
            assert dispatcher["attributes"]["agentplane.hop"] == "invoke"
            assert dispatcher["attributes"]["agentplane.step"] == step
            assert dispatcher["parent_id"] == api["span_id"]
        else:
            assert invocation["attributes"]["agentplane.step"] == step
            assert invocation["parent_id"] == api["span_id"]
    assert all(s["trace_id"] == reviewed["trace_id"] for s in found)


def test_the_approval_is_traced_where_it_is_asked_for_and_where_a_person_decides(
    plane: LocalPlane, reviewed: dict[str, Any]
) -> None:
    found = spans(plane, reviewed["trace_id"])
    ids = {s["span_id"]: s for s in found}
    approvals = {s["name"]: s for s in by_hop(found, "approval")}

    assert set(approvals) == {"approval requested", "approval decided"}
    requested, decided = approvals["approval requested"], approvals["approval decided"]
    # asked for by the gate's invocation, a step of the run under the API's span
    gate = ids[requested["parent_id"]]
    assert gate["attributes"]["agentplane.hop"] == "invoke"
    assert requested["attributes"]["agentplane.execution_id"] == reviewed["run"]["execution_id"]
    # decided later, over the API, as a hop of the same trace, with its outcome
    assert decided["attributes"]["agentplane.outcome"] == "APPROVED"
    assert decided["attributes"]["agentplane.execution_id"] == reviewed["run"]["execution_id"]
    assert decided["start_ns"] >= requested["end_ns"]


def test_agentplane_trace_prints_every_step_with_its_duration(
    plane: LocalPlane, reviewed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["trace", reviewed["trace_id"], "--api-url", plane.url]) == 0
    text = capsys.readouterr().out
    for step in reviewed["run"]["steps"]:
        if step["step"] != "Approval":
            assert f"  {step['step']}  ({step['agent']} {step['agent_version']})" in text

    assert cli.main(["trace", reviewed["trace_id"], "--api-url", plane.url, "--json"]) == 0
    hops = first_json(capsys.readouterr().out)["hops"]
    assert len(hops) == len(spans(plane, reviewed["trace_id"]))
    assert all(h["duration_ms"] > 0 for h in hops)


def test_retries_show_as_attempts_and_the_failure_path_is_traced(plane: LocalPlane, failed: dict[str, Any]) -> None:
    from infra.traces import waterfall

    hops = waterfall(spans(plane, failed["trace_id"]))
    scoring = [h for h in hops if h.step == "ScoreRisk" and h.hop == "invoke"]
    assert [h.attempt for h in scoring] == list(range(1, len(scoring) + 1))
    assert len(scoring) >= 2
    assert all(h.status == "error" for h in scoring)
    assert [h.retried for h in scoring] == [True] * (len(scoring) - 1) + [False]
    assert any(h.step == "RecordFailure" and h.hop == "agent" and h.status == "ok" for h in hops)


def test_agentplane_explain_joins_the_trace_with_the_ledger(
    plane: LocalPlane, reviewed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["explain", reviewed["trace_id"], "--api-url", plane.url, "--json"]) == 0
    body = first_json(capsys.readouterr().out)

    assert body["verified"] is True
    by_step = {s["step"]: s for s in body["steps"]}
    assert by_step["Intake"]["actor"] == "agent:document-intake"
    assert by_step["Intake"]["attempts"] == 1
    assert by_step["Intake"]["span_ms"] > 0
    assert by_step["Approval"]["actor"].startswith("human:")
    assert all(s["verification"] == "verified" for s in body["steps"])


def emf_documents(plane: LocalPlane) -> list[dict[str, Any]]:
    documents = []
    for log in (plane.state_dir / "logs").glob("*.log"):
        for line in log.read_text().splitlines():
            if line.startswith("{") and '"_aws"' in line:
                documents.append(json.loads(line))
    return documents


def test_every_contracts_declared_metrics_are_emitted(
    plane: LocalPlane, reviewed: dict[str, Any], failed: dict[str, Any]
) -> None:
    plane.settle()
    emitted: dict[tuple[str, str, str], set[str]] = {}
    for document in emf_documents(plane):
        for directive in document["_aws"]["CloudWatchMetrics"]:
            key = (document.get("service"), document.get("capability"), document.get("version"))
            emitted.setdefault(key, set()).update(m["Name"] for m in directive["Metrics"])

    for contract in load_contracts().values():
        if not isinstance(contract.runtime, LambdaRuntime):
            continue
        key = (contract.name, contract.capabilities[0], contract.version)
        missing = set(contract.telemetry.metrics) - emitted.get(key, set())
        assert not missing, f"{contract.name} never emitted {sorted(missing)}"


def test_the_synchronous_route_traces_its_express_run_under_the_callers_context(plane: LocalPlane) -> None:
    caller = "00-6b04e26dde7be3c2396b4ad591589611-1111111111111111-01"
    answer = request(
        plane.url,
        "POST",
        "/v1/workflows/quick-check/invoke",
        {"claim": "Northwind Analytics was founded in 2012."},
        {"traceparent": caller},
    )
    assert answer.status == 200, answer.body

    trace_id = answer.body["trace_id"]
    assert trace_id == trace_id_from_traceparent(caller)
    returned = {k.lower(): v for k, v in answer.headers.items()}["traceparent"]
    found = spans(plane, trace_id)
    [api] = by_hop(found, "api")
    assert (api["parent_id"], api["span_id"]) == ("1111111111111111", returned.split("-")[2])
    [agent] = by_hop(found, "agent")
    assert agent["attributes"]["agentplane.agent"] == "evidence-verifier"
    assert {s["span_id"]: s for s in found}[agent["parent_id"]]["parent_id"] == api["span_id"]
