"""The envelope every inter-agent message and step input carries (docs/architecture.md)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from contracts.models import TRACEPARENT_PATTERN, S3Ref

SEMVER_PATTERN = r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$"
TRACE_ID_PATTERN = r"^1-[0-9a-f]{8}-[0-9a-f]{24}$"
CAPABILITY_PATTERN = r"^[a-z][a-z0-9-]*(\.v[0-9]+)?$"
IDEMPOTENCY_KEY_LENGTH = 32


def derive_idempotency_key(causation_id: str) -> str:
    """A stable key for a causation id: redelivering the same message yields the same key."""
    return hashlib.sha256(causation_id.encode()).hexdigest()[:IDEMPOTENCY_KEY_LENGTH]


def _key_from_causation(data: dict[str, Any]) -> str:
    # Only reached with a valid causation_id: pydantic skips data-dependent factories after an error.
    return derive_idempotency_key(data["causation_id"])


class RouteAttempt(BaseModel):
    """An implementation dispatch tried before the chosen one, and how it failed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    implementation: str = Field(min_length=1, max_length=128)
    error: str = Field(max_length=1000)


class Route(BaseModel):
    """How dispatch chose the implementation that runs this step for its decision record (docs/architecture.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chosen: str = Field(min_length=1, max_length=128)
    reason: str = Field(min_length=1, max_length=256)
    tried: list[RouteAttempt] = Field(default_factory=list, max_length=16)
    skipped: list[str] = Field(default_factory=list, max_length=16, description="Passed over, and why.")


class Envelope(BaseModel):
    """Routing, lineage and budget of one message; the payload travels inline or as an S3 claim-check."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trace_id: str = Field(pattern=TRACE_ID_PATTERN, description="X-Ray trace id.")
    causation_id: str = Field(min_length=1, max_length=512, description="Id of the message or step that caused this.")
    correlation_id: str = Field(min_length=1, max_length=128, description="The workflow run (execution id).")
    capability: str = Field(pattern=CAPABILITY_PATTERN, examples=["fact-check", "summarizer.v2"])
    capability_version: str = Field(pattern=SEMVER_PATTERN)
    payload: dict[str, Any] | None = None
    payload_ref: S3Ref | None = None
    deadline: AwareDatetime = Field(description="Work not finished by then is refused, not run.")
    ttl_ms: int | None = Field(default=None, gt=0, description="The budget the deadline was set from.")
    idempotency_key: str = Field(
        default_factory=_key_from_causation,
        min_length=1,
        max_length=256,
        description="Derived from causation_id unless given.",
    )
    traceparent: str | None = Field(default=None, pattern=TRACEPARENT_PATTERN, description="W3C trace context.")
    route: Route | None = Field(default=None, description="Set by dispatch: the implementation chosen, and why.")

    @model_validator(mode="before")
    @classmethod
    def _null_key_means_derive(cls, data: Any) -> Any:
        # Callers forward an absent Idempotency-Key header as None; that means "derive it", not "invalid".
        if isinstance(data, dict) and "idempotency_key" in data and data["idempotency_key"] is None:
            return {field: value for field, value in data.items() if field != "idempotency_key"}
        return data

    @model_validator(mode="after")
    def _one_payload(self) -> Self:
        if (self.payload is None) == (self.payload_ref is None):
            raise ValueError("exactly one of payload and payload_ref must be set")
        return self

    @classmethod
    def with_ttl(
        cls,
        *,
        ttl_ms: int,
        trace_id: str,
        causation_id: str,
        correlation_id: str,
        capability: str,
        capability_version: str,
        payload: dict[str, Any] | None = None,
        payload_ref: S3Ref | None = None,
        idempotency_key: str | None = None,
        traceparent: str | None = None,
        now: datetime | None = None,
    ) -> Envelope:
        """Build an envelope whose deadline is ``now`` (default: the current UTC time) plus ``ttl_ms``."""
        start = now if now is not None else datetime.now(UTC)
        return cls(
            trace_id=trace_id,
            causation_id=causation_id,
            correlation_id=correlation_id,
            capability=capability,
            capability_version=capability_version,
            payload=payload,
            payload_ref=payload_ref,
            deadline=start + timedelta(milliseconds=ttl_ms),
            ttl_ms=ttl_ms,
            idempotency_key=idempotency_key,
            traceparent=traceparent,
        )

    def remaining_ms(self, now: datetime) -> int:
        """Milliseconds left until the deadline; negative once it has passed."""
        return (self.deadline - now) // timedelta(milliseconds=1)

    def is_expired(self, now: datetime) -> bool:
        return now >= self.deadline

    def child(
        self, *, causation_id: str, capability: str, capability_version: str, payload: dict[str, Any]
    ) -> Envelope:
        """The envelope of a message this one causes: same trace, run and deadline; a new idempotency key."""
        return Envelope(
            trace_id=self.trace_id,
            causation_id=causation_id,
            correlation_id=self.correlation_id,
            capability=capability,
            capability_version=capability_version,
            payload=payload,
            deadline=self.deadline,
            ttl_ms=self.ttl_ms,
            traceparent=self.traceparent,
        )
