"""``StartSyncExecution`` for Express state machines, which moto lacks: start, wait for the end, answer.
Runs started through a state machine alias go to one of its versions by the alias's weights.

boto3 sends it to the ``sync-states`` host, so that host is routed to moto's Step Functions too.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult
from moto.stepfunctions.models import StepFunctionBackend
from moto.stepfunctions.parser.models import StepFunctionsParserBackend
from moto.stepfunctions.responses import StepFunctionResponse

from infra.local import moto_seam
from infra.local.rollout import ExactSplit

SYNC_URL_BASE = r"https?://sync-states\.(.+)\.amazonaws.com"
SYNC_TIMEOUT_S = 300  # Express workflows run at most five minutes


class StateMachineTypeNotSupported(JsonRESTError):
    def __init__(self) -> None:
        super().__init__("StateMachineTypeNotSupported", "This operation is only supported by EXPRESS state machines")


_ALIAS_PARTS = 8  # arn:aws:states:REGION:ACCOUNT:stateMachine:NAME:ALIAS


class AliasSplit:
    """Which version of an alias a run goes to, exactly by the weights: the heaviest route is the primary."""

    def __init__(self) -> None:
        self._split = ExactSplit()

    def pick(self, alias_arn: str, routing: list[dict[str, Any]]) -> str:
        routes = sorted(routing, key=lambda route: -int(route["weight"]))
        additional = {str(r["stateMachineVersionArn"]): int(r["weight"]) / 100 for r in routes[1:]}
        return self._split.pick(alias_arn, str(routes[0]["stateMachineVersionArn"]), additional)


_split = AliasSplit()


def resolve_alias(backend: StepFunctionBackend, arn: str) -> str:
    """The state machine a run through ``arn`` starts on: for an alias, the source of the version its weights
    pick. The local plane publishes every version from the template's one definition, so the source runs it."""
    parts = arn.split(":")
    if len(parts) != _ALIAS_PARTS or parts[-1].isdigit():
        return arn
    alias = backend.describe_state_machine_alias(arn)
    version = _split.pick(arn, alias.routing_configuration)
    return version.rsplit(":", 1)[0]


def start_sync_execution(response: StepFunctionResponse) -> ActionResult:
    backend = response.stepfunction_backend
    arn = resolve_alias(backend, response._get_param("stateMachineArn"))
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
        self._patches = moto_seam.Patches()

    def install(self) -> None:
        start = moto_seam.original("stepfunctions.start_execution")

        def through_alias(backend: StepFunctionsParserBackend, state_machine_arn: str, *args: Any, **kw: Any) -> Any:
            return start(backend, resolve_alias(backend, state_machine_arn), *args, **kw)

        self._patches.apply("stepfunctions.start_execution", through_alias)
        self._patches.apply("stepfunctions.start_sync_execution", start_sync_execution)
        self._patches.apply("stepfunctions.sync_url_base", SYNC_URL_BASE)
        self._patches.apply("stepfunctions.sync_url_pattern", ("stepfunctions", re.compile(SYNC_URL_BASE)))

    def uninstall(self) -> None:
        self._patches.restore()
