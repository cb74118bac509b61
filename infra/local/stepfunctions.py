"""``StartSyncExecution`` for Express state machines, which moto lacks: start, wait for the end, answer.

boto3 sends it to the ``sync-states`` host, so that host is routed to moto's Step Functions too.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

from moto import backend_index
from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult
from moto.stepfunctions import urls as stepfunctions_urls
from moto.stepfunctions.responses import StepFunctionResponse

SYNC_URL_BASE = r"https?://sync-states\.(.+)\.amazonaws.com"
SYNC_TIMEOUT_S = 300  # Express workflows run at most five minutes


class StateMachineTypeNotSupported(JsonRESTError):
    def __init__(self) -> None:
        super().__init__("StateMachineTypeNotSupported", "This operation is only supported by EXPRESS state machines")


def start_sync_execution(response: StepFunctionResponse) -> ActionResult:
    backend = response.stepfunction_backend
    arn = response._get_param("stateMachineArn")
    machine = backend.describe_state_machine(arn)
    if getattr(machine, "type", "STANDARD") != "EXPRESS":
        raise StateMachineTypeNotSupported()
    name = response._get_param("name") or uuid.uuid4().hex
    started = backend.start_execution(arn, name, response._get_param("input", if_none="{}"))
    deadline = time.monotonic() + SYNC_TIMEOUT_S
    execution = backend.describe_execution(started.execution_arn)
    while execution.status == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.002)
        execution = backend.describe_execution(started.execution_arn)
    body: dict[str, Any] = {
        "executionArn": execution.execution_arn,
        "stateMachineArn": arn,
        "name": name,
        "startDate": execution.start_date,
        "stopDate": execution.stop_date,
        "status": "TIMED_OUT" if execution.status == "RUNNING" else execution.status,
        "input": execution.execution_input,
    }
    for field in ("output", "error", "cause"):
        value = getattr(execution, field, None)
        if value is not None:
            body[field] = value if isinstance(value, str) else json.dumps(value)
    return ActionResult(body)


class SyncExecutions:
    def __init__(self) -> None:
        self._pattern = ("stepfunctions", re.compile(SYNC_URL_BASE))

    def install(self) -> None:
        StepFunctionResponse.start_sync_execution = start_sync_execution  # type: ignore[attr-defined]
        stepfunctions_urls.url_bases.append(SYNC_URL_BASE)
        backend_index.backend_url_patterns.insert(0, self._pattern)

    def uninstall(self) -> None:
        if SYNC_URL_BASE in stepfunctions_urls.url_bases:
            stepfunctions_urls.url_bases.remove(SYNC_URL_BASE)
        if self._pattern in backend_index.backend_url_patterns:
            backend_index.backend_url_patterns.remove(self._pattern)
