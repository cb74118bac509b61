"""Dispatch one step to a capability: plan from the registry, try in order, record every choice.

The chosen implementation gets the step's envelope with the route (what was chosen, why, what was tried)
and writes it into its decision record. When nothing automatic is left, the dispatcher records the
escalation itself and raises :class:`Escalated`: the workflow hands the step to a person.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.envelope import Envelope, Route, RouteAttempt
from contracts.models import MODELS
from contracts.registry import Implementation
from contracts.validation import first_error
from functions.runtime.canonical import canonical_json
from functions.runtime.decisions import DecisionRecord, DecisionStore, step_key
from functions.runtime.errors import BadInput, DeadlineExceeded
from functions.runtime.routing import HUMAN, Breaker, plan

DISPATCHER = "dispatcher"


class DispatchRequest(BaseModel):
    """The step's input: which versions of the envelope's capability are acceptable, and the envelope."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    accept: str = Field(min_length=1, max_length=32, examples=["1.x"])
    envelope: Envelope


class ImplementationFailed(Exception):
    """An implementation answered with an error (or not at all): the next candidate is tried."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


class Escalated(Exception):
    """No implementation could do the step: a person must (the workflow catches this by name)."""


class NoImplementation(Exception):
    """The registry has nothing for this capability and range, and the contract names no person."""


class Registry(Protocol):
    def implementations(self) -> list[Implementation]: ...

    def observe(self, name: str, *, succeeded: bool, now: datetime, breaker: Breaker) -> None:
        """Fold one outcome into the implementation's circuit."""
        ...


Invoke = Callable[[str, dict[str, Any]], dict[str, Any]]


def parse(event: Any) -> DispatchRequest:
    try:
        return DispatchRequest.model_validate(event)
    except ValidationError as exc:
        raise BadInput(f"dispatch request {first_error(exc)}") from None


def dispatch(
    request: DispatchRequest,
    *,
    registry: Registry,
    invoke: Invoke,
    decisions: DecisionStore,
    clock: Callable[[], datetime],
    breaker: Breaker,
) -> dict[str, Any]:
    envelope = request.envelope
    started = clock()
    if envelope.is_expired(started):
        raise DeadlineExceeded(f"deadline {envelope.deadline.isoformat()} passed before dispatch")
    candidates, skipped = plan(
        envelope.capability, request.accept, registry.implementations(), now=started, breaker=breaker
    )
    if not candidates:
        raise NoImplementation(
            f"no implementation of {envelope.capability} {request.accept} can take work"
            + (f" ({'; '.join(skipped)})" if skipped else "")
        )
    tried: list[RouteAttempt] = []
    for candidate in candidates:
        route = Route(chosen=candidate.implementation, reason=candidate.reason, tried=list(tried), skipped=skipped)
        if candidate.implementation == HUMAN:
            _record_escalation(envelope, route, decisions, started, clock())
            raise Escalated(
                f"{envelope.capability}: every automatic implementation failed or is unavailable; a person decides"
            )
        now = clock()
        if envelope.is_expired(now):  # the remaining budget is spent: refuse, never run stale work
            raise DeadlineExceeded(
                f"deadline {envelope.deadline.isoformat()} passed after trying "
                + ", ".join(t.implementation for t in tried)
            )
        assert candidate.target is not None
        try:
            output = invoke(candidate.target, envelope.model_copy(update={"route": route}).model_dump(mode="json"))
            _conforms(output, candidate.output_model, candidate.implementation)
        except ImplementationFailed as failed:
            registry.observe(candidate.implementation, succeeded=False, now=clock(), breaker=breaker)
            tried.append(
                RouteAttempt(implementation=candidate.implementation, error=f"{failed.error_type}: {failed.message}")
            )
            continue
        registry.observe(candidate.implementation, succeeded=True, now=clock(), breaker=breaker)
        return _say_if_degraded(output, route, candidate.output_model)
    raise NoImplementation(
        f"every implementation of {envelope.capability} {request.accept} failed: "
        + "; ".join(f"{t.implementation} ({t.error})" for t in tried)
    )


FALLBACK = "fallback:"  # how routing.plan's reasons name a contract fallback (alternate, approximate, human)
DEGRADED_FIELD = "degraded"  # an output model with this field is told when a fallback produced it
MAX_DEGRADED_CHARS = 300


def _say_if_degraded(output: dict[str, Any], route: Route, model_name: str | None) -> dict[str, Any]:
    """A fallback's answer says so in its own output, so the workflow (not only the ledger) can see it.

    Only output models that declare a ``degraded`` field are marked; the route is in the decision record either way.
    """
    model = MODELS.get(model_name or "")
    if not route.reason.startswith(FALLBACK) or model is None or DEGRADED_FIELD not in model.model_fields:
        return output
    why = [f"{t.implementation} failed ({t.error})" for t in route.tried] + list(route.skipped)
    note = f"{route.chosen} ({route.reason})" + (": " + "; ".join(why) if why else "")
    if len(note) > MAX_DEGRADED_CHARS:
        note = note[: MAX_DEGRADED_CHARS - 3] + "..."
    return {**output, DEGRADED_FIELD: note}


def _conforms(output: dict[str, Any], model_name: str | None, implementation: str) -> None:
    """An answer outside the contract's output model is a failure of that implementation, not a result."""
    model = MODELS.get(model_name or "")
    if model is None:
        return
    try:
        model.model_validate(output)
    except ValidationError as exc:
        detail = f"{implementation} answered outside {model_name}: {first_error(exc)}"
        raise ImplementationFailed("BadOutput", detail) from None


def _record_escalation(
    envelope: Envelope, route: Route, decisions: DecisionStore, started: datetime, finished: datetime
) -> None:
    """The escalation is a decision too: who (the dispatcher), on what input, and the route that led there."""
    decisions.put(
        DecisionRecord.of(
            input=envelope.payload,
            output={"escalated": True, "reason": route.reason},
            started=started,
            finished=finished,
            correlation_id=envelope.correlation_id,
            step_key=step_key(envelope.causation_id),
            trace_id=envelope.trace_id,
            causation_id=envelope.causation_id,
            agent=DISPATCHER,
            agent_version=envelope.capability_version,
            capability=envelope.capability,
            capability_version=envelope.capability_version,
            status="ESCALATED",
            actor=f"system:{DISPATCHER}",
            route_json=canonical_json(route.model_dump(mode="json")),
        )
    )
