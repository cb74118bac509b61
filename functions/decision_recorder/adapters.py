"""The recorder's AWS side: where a decision goes once made, the executions view (which frees the run's admission
slot), then the bus as decision.recorded."""

from __future__ import annotations

import os

from contracts.envelope import Envelope
from contracts.models import Claim, Decision
from functions.decision_recorder.service import recorded_detail
from functions.runtime import tracing
from functions.runtime.adapters import EventPublisher, table
from functions.runtime.admission import DynamoAdmissionSlots
from functions.runtime.executions import DynamoExecutionStore


def publish_decision(decision: Decision, *, envelope: Envelope, claims: list[Claim]) -> None:
    executions = table(os.environ["EXECUTIONS_TABLE"])
    DynamoExecutionStore(executions).set_decision(envelope.correlation_id, decision)
    # Recorded, the run has left processing: its admission slot is free for the next one.
    DynamoAdmissionSlots(executions).release(decision.workflow, envelope.correlation_id)
    # The trace crosses the bus twice over: in the detail (our spans) and as PutEvents' TraceHeader (X-Ray).
    headers = tracing.current_headers()
    detail = recorded_detail(
        decision,
        execution_id=envelope.correlation_id,
        trace_id=envelope.trace_id,
        claims=claims,
        traceparent=headers.get(tracing.TRACEPARENT),
    )
    EventPublisher(os.environ["EVENT_BUS_NAME"]).publish(
        "decision.recorded",
        detail.model_dump(mode="json", exclude_none=True),
        trace_header=headers.get(tracing.XRAY_HEADER),
    )
