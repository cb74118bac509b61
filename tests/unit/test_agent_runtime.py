"""The agent runtime: one checked, recorded step per envelope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts.models import RiskAssessment, RiskInput
from functions.runtime import Agent, AgentIdentity, BadInput, DeadlineExceeded, InMemoryDecisionStore, Step

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
IDENTITY = AgentIdentity(name="risk-scorer", version="1.2.0", capabilities=("risk-scoring",))
CLAIM = {"claim_id": "c-001", "text": "Northwind Analytics was founded in 2012.", "sentence_index": 0}
VERDICT = {"claim_id": "c-001", "label": "supported", "confidence": 0.9, "evidence": [], "rationale": "stated"}


def envelope(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "trace_id": "1-6b000000-0123456789abcdef01234567",
        "correlation_id": "run-1",
        "causation_id": "run-1/ScoreRisk",
        "capability": "risk-scoring",
        "capability_version": "1.2.0",
        "deadline": (NOW + timedelta(minutes=5)).isoformat(),
        "payload": {"claims": [CLAIM], "verdicts": [VERDICT]},
    }
    return {**base, **overrides}


class CountingService:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, request: RiskInput, step: Step) -> RiskAssessment:
        self.calls += 1
        return RiskAssessment(
            level="low",
            score=0.1,
            reasons=[f"{len(request.claims)} claim(s)"],
            policy_version="p1",
            recommended_outcome="accept",
        )


@pytest.fixture
def store() -> InMemoryDecisionStore:
    return InMemoryDecisionStore()


@pytest.fixture
def agent(store: InMemoryDecisionStore) -> Agent[RiskInput, RiskAssessment]:
    return Agent(IDENTITY, input_model=RiskInput, output_model=RiskAssessment, store=lambda: store, clock=lambda: NOW)


def test_a_step_returns_the_output_and_records_the_decision(
    agent: Agent[RiskInput, RiskAssessment], store: InMemoryDecisionStore
) -> None:
    output = agent.run(envelope(), CountingService())

    assert output["level"] == "low"
    record = store.get("run-1", "run-1/ScoreRisk")
    assert record is not None
    assert (record.status, record.agent, record.agent_version) == ("SUCCEEDED", "risk-scorer", "1.2.0")
    assert record.output() == output
    assert len(record.input_sha256) == 64


@pytest.mark.parametrize(("running", "recorded"), [("7", "7"), ("$LATEST", None), (None, None)])
def test_the_record_names_the_published_version_that_decided(
    agent: Agent[RiskInput, RiskAssessment],
    store: InMemoryDecisionStore,
    monkeypatch: pytest.MonkeyPatch,
    running: str | None,
    recorded: str | None,
) -> None:
    if running is None:
        monkeypatch.delenv("AWS_LAMBDA_FUNCTION_VERSION", raising=False)
    else:
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_VERSION", running)

    agent.run(envelope(), CountingService())

    record = store.get("run-1", "run-1/ScoreRisk")
    assert record is not None
    assert record.function_version == recorded


def test_a_redelivered_step_returns_the_first_decision_and_records_once(
    agent: Agent[RiskInput, RiskAssessment], store: InMemoryDecisionStore
) -> None:
    first = agent.run(envelope(), CountingService())
    again = agent.run(envelope(), CountingService())

    assert again == first
    assert len(store.list("run-1")) == 1


def test_stale_work_is_refused_never_run_and_recorded(
    agent: Agent[RiskInput, RiskAssessment], store: InMemoryDecisionStore
) -> None:
    service = CountingService()

    with pytest.raises(DeadlineExceeded):
        agent.run(envelope(deadline=(NOW - timedelta(seconds=1)).isoformat()), service)

    assert service.calls == 0
    [record] = store.list("run-1")
    assert (record.status, record.error_type) == ("FAILED", "DeadlineExceeded")


def test_a_step_that_only_records_runs_past_the_deadline(store: InMemoryDecisionStore) -> None:
    # GIVEN an agent that records what happened (the failure recorder) rather than doing new work
    recorder = Agent(
        IDENTITY,
        input_model=RiskInput,
        output_model=RiskAssessment,
        store=lambda: store,
        clock=lambda: NOW,
        refuses_stale=False,
    )
    service = CountingService()

    # WHEN its step arrives after the run's deadline
    recorder.run(envelope(deadline=(NOW - timedelta(minutes=1)).isoformat()), service)

    # THEN it still runs and is recorded: a refused failure record would lose the run
    assert service.calls == 1
    [record] = store.list("run-1")
    assert record.status == "SUCCEEDED"


def test_a_payload_outside_the_contract_is_bad_input_naming_the_field(
    agent: Agent[RiskInput, RiskAssessment], store: InMemoryDecisionStore
) -> None:
    with pytest.raises(BadInput, match=r"payload claims\.0\.claim_id"):
        agent.run(
            envelope(payload={"claims": [{**CLAIM, "claim_id": "nope"}], "verdicts": [VERDICT]}), CountingService()
        )

    assert [r.error_type for r in store.list("run-1")] == ["BadInput"]


def test_an_envelope_for_another_capability_is_refused(agent: Agent[RiskInput, RiskAssessment]) -> None:
    with pytest.raises(BadInput, match="not served by risk-scorer"):
        agent.run(envelope(capability="fact-check"), CountingService())


def test_a_broken_envelope_is_bad_input(agent: Agent[RiskInput, RiskAssessment]) -> None:
    with pytest.raises(BadInput, match="envelope trace_id"):
        agent.run(envelope(trace_id="not-a-trace"), CountingService())


def test_a_failing_service_is_recorded_and_the_error_propagates(
    agent: Agent[RiskInput, RiskAssessment], store: InMemoryDecisionStore
) -> None:
    class ModelError(Exception):
        pass

    def failing(request: RiskInput, step: Step) -> RiskAssessment:
        raise ModelError("model unavailable")

    with pytest.raises(ModelError):
        agent.run(envelope(), failing)

    [record] = store.list("run-1")
    assert (record.status, record.error_type, record.error_message) == ("FAILED", "ModelError", "model unavailable")
    assert record.step_key.startswith("run-1/ScoreRisk#failed#")


def test_identity_comes_from_the_contract_environment() -> None:
    identity = AgentIdentity.from_environment(
        {
            "AGENT_NAME": "evidence-verifier",
            "AGENT_VERSION": "1.0.0",
            "AGENT_CAPABILITIES": "fact-check,confidence-scoring",
        }
    )
    assert identity.capabilities == ("fact-check", "confidence-scoring")
    with pytest.raises(RuntimeError, match="AGENT_VERSION"):
        AgentIdentity.from_environment({"AGENT_NAME": "x", "AGENT_CAPABILITIES": "y"})
