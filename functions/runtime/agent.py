"""One step of one agent: parse the envelope, refuse stale work, call the service, record the decision."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ValidationError

from contracts.envelope import Envelope
from contracts.validation import first_error
from functions.runtime import tracing
from functions.runtime.canonical import canonical_json
from functions.runtime.decisions import DecisionRecord, DecisionStore, DynamoDecisionStore, step_key, step_name
from functions.runtime.errors import BadInput, BadOutput, DeadlineExceeded, StepPaused
from functions.runtime.telemetry import agent_logger, agent_metrics

if TYPE_CHECKING:  # the idempotency utility loads only for agents with side effects
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
    from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer

In = TypeVar("In", bound=BaseModel)
# What the SLO alarms read: emitted by every agent, declared or not.
RUNTIME_METRICS = frozenset({"latency_ms", "success_count", "error_count"})
Out = TypeVar("Out", bound=BaseModel)

# A redelivery later than this runs again; Step Functions and EventBridge retry well within a day.
IDEMPOTENCY_TTL_S = 24 * 3600
SIDE_EFFECTS_FREE = "read-only"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Step:
    """What a service may know about the step it serves, beyond its payload."""

    envelope: Envelope
    started: datetime


@dataclass(frozen=True)
class _Deadline:
    """The part of a Lambda context the idempotency utility reads, answered from the envelope's deadline."""

    envelope: Envelope
    clock: Callable[[], datetime]

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.envelope.remaining_ms(self.clock()))


def executed_version() -> str | None:
    """The published version of this function that runs (Lambda sets it per instance; an alias may split
    traffic between two during a rollout); None when unpublished code runs ($LATEST, tests)."""
    version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
    return version if version and version != "$LATEST" else None


@dataclass(frozen=True)
class AgentIdentity:
    """Who decides: the contract's name and version, the capabilities it serves, and its side effects."""

    name: str
    version: str
    capabilities: tuple[str, ...]
    metrics: tuple[str, ...] = ()  # the contract's telemetry.metrics
    variant: str = "primary"  # "approximate": the contract's degraded handler

    @property
    def actor(self) -> str:
        return f"agent:{self.name}" if self.variant == "primary" else f"agent:{self.name}~{self.variant}"

    side_effects: str = SIDE_EFFECTS_FREE

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> AgentIdentity:
        try:
            return cls(
                name=env["AGENT_NAME"],
                version=env["AGENT_VERSION"],
                capabilities=tuple(c for c in env["AGENT_CAPABILITIES"].split(",") if c),
                metrics=tuple(m for m in env.get("AGENT_METRICS", "").split(",") if m),
                variant=env.get("AGENT_VARIANT", "primary"),
                side_effects=env.get("AGENT_SIDE_EFFECTS", SIDE_EFFECTS_FREE),
            )
        except KeyError as missing:
            raise RuntimeError(f"agent environment lacks {missing.args[0]}: deploy it from its contract") from None


class Agent(Generic[In, Out]):
    """Runs a pure service as a contract-checked, recorded step."""

    def __init__(
        self,
        identity: AgentIdentity,
        *,
        input_model: type[In],
        output_model: type[Out],
        store: Callable[[], DecisionStore],
        idempotency: Callable[[], BasePersistenceLayer] | None = None,
        clock: Callable[[], datetime] = utcnow,
        logger: Logger | None = None,
        metrics: Metrics | None = None,
        refuses_stale: bool = True,
    ) -> None:
        self.identity = identity
        # Stale work is refused; a step that only records what happened (the failure recorder) is never stale.
        self.refuses_stale = refuses_stale
        self.input_model = input_model
        self.output_model = output_model
        self._store_factory = store
        self._idempotency_factory = idempotency
        self._clock = clock
        self.logger = logger or agent_logger(identity.name)
        self.metrics = metrics or agent_metrics(
            identity.name, capability=identity.capabilities[0], version=identity.version
        )

    @classmethod
    def from_environment(
        cls, *, input_model: type[In], output_model: type[Out], refuses_stale: bool = True
    ) -> Agent[In, Out]:
        identity = AgentIdentity.from_environment(os.environ)

        def dynamo_store() -> DecisionStore:
            from functions.runtime.adapters import table

            return DynamoDecisionStore(table(os.environ["DECISIONS_TABLE"]))

        def dynamo_idempotency() -> BasePersistenceLayer:
            from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

            table = os.environ.get("IDEMPOTENCY_TABLE")
            if not table:
                raise RuntimeError(
                    f"{identity.name} has side effects ({identity.side_effects}) but no IDEMPOTENCY_TABLE: "
                    "its contract needs the write:idempotency permission"
                )
            from functions.runtime.adapters import client

            # The runtime's one DynamoDB client: no second client to build on a cold start.
            return DynamoDBPersistenceLayer(table_name=table, boto3_client=client("dynamodb"))

        side_effects = identity.side_effects != SIDE_EFFECTS_FREE
        return cls(
            identity,
            input_model=input_model,
            output_model=output_model,
            store=dynamo_store,
            idempotency=dynamo_idempotency if side_effects else None,
            refuses_stale=refuses_stale,
        )

    @cached_property
    def store(self) -> DecisionStore:
        return self._store_factory()

    @cached_property
    def _once(self) -> tuple[IdempotencyConfig, Callable[..., dict[str, Any]]] | None:
        """The service call made at most once per idempotency key (Powertools idempotency), for side effects.

        The decision record's conditional put only detects a duplicate after the service ran; a side effect
        needs the in-progress marker before it, so a redelivered message finds the first result instead.
        """
        if self._idempotency_factory is None:
            return None
        from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function

        config = IdempotencyConfig(expires_after_seconds=IDEMPOTENCY_TTL_S)

        def decide(idempotency_key: str, decide: Callable[[], dict[str, Any]]) -> dict[str, Any]:
            return decide()

        decide_once: Callable[..., dict[str, Any]] = idempotent_function(
            data_keyword_argument="idempotency_key", config=config, persistence_store=self._idempotency_factory()
        )(decide)
        return config, decide_once

    def run(
        self,
        event: Mapping[str, Any],
        service: Callable[[In, Step], Out],
        measure: Callable[[Out], Mapping[str, float]] | None = None,
    ) -> dict[str, Any]:
        """Run one step; returns the output payload (JSON-ready) or raises a typed error.

        ``measure`` gives the contract's own metrics from the output (e.g. ``evidence_hits``); the runtime
        emits ``latency_ms``, ``success_count``, ``retry_count`` and ``error_count`` itself.
        """
        started = self._clock()
        clock_start = time.perf_counter()
        try:
            envelope = Envelope.model_validate(event)
        except ValidationError as exc:
            raise BadInput(f"envelope {first_error(exc)}") from None
        if envelope.capability not in self.identity.capabilities:
            raise BadInput(
                f"capability {envelope.capability!r} is not served by {self.identity.name} "
                f"(serves {', '.join(self.identity.capabilities)})"
            )
        step = step_name(envelope.causation_id, envelope.correlation_id)
        ids = {
            "trace_id": envelope.trace_id,
            "correlation_id": envelope.correlation_id,
            "execution_id": envelope.correlation_id,
            "causation_id": envelope.causation_id,
        }
        self.logger.append_keys(
            **ids, capability=envelope.capability, capability_version=envelope.capability_version, step=step
        )
        for key, value in ids.items():  # high-cardinality ids: EMF properties, never dimensions
            self.metrics.add_metadata(key=key, value=value)
        attributes = tracing.hop_attributes(
            "agent",
            capability=envelope.capability,
            version=self.identity.version,
            agent=self.identity.name,
            trace_id=envelope.trace_id,
            execution_id=envelope.correlation_id,
            causation_id=envelope.causation_id,
            step=step,
        )
        with tracing.span(
            f"{step} {self.identity.name}", attributes, trace_id=envelope.trace_id, traceparent=envelope.traceparent
        ) as span:
            try:
                if self._once is None:
                    result, output = self._decide(envelope, service, started)
                else:
                    config, decide_once = self._once
                    # An in-progress marker lasts as long as the step may: until the envelope's deadline.
                    config.register_lambda_context(_Deadline(envelope, self._clock))  # type: ignore[arg-type]
                    output = decide_once(
                        idempotency_key=envelope.idempotency_key,
                        decide=lambda: self._decide(envelope, service, started)[1],
                    )
                    result = self.output_model.model_validate(output)  # a replay answers what was decided
            except Exception as exc:
                self._record(envelope, started, clock_start, error=exc)
                if isinstance(exc, StepPaused):  # waits for a person: recorded, not the agent's error
                    span.set_attribute("agentplane.outcome", "paused")
                    self.logger.info("step paused", reason=str(exc))
                    raise
                self.metrics.add_metric(name="error_count", unit=MetricUnit.Count, value=1)
                self.metrics.add_metadata(key="error_type", value=type(exc).__name__)
                span.set_attribute("agentplane.outcome", "failed")
                self.logger.warning("step failed", error_type=type(exc).__name__, error=str(exc))
                raise
            recorded = self._record(envelope, started, clock_start, output=output)
            redelivered = recorded is not output
            span.set_attribute("agentplane.outcome", "duplicate" if redelivered else "succeeded")
        duration_ms = (time.perf_counter() - clock_start) * 1000
        self._emit({"latency_ms": duration_ms, "success_count": 1})
        if "retry_count" in self.identity.metrics:
            self._emit({"retry_count": 1 if redelivered else 0})
        if measure is not None:
            self._emit(measure(result))
        return recorded

    def _emit(self, values: Mapping[str, float]) -> None:
        """The contract's declared metrics; the runtime's SLO metrics are emitted whether declared or not."""
        for name, value in values.items():
            if name in self.identity.metrics or name in RUNTIME_METRICS:
                unit = MetricUnit.Milliseconds if name.endswith("_ms") else MetricUnit.Count
                self.metrics.add_metric(name=name, unit=unit, value=value)
            else:
                self.logger.warning("metric not declared by the contract; not emitted", metric=name)

    def _decide(
        self, envelope: Envelope, service: Callable[[In, Step], Out], started: datetime
    ) -> tuple[Out, dict[str, Any]]:
        if self.refuses_stale and envelope.is_expired(started):
            raise DeadlineExceeded(f"deadline {envelope.deadline.isoformat()} passed before the step started")
        if envelope.payload is None:
            raise BadInput(f"{self.identity.name} takes an inline payload, not a payload_ref")
        try:
            request = self.input_model.model_validate(envelope.payload)
        except ValidationError as exc:
            raise BadInput(f"payload {first_error(exc)}") from None
        result = service(request, Step(envelope=envelope, started=started))
        if not isinstance(result, self.output_model):
            raise BadOutput(f"{self.identity.name} returned {type(result).__name__}, not {self.output_model.__name__}")
        return result, result.model_dump(mode="json")

    def _record(
        self,
        envelope: Envelope,
        started: datetime,
        clock_start: float,
        *,
        output: dict[str, Any] | None = None,
        error: Exception | None = None,
    ) -> dict[str, Any]:
        """Write the step's decision record; on a duplicate, return what was decided the first time."""
        finished = self._clock()
        attempt = () if error is None else ("failed", started.isoformat())  # a failed attempt never blocks a retry
        record = DecisionRecord.of(
            input=envelope.payload,
            output=output,
            started=started,
            finished=finished,
            duration_ms=(time.perf_counter() - clock_start) * 1000,
            correlation_id=envelope.correlation_id,
            step_key=step_key(envelope.causation_id, *attempt),
            trace_id=envelope.trace_id,
            causation_id=envelope.causation_id,
            agent=self.identity.name,
            agent_version=self.identity.version,
            capability=envelope.capability,
            capability_version=envelope.capability_version,
            status="SUCCEEDED" if error is None else "ESCALATED" if isinstance(error, StepPaused) else "FAILED",
            actor=self.identity.actor,
            error_type=None if error is None else type(error).__name__,
            error_message=None if error is None else str(error)[:1000],
            route_json=None if envelope.route is None else canonical_json(envelope.route.model_dump(mode="json")),
            function_version=executed_version(),
        )
        if self.store.put(record) or output is None:
            return output if output is not None else {}
        first = self.store.get(record.correlation_id, record.step_key)
        if first is not None and first.status == "SUCCEEDED":
            self.logger.info("duplicate delivery: returning the recorded decision", step_key=record.step_key)
            recorded: dict[str, Any] = first.output()
            return recorded
        return output
