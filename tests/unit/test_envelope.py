from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from contracts import Envelope
from contracts.envelope import derive_idempotency_key
from contracts.models import S3Ref

pytestmark = pytest.mark.unit

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
TRACE_ID = "1-5759e988-bd862e3fe1be46a994272793"
TRACEPARENT = "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"


def envelope_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "trace_id": TRACE_ID,
        "causation_id": "exec-1/intake",
        "correlation_id": "exec-1",
        "capability": "fact-check",
        "capability_version": "1.0.0",
        "payload": {"claim_id": "c-001"},
        "deadline": NOW + timedelta(seconds=5),
    }
    fields.update(overrides)
    return fields


def error_fields(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[int | str, ...]]:
    return [error["loc"] for error in exc.value.errors()]


def test_valid_envelope_round_trips_through_json() -> None:
    # GIVEN a complete envelope
    envelope = Envelope(**envelope_fields(traceparent=TRACEPARENT, capability="summarizer.v2"))

    # WHEN it is serialised and parsed back
    parsed = Envelope.model_validate_json(envelope.model_dump_json())

    # THEN nothing is lost, the derived idempotency key included
    assert parsed == envelope
    assert parsed.idempotency_key == envelope.idempotency_key


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("trace_id", "5759e988-bd862e3fe1be46a994272793"),
        ("trace_id", "1-5759E988-bd862e3fe1be46a994272793"),
        ("traceparent", "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8"),
        ("capability", "Fact-Check"),
        ("capability", "summarizer.2"),
        ("capability_version", "1.0"),
        ("capability_version", "01.0.0"),
        ("causation_id", ""),
        ("correlation_id", "x" * 129),
        ("ttl_ms", 0),
    ],
)
def test_malformed_field_is_rejected(field: str, value: object) -> None:
    # GIVEN an envelope with one malformed field
    fields = envelope_fields(**{field: value})

    # WHEN it is validated
    with pytest.raises(ValidationError) as exc:
        Envelope(**fields)

    # THEN the error points at that field
    assert (field,) in error_fields(exc)


def test_naive_deadline_is_rejected() -> None:
    # GIVEN a deadline without a timezone, which could mean any instant
    fields = envelope_fields(deadline=datetime(2025, 6, 1, 12, 0))

    # WHEN it is validated
    with pytest.raises(ValidationError) as exc:
        Envelope(**fields)

    # THEN it is refused with a timezone error
    assert exc.value.errors()[0]["loc"] == ("deadline",)
    assert exc.value.errors()[0]["type"] == "timezone_aware"


def test_unknown_field_is_rejected() -> None:
    with pytest.raises(ValidationError) as exc:
        Envelope(**envelope_fields(priority="high"))

    assert ("priority",) in error_fields(exc)


@pytest.mark.parametrize(
    "payloads",
    [
        pytest.param({"payload": None}, id="neither"),
        pytest.param(
            {"payload_ref": S3Ref(bucket="docs", key="a.txt", sha256="0" * 64, size_bytes=1)},
            id="both",
        ),
    ],
)
def test_exactly_one_of_payload_and_payload_ref(payloads: dict[str, Any]) -> None:
    # GIVEN an envelope with both an inline payload and a reference, or with neither
    fields = envelope_fields(**payloads)

    # WHEN it is validated
    with pytest.raises(ValidationError, match="exactly one of payload and payload_ref"):
        Envelope(**fields)


def test_payload_ref_alone_is_accepted() -> None:
    ref = S3Ref(bucket="docs", key="a.txt", sha256="0" * 64, size_bytes=1)

    envelope = Envelope(**envelope_fields(payload=None, payload_ref=ref))

    assert envelope.payload_ref == ref


def test_idempotency_key_is_derived_from_causation_id() -> None:
    # GIVEN two deliveries of the same message and one of a different message
    first = Envelope(**envelope_fields())
    redelivered = Envelope(**envelope_fields(correlation_id="exec-other"))
    different = Envelope(**envelope_fields(causation_id="exec-1/verify"))

    # THEN the key depends on the causation id alone, and is the documented derivation
    assert first.idempotency_key == redelivered.idempotency_key
    assert first.idempotency_key != different.idempotency_key
    assert first.idempotency_key == hashlib.sha256(b"exec-1/intake").hexdigest()[:32]
    assert derive_idempotency_key("exec-1/intake") == first.idempotency_key


@pytest.mark.parametrize("absent", [{}, {"idempotency_key": None}], ids=["omitted", "none"])
def test_omitted_or_null_idempotency_key_is_derived(absent: dict[str, Any]) -> None:
    envelope = Envelope(**envelope_fields(**absent))

    assert envelope.idempotency_key == derive_idempotency_key("exec-1/intake")


def test_explicit_idempotency_key_is_kept() -> None:
    # GIVEN a client-supplied Idempotency-Key
    envelope = Envelope(**envelope_fields(idempotency_key="client-key-42"))

    # THEN it wins over the derived one
    assert envelope.idempotency_key == "client-key-42"


def test_remaining_and_expiry() -> None:
    # GIVEN an envelope due five seconds from NOW
    envelope = Envelope(**envelope_fields())

    # THEN the budget counts down and goes negative once the deadline passes
    assert envelope.remaining_ms(NOW) == 5000
    assert not envelope.is_expired(NOW)
    assert envelope.remaining_ms(NOW + timedelta(seconds=5)) == 0
    assert envelope.is_expired(NOW + timedelta(seconds=5))
    assert envelope.remaining_ms(NOW + timedelta(seconds=7)) == -2000
    assert envelope.is_expired(NOW + timedelta(seconds=7))


def test_remaining_is_timezone_independent() -> None:
    # GIVEN "now" expressed in another timezone
    now_elsewhere = NOW.astimezone(timezone(timedelta(hours=2)))

    # THEN the remaining budget is the same instant-based difference
    assert Envelope(**envelope_fields()).remaining_ms(now_elsewhere) == 5000


def test_with_ttl_sets_the_deadline_from_now() -> None:
    # WHEN an envelope is built from a time-to-live
    envelope = Envelope.with_ttl(
        ttl_ms=1500,
        now=NOW,
        trace_id=TRACE_ID,
        causation_id="exec-1/intake",
        correlation_id="exec-1",
        capability="fact-check",
        capability_version="1.0.0",
        payload={},
    )

    # THEN the deadline is now plus the budget, which is recorded too
    assert envelope.deadline == NOW + timedelta(milliseconds=1500)
    assert envelope.ttl_ms == 1500
    assert envelope.remaining_ms(NOW) == 1500
    assert envelope.idempotency_key == derive_idempotency_key("exec-1/intake")


def test_with_ttl_defaults_to_the_current_time() -> None:
    before = datetime.now(UTC)

    envelope = Envelope.with_ttl(
        ttl_ms=60_000,
        trace_id=TRACE_ID,
        causation_id="c",
        correlation_id="r",
        capability="fact-check",
        capability_version="1.0.0",
        payload={},
    )

    assert before + timedelta(seconds=60) <= envelope.deadline <= datetime.now(UTC) + timedelta(seconds=60)


def test_child_keeps_lineage_and_budget() -> None:
    # GIVEN a parent envelope with an explicit idempotency key
    parent = Envelope(**envelope_fields(traceparent=TRACEPARENT, ttl_ms=5000, idempotency_key="parent-key"))

    # WHEN it causes a message to another capability
    child = parent.child(
        causation_id="exec-1/verify/c-001",
        capability="risk-scoring",
        capability_version="1.0.0",
        payload={"claims": []},
    )

    # THEN trace, run and deadline carry over, and the key follows the new causation id
    assert (child.trace_id, child.correlation_id, child.deadline) == (
        parent.trace_id,
        parent.correlation_id,
        parent.deadline,
    )
    assert child.traceparent == parent.traceparent
    assert child.capability == "risk-scoring"
    assert child.payload == {"claims": []}
    assert child.payload_ref is None
    assert child.idempotency_key == derive_idempotency_key("exec-1/verify/c-001")
    assert child.idempotency_key != parent.idempotency_key


def test_envelope_is_immutable() -> None:
    envelope = Envelope(**envelope_fields())

    with pytest.raises(ValidationError):
        envelope.causation_id = "other"  # type: ignore[misc]
