"""Dispatch: the plan tried in order, every outcome folded into the circuit, the route handed to the agent."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts.envelope import Envelope
from contracts.models import Verdict
from contracts.registry import Circuit, Implementation
from functions.dispatcher.service import (
    DispatchRequest,
    Escalated,
    ImplementationFailed,
    NoImplementation,
    dispatch,
    parse,
)
from functions.runtime.decisions import InMemoryDecisionStore
from functions.runtime.errors import BadInput, DeadlineExceeded
from functions.runtime.routing import Breaker, observe

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
BREAKER = Breaker(consecutive_failures=2, cool_down_s=30)
FALLBACK: list[str | dict[str, str]] = ["approximate", "human"]


class Registry:
    def __init__(self, *implementations: Implementation) -> None:
        self.items = {i.name: i for i in implementations}
        self.observed: list[tuple[str, bool]] = []

    def implementations(self) -> list[Implementation]:
        return list(self.items.values())

    def observe(self, name: str, *, succeeded: bool, now: datetime, breaker: Breaker) -> None:
        self.observed.append((name, succeeded))
        item = self.items[name]
        circuit = observe(item.circuit, succeeded=succeeded, now=now, breaker=breaker)
        self.items[name] = item.model_copy(update={"circuit": circuit})


class Invoker:
    def __init__(self, failing: set[str]) -> None:
        self.failing = failing
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, target: str, event: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((target, event))
        if target in self.failing:
            raise ImplementationFailed("ModelError", f"{target} is down")
        return {"answered_by": target}


def implementation(name: str, **extra: Any) -> Implementation:
    fields: dict[str, Any] = {
        "name": name,
        "agent": name.split("~")[0],
        "variant": "approximate" if "~" in name else "primary",
        "capabilities": ["fact-check"],
        "contract_version": "1.0.0",
        "runtime": "lambda",
        "target": f"fn-{name}",
        "fallback": FALLBACK,
    }
    return Implementation.model_validate({**fields, **extra})


def request(deadline: datetime = T0 + timedelta(minutes=5)) -> DispatchRequest:
    envelope = Envelope(
        trace_id="1-6745a1b2-5e0c3d9a7b1f42e68c0d9a31",
        causation_id="run-1/VerifyClaim/0",
        correlation_id="run-1",
        capability="fact-check",
        capability_version="1.0.0",
        deadline=deadline,
        payload={"claim": {"claim_id": "c-001", "text": "x", "sentence_index": 0}},
    )
    return DispatchRequest(accept="1.x", envelope=envelope)


def run(registry: Registry, invoker: Invoker, decisions: InMemoryDecisionStore | None = None, **kw: Any) -> Any:
    return dispatch(
        kw.pop("req", request()),
        registry=registry,
        invoke=invoker,
        decisions=decisions or InMemoryDecisionStore(),
        clock=lambda: kw.get("now", T0),
        breaker=BREAKER,
    )


def test_a_healthy_primary_answers_and_gets_the_route() -> None:
    registry = Registry(implementation("verifier"), implementation("verifier~approximate"))
    invoker = Invoker(failing=set())

    output = run(registry, invoker)

    assert output == {"answered_by": "fn-verifier"}
    sent = invoker.calls[0][1]
    assert sent["route"] == {"chosen": "verifier", "reason": "healthy and compatible", "tried": [], "skipped": []}
    assert registry.observed == [("verifier", True)]


def test_a_failing_primary_falls_back_to_the_approximate_handler_and_says_why() -> None:
    registry = Registry(implementation("verifier"), implementation("verifier~approximate"))
    invoker = Invoker(failing={"fn-verifier"})

    output = run(registry, invoker)

    assert output == {"answered_by": "fn-verifier~approximate"}
    route = invoker.calls[1][1]["route"]
    assert route["chosen"] == "verifier~approximate"
    assert route["reason"] == "fallback: approximate result"
    assert route["tried"] == [{"implementation": "verifier", "error": "ModelError: fn-verifier is down"}]
    assert registry.observed == [("verifier", False), ("verifier~approximate", True)]


def test_once_the_circuit_is_open_the_primary_is_not_called_at_all() -> None:
    registry = Registry(implementation("verifier"), implementation("verifier~approximate"))
    invoker = Invoker(failing={"fn-verifier"})
    run(registry, invoker)
    run(registry, invoker)  # second consecutive failure: open
    invoker.calls.clear()

    run(registry, invoker)

    assert [target for target, _ in invoker.calls] == ["fn-verifier~approximate"]
    assert invoker.calls[0][1]["route"]["skipped"] == ["verifier: circuit open (2 consecutive failures)"]


def test_when_nothing_automatic_is_left_the_escalation_is_recorded_then_raised() -> None:
    registry = Registry(implementation("verifier"), implementation("verifier~approximate"))
    invoker = Invoker(failing={"fn-verifier", "fn-verifier~approximate"})
    decisions = InMemoryDecisionStore()

    with pytest.raises(Escalated):
        run(registry, invoker, decisions)

    (record,) = decisions.list("run-1")
    assert record.status == "ESCALATED"
    assert record.actor == "system:dispatcher"
    assert record.step_key == "run-1/VerifyClaim/0"
    route = json.loads(record.route_json or "{}")
    assert route["chosen"] == "human"
    assert [t["implementation"] for t in route["tried"]] == ["verifier", "verifier~approximate"]


def test_stale_work_is_refused_before_anything_is_called() -> None:
    registry = Registry(implementation("verifier"))
    invoker = Invoker(failing=set())

    with pytest.raises(DeadlineExceeded):
        run(registry, invoker, req=request(deadline=T0 - timedelta(seconds=1)))

    assert invoker.calls == []
    assert registry.observed == []


def test_no_compatible_implementation_is_a_typed_error() -> None:
    registry = Registry(implementation("verifier", contract_version="2.0.0"))

    with pytest.raises(NoImplementation, match=r"no implementation of fact-check 1\.x"):
        run(registry, Invoker(failing=set()))


def test_a_contract_without_a_person_fails_once_everything_failed() -> None:
    lonely = implementation("verifier").model_copy(update={"fallback": []})

    with pytest.raises(NoImplementation, match=r"every implementation of fact-check 1\.x failed"):
        run(Registry(lonely), Invoker(failing={"fn-verifier"}))


@pytest.mark.parametrize("event", [{}, {"accept": "1.x"}, {"accept": "1.x", "envelope": {"trace_id": "x"}}])
def test_a_malformed_request_is_bad_input(event: dict[str, Any]) -> None:
    with pytest.raises(BadInput, match="dispatch request"):
        parse(event)


def test_circuit_state_in_an_implementation_survives_json() -> None:
    opened = implementation("verifier", circuit=Circuit(state="open", opened_at=T0, reason="r"))
    assert Implementation.model_validate_json(opened.model_dump_json()) == opened


def test_an_answer_outside_the_output_model_is_a_failure_and_the_fallback_answers() -> None:
    registry = Registry(implementation("verifier", output_model="Verdict"), implementation("verifier~approximate"))
    invoker = Invoker(failing=set())  # answers {"answered_by": ...}: not a Verdict

    output = run(registry, invoker)

    assert output == {"answered_by": "fn-verifier~approximate"}
    assert invoker.calls[1][1]["route"]["tried"][0]["error"].startswith("BadOutput: verifier answered outside Verdict")
    assert registry.observed == [("verifier", False), ("verifier~approximate", True)]


class VerdictInvoker(Invoker):
    def __call__(self, target: str, event: dict[str, Any]) -> dict[str, Any]:
        super().__call__(target, event)
        return {"claim_id": "c-001", "label": "not-enough-info", "confidence": 0.3, "rationale": f"by {target}"}


def test_a_fallbacks_answer_says_it_is_degraded_and_why() -> None:
    # GIVEN an output model with a `degraded` field (Verdict), and a primary that fails
    registry = Registry(
        implementation("verifier", output_model="Verdict"),
        implementation("verifier~approximate", output_model="Verdict"),
    )

    output = run(registry, VerdictInvoker(failing={"fn-verifier"}))

    # THEN the approximate answer names itself, its reason and what failed before it
    assert output["rationale"] == "by fn-verifier~approximate"
    assert output["degraded"] == (
        "verifier~approximate (fallback: approximate result): verifier failed (ModelError: fn-verifier is down)"
    )
    Verdict.model_validate(output)


def test_a_primarys_answer_is_not_marked_degraded() -> None:
    registry = Registry(implementation("verifier", output_model="Verdict"))

    output = run(registry, VerdictInvoker(failing=set()))

    assert "degraded" not in output
