"""Waterfalls and the incident view, from receiver spans and from X-Ray segments; the CLI commands."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from infra import cli
from infra.traces import explain, render_explained, render_waterfall, spans_from_xray, waterfall

pytestmark = pytest.mark.unit

TRACE_ID = "1-6745a1b2-5e0c3d9a7b1f42e68c0d9a31"


def span(span_id: str, parent: str | None, start_ms: float, ms: float, **attributes: Any) -> dict[str, Any]:
    status = attributes.pop("status", "ok")
    return {
        "trace_id": TRACE_ID,
        "span_id": span_id,
        "parent_id": parent,
        "name": attributes.pop("name", span_id),
        "service": "svc",
        "start_ns": int(start_ms * 1e6),
        "end_ns": int((start_ms + ms) * 1e6),
        "status": status,
        "attributes": {f"agentplane.{k}": v for k, v in attributes.items()},
    }


SPANS = [
    span("a", None, 0, 100, hop="api", name="POST /v1/workflows/{name}/executions"),
    # ScoreRisk: the first invocation fails (injected), the retry succeeds and runs the agent
    span("i2", "a", 40, 5, hop="invoke", step="ScoreRisk", agent="risk-scorer", status="error", error_type="Boom"),
    span("i3", "a", 50, 20, hop="invoke", step="ScoreRisk", agent="risk-scorer"),
    span("g3", "i3", 52, 10, hop="agent", step="ScoreRisk", agent="risk-scorer", version="1.0.0", outcome="succeeded"),
    span("i1", "a", 10, 25, hop="invoke", step="Intake", agent="document-intake"),
    span("g1", "i1", 12, 20, hop="agent", step="Intake", agent="document-intake", version="1.0.0"),
]


def test_the_waterfall_is_in_causal_order_with_depth_and_retries() -> None:
    hops = waterfall(reversed(SPANS))

    assert [(h.span_id, h.depth) for h in hops] == [("a", 0), ("i1", 1), ("g1", 2), ("i2", 1), ("i3", 1), ("g3", 2)]
    first, retry = hops[3], hops[4]
    assert (first.attempt, first.retried, first.status, first.error_type) == (1, True, "error", "Boom")
    assert (retry.attempt, retry.retried) == (2, False)
    assert hops[5].attempt == 1  # the agent ran once: its tries are counted apart from the invocations'
    assert hops[2].offset_ms == pytest.approx(12.0)
    assert hops[2].duration_ms == pytest.approx(20.0)


def test_the_rendered_waterfall_shows_every_hop_its_duration_status_and_retries() -> None:
    text = render_waterfall(TRACE_ID, waterfall(SPANS))

    assert text.splitlines()[0] == f"trace {TRACE_ID}  6 spans  100.0 ms  1 error(s)  1 retry(ies)"
    assert "      40.0      5.0  error    ScoreRisk  (risk-scorer, retried, Boom)" in text
    assert "      50.0     20.0  ok       ScoreRisk  (risk-scorer, attempt 2)" in text
    assert "        ScoreRisk  (risk-scorer 1.0.0)" in text
    assert render_waterfall(TRACE_ID, []) == f"trace {TRACE_ID}: no spans"


def test_x_ray_segments_and_subsegments_become_spans_with_their_annotations() -> None:
    document = {
        "id": "1111111111111111",
        "trace_id": TRACE_ID,
        "name": "agentplane-api",
        "origin": "AWS::Lambda::Function",
        "start_time": 1700000000.0,
        "end_time": 1700000000.25,
        "subsegments": [
            {
                "id": "2222222222222222",
                "name": "Intake document-intake",
                "start_time": 1700000000.05,
                "end_time": 1700000000.1,
                "fault": True,
                "annotations": {"agentplane_step": "Intake", "agentplane_agent": "document-intake"},
            }
        ],
    }
    spans = spans_from_xray(
        [{"Id": TRACE_ID, "Segments": [{"Id": "1111111111111111", "Document": json.dumps(document)}]}]
    )

    hops = waterfall(spans)
    assert [(h.name, h.depth, h.status) for h in hops] == [
        ("agentplane-api", 0, "ok"),
        ("Intake document-intake", 1, "error"),
    ]
    assert hops[1].step == "Intake"
    assert hops[1].duration_ms == pytest.approx(50.0, abs=0.01)


def test_explain_puts_each_recorded_decision_beside_its_span() -> None:
    lineage = {
        "trace_id": TRACE_ID,
        "verified": True,
        "steps": [
            {
                "step": "Intake",
                "agent": "document-intake",
                "actor": "agent:document-intake",
                "status": "SUCCEEDED",
                "input_sha256": "a" * 64,
                "output_sha256": "b" * 64,
                "duration_ms": 18.5,
                "verification": "verified",
            },
            {
                "step": "Approval",
                "agent": None,
                "actor": "human:approver",
                "status": "SUCCEEDED",
                "input_sha256": "c" * 64,
                "output_sha256": None,
                "duration_ms": 3.0,
                "verification": "verified",
            },
        ],
    }

    steps = explain(waterfall(SPANS), lineage)

    assert [(s.step, s.actor, s.attempts, s.span_ms, s.ledger_ms) for s in steps] == [
        ("Intake", "agent:document-intake", 1, pytest.approx(20.0), 18.5),
        ("Approval", "human:approver", 0, None, 3.0),
    ]
    text = render_explained(TRACE_ID, True, steps, untraced=1)
    assert "ledger verified" in text.splitlines()[0]
    assert "1 decision(s) have no span" in text


def test_trace_refuses_a_malformed_id_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["trace", "not-a-trace"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("agentplane: 'not-a-trace' is not a trace id")
    assert len(err.strip().splitlines()) == 1


def test_against_a_deployed_plane_trace_reads_x_ray(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    # GIVEN a deployed API and X-Ray holding the trace (stubbed: moto's X-Ray backend imports the X-Ray SDK,
    # which the plane deliberately does not depend on)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    xray = boto3.client("xray", region_name="eu-west-1")
    document = {
        "id": "1111111111111111",
        "trace_id": TRACE_ID,
        "name": "agentplane-api",
        "start_time": 1.0,
        "end_time": 1.5,
    }
    stubber = Stubber(xray)
    stubber.add_response(
        "batch_get_traces",
        {"Traces": [{"Id": TRACE_ID, "Segments": [{"Id": "1111111111111111", "Document": json.dumps(document)}]}]},
        {"TraceIds": [TRACE_ID]},
    )
    regions = []

    def client(service: str, region_name: str) -> Any:
        regions.append((service, region_name))
        return xray

    monkeypatch.setattr(boto3, "client", client)
    url = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"

    # WHEN
    with stubber:
        code = cli.main(["trace", TRACE_ID, "--api-url", url, "--state-dir", str(tmp_path)])

    # THEN the waterfall comes from X-Ray in the API's region
    assert code == 0
    assert regions == [("xray", "eu-west-1")]
    assert "agentplane-api" in capsys.readouterr().out
    stubber.assert_no_pending_responses()


def test_an_x_ray_error_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    xray = boto3.client("xray", region_name="eu-west-1")
    stubber = Stubber(xray)
    stubber.add_client_error("batch_get_traces", "AccessDeniedException", "not allowed")
    monkeypatch.setattr(boto3, "client", lambda service, region_name: xray)

    with stubber:
        code = cli.main(
            [
                "trace",
                TRACE_ID,
                "--api-url",
                "https://x.execute-api.eu-west-1.amazonaws.com/prod",
                "--state-dir",
                str(tmp_path),
            ]
        )

    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"agentplane: cannot read trace {TRACE_ID} from X-Ray in eu-west-1:")
    assert len(err.strip().splitlines()) == 1


def test_after_the_plane_stopped_trace_reads_its_span_journal(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a state dir a stopped plane left (no plane.json), with spans of two traces
    other = {**SPANS[0], "trace_id": "1-00000000-000000000000000000000001", "span_id": "z"}
    (tmp_path / "spans.jsonl").write_text("".join(json.dumps(s) + "\n" for s in [*SPANS, other]))

    assert cli.main(["trace", TRACE_ID, "--state-dir", str(tmp_path)]) == 0

    out = capsys.readouterr().out
    assert out.startswith(f"trace {TRACE_ID}  6 spans")
    assert "Intake  (document-intake 1.0.0)" in out
