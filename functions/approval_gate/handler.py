"""Approval gate: called with a task token, stores the pending approval, and returns; the run waits."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.approval_gate.service import open_approval
from functions.runtime import tracing
from functions.runtime.adapters import table
from functions.runtime.admission import DynamoAdmissionSlots
from functions.runtime.approvals import DynamoApprovalStore
from functions.runtime.clock import wait_scale
from functions.runtime.executions import DynamoExecutionStore

logger = Logger(service="approval-gate")


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    execution_id = str(event.get("execution_id"))
    attributes = tracing.hop_attributes(
        "approval", capability="human-approval", execution_id=execution_id, step="RequestApproval"
    )
    trace_id, traceparent = event.get("trace_id"), event.get("traceparent")
    with tracing.span(
        "approval requested",
        attributes,
        trace_id=trace_id if isinstance(trace_id, str) else None,
        traceparent=traceparent if isinstance(traceparent, str) else None,
    ):
        executions = table(os.environ["EXECUTIONS_TABLE"])
        execution = DynamoExecutionStore(executions).get(execution_id)
        item = open_approval(
            event,
            approval_id=str(uuid.uuid4()),
            now=datetime.now(UTC),
            submitted_by=getattr(execution, "submitted_by", None) if execution else None,
            wait_scale=wait_scale(),
        )
        DynamoApprovalStore(table(os.environ["APPROVALS_TABLE"])).put(item)
        # Waiting for a person is not processing: the run's admission slot goes to the next run while it waits.
        DynamoAdmissionSlots(executions).release(item.workflow, item.execution_id)
    logger.info("approval opened", approval_id=item.approval_id, execution_id=item.execution_id)
    return {"approval_id": item.approval_id}
