"""The synchronous hot path: run an Express workflow inside the request and answer with its output."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from functions.api.service import ProblemError, RunInput, Workflow, find_workflow, parse_body, run_input


@dataclass(frozen=True)
class SyncRun:
    execution_arn: str
    status: str
    output: str | None = None
    error: str | None = None
    cause: str | None = None


class SyncEngine(Protocol):
    def run_sync(self, *, state_machine_arn: str, run: RunInput) -> SyncRun: ...


def invoke(
    workflow_name: str,
    raw_body: str | None,
    *,
    trace_id: str,
    workflows: Mapping[str, Workflow],
    engine: SyncEngine,
    now: datetime,
    new_id: Callable[[], str],
    traceparent: str | None = None,
) -> dict[str, Any]:
    workflow = find_workflow(workflows, workflow_name, synchronous=True)
    request = parse_body(raw_body, workflow.input_model)
    execution_id = new_id()
    started = run_input(
        workflow, request, execution_id=execution_id, trace_id=trace_id, now=now, traceparent=traceparent
    )
    run = engine.run_sync(state_machine_arn=workflow.state_machine_arn, run=started)
    if run.status != "SUCCEEDED" or run.output is None:
        raise ProblemError(
            502,
            "Workflow failed",
            f"{workflow.name} ended {run.status}" + (f" with {run.error}" if run.error else ""),
            kind="workflow-failed",
            execution_id=execution_id,
            error=run.error,
        )
    return {"execution_id": execution_id, "trace_id": trace_id, "status": run.status, "output": json.loads(run.output)}
