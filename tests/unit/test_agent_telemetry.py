"""What an agent step emits: its contract's metrics (EMF), log lines carrying the ids, and a span."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools import Logger

from contracts.models import RiskAssessment, RiskInput
from functions.runtime import Agent, AgentIdentity, InMemoryDecisionStore, Step
from functions.runtime.errors import StepPaused
from functions.runtime.telemetry import agent_metrics

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TRACE_ID = "1-6b000000-0123456789abcdef01234567"
IDENTITY = AgentIdentity(
    name="risk-scorer",
    version="1.2.0",
    capabilities=("risk-scoring",),
    metrics=("latency_ms", "success_count", "high_risk_count"),
)
CLAIM = {"claim_id": "c-001", "text": "Northwind Analytics was founded in 2012.", "sentence_index": 0}
VERDICT = {"claim_id": "c-001", "label": "supported", "confidence": 0.9, "evidence": [], "rationale": "stated"}
ENVELOPE = {
    "trace_id": TRACE_ID,
    "correlation_id": "run-1",
    "causation_id": "run-1/ScoreRisk",
    "capability": "risk-scoring",
    "capability_version": "1.2.0",
    "deadline": (NOW + timedelta(minutes=5)).isoformat(),
    "payload": {"claims": [CLAIM], "verdicts": [VERDICT]},
}


def high(request: RiskInput, step: Step) -> RiskAssessment:
    return RiskAssessment(level="high", score=0.9, reasons=["r"], policy_version="p1", recommended_outcome="escalate")


def failing(request: RiskInput, step: Step) -> RiskAssessment:
    raise RuntimeError("policy store down")


@pytest.fixture
def logs() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def agent(logs: io.StringIO) -> Agent[RiskInput, RiskAssessment]:
    store = InMemoryDecisionStore()
    # A logger of its own (Powertools keeps one handler per service name), writing where the test reads.
    logger = Logger(service=f"risk-scorer-{uuid.uuid4().hex[:8]}", logger_handler=logging.StreamHandler(logs))
    return Agent(
        IDENTITY,
        input_model=RiskInput,
        output_model=RiskAssessment,
        store=lambda: store,
        clock=lambda: NOW,
        logger=logger,
        metrics=agent_metrics(IDENTITY.name, capability="risk-scoring", version="1.2.0"),
    )


def emitted(capsys: pytest.CaptureFixture[str], logs: io.StringIO | None = None) -> Iterator[dict[str, Any]]:
    text = capsys.readouterr().out + (logs.getvalue() if logs is not None else "")
    for line in text.splitlines():
        if line.startswith("{"):
            yield json.loads(line)


def emf(lines: list[dict[str, Any]]) -> dict[str, Any]:
    [document] = [line for line in lines if "_aws" in line]
    return document


def test_a_step_emits_its_declared_metrics_with_capability_and_version_dimensions(
    agent: Agent[RiskInput, RiskAssessment], capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN a step succeeds and its metrics are flushed (as log_metrics does at the end of an invocation)
    agent.run(ENVELOPE, high, lambda risk: {"high_risk_count": int(risk.level == "high")})
    agent.metrics.flush_metrics()

    # THEN every declared metric is in the EMF document, under capability and version
    document = emf(list(emitted(capsys)))
    [directive] = document["_aws"]["CloudWatchMetrics"]
    assert {m["Name"] for m in directive["Metrics"]} == {"latency_ms", "success_count", "high_risk_count"}
    assert sorted(directive["Dimensions"][0]) == ["capability", "service", "version"]
    assert (document["capability"], document["version"], document["high_risk_count"]) == (
        "risk-scoring",
        "1.2.0",
        [1.0],
    )
    # AND the ids are properties, never dimensions
    assert (document["trace_id"], document["execution_id"], document["causation_id"]) == (
        TRACE_ID,
        "run-1",
        "run-1/ScoreRisk",
    )
    assert not {"trace_id", "execution_id", "causation_id"} & set(directive["Dimensions"][0])


def test_a_metric_the_contract_does_not_declare_is_not_emitted(
    agent: Agent[RiskInput, RiskAssessment], capsys: pytest.CaptureFixture[str], logs: io.StringIO
) -> None:
    agent.run(ENVELOPE, high, lambda risk: {"invented_metric": 1})
    agent.metrics.flush_metrics()

    lines = list(emitted(capsys, logs))
    [directive] = emf(lines)["_aws"]["CloudWatchMetrics"]
    assert "invented_metric" not in {m["Name"] for m in directive["Metrics"]}
    assert any(line.get("metric") == "invented_metric" for line in lines if line.get("level") == "WARNING")


def test_a_failed_step_counts_an_error_with_its_type(
    agent: Agent[RiskInput, RiskAssessment], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(RuntimeError):
        agent.run(ENVELOPE, failing)
    agent.metrics.flush_metrics()

    document = emf(list(emitted(capsys)))
    assert document["error_count"] == [1.0]
    assert document["error_type"] == "RuntimeError"
    assert "success_count" not in document


def waits(request: RiskInput, step: Step) -> RiskAssessment:
    raise StepPaused("a person must decide first")


def test_a_step_that_waits_for_a_person_is_recorded_escalated_and_is_not_an_error(
    agent: Agent[RiskInput, RiskAssessment], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(StepPaused):
        agent.run(ENVELOPE, waits)
    with pytest.warns(UserWarning, match="No application metrics"):  # no error_count, nor anything else
        agent.metrics.flush_metrics()

    [record] = agent.store.records.values()  # type: ignore[attr-defined]
    assert (record.status, record.error_type) == ("ESCALATED", "StepPaused")
    assert not [line for line in emitted(capsys) if "error_count" in line]


def test_log_lines_carry_the_trace_causation_execution_and_capability(
    agent: Agent[RiskInput, RiskAssessment], capsys: pytest.CaptureFixture[str], logs: io.StringIO
) -> None:
    with pytest.raises(RuntimeError):
        agent.run(ENVELOPE, failing)

    [warning] = [line for line in emitted(capsys, logs) if line.get("message") == "step failed"]
    assert warning["trace_id"] == TRACE_ID
    assert warning["causation_id"] == "run-1/ScoreRisk"
    assert warning["execution_id"] == "run-1"
    assert warning["capability"] == "risk-scoring"
    assert warning["step"] == "ScoreRisk"


def test_identity_reads_the_declared_metrics_from_the_contract_environment() -> None:
    identity = AgentIdentity.from_environment(
        {
            "AGENT_NAME": "x",
            "AGENT_VERSION": "1.0.0",
            "AGENT_CAPABILITIES": "y",
            "AGENT_METRICS": "latency_ms,evidence_hits",
        }
    )
    assert identity.metrics == ("latency_ms", "evidence_hits")
