"""One agent, run in-process on a sample event: the inner loop of writing an agent (`agentplane invoke`).

No synth and no plane: moto stands in for the tables, bucket and bus the agent's permissions name, the
handler is imported from its folder with the environment its pool would give it, and every AWS call the
handler makes is counted (what a step costs on the hot path, and which calls are side effects).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any
from unittest import mock

from contracts.capability import CapabilityContract, LambdaRuntime
from contracts.envelope import Envelope
from functions.runtime.tracing import new_trace_id
from infra.conventions import agent_environment
from infra.local.template import ACCOUNT_ID, REGION
from infra.paths import FUNCTIONS_DIR, FUNCTIONS_PACKAGE

# The plane's data as the pools see it: variable -> (stand-in name, partition key, sort key) for tables.
TABLES = {
    "DECISIONS_TABLE": ("agentplane-decisions", "correlation_id", "step_key"),
    "EXECUTIONS_TABLE": ("agentplane-executions", "execution_id", None),
    "IDEMPOTENCY_TABLE": ("agentplane-idempotency", "id", None),
}
DOCUMENTS_BUCKET = "agentplane-documents"
EVENT_BUS = "agentplane-agents"
KNOWLEDGE_BASE = FUNCTIONS_DIR / "knowledge_base" / "passages.jsonl"
# Permission verb -> the variable its grant sets (infra/components/agent_pool.py PERMISSION_VERBS) and its value.
GRANTED_VARIABLES: Mapping[str, tuple[str, str]] = {
    "write:documents": ("DOCUMENTS_BUCKET", DOCUMENTS_BUCKET),
    "read:documents": ("DOCUMENTS_BUCKET", DOCUMENTS_BUCKET),
    "write:executions": ("EXECUTIONS_TABLE", TABLES["EXECUTIONS_TABLE"][0]),
    "publish:events": ("EVENT_BUS_NAME", EVENT_BUS),
    "write:idempotency": ("IDEMPOTENCY_TABLE", TABLES["IDEMPOTENCY_TABLE"][0]),
    "read:kb": ("KNOWLEDGE_BASE_PATH", str(KNOWLEDGE_BASE)),
}
# The runtime's own bookkeeping: writes there are how a step is recorded and deduplicated, not its effects.
BOOKKEEPING_TABLES = frozenset({TABLES["DECISIONS_TABLE"][0], TABLES["IDEMPOTENCY_TABLE"][0]})
_READS = ("Get", "Describe", "List", "Query", "Scan", "BatchGet", "Head", "Receive")
EVENT_SOURCE = "agentplane"  # infra/components/event_mesh.py


class AgentRunError(Exception):
    """The agent cannot be run locally as asked; the message is one line."""


@dataclass(frozen=True)
class AwsCall:
    service: str
    operation: str
    resource: str | None = None

    @property
    def is_side_effect(self) -> bool:
        """A write to anything but the runtime's decision and idempotency records."""
        return not self.operation.startswith(_READS) and self.resource not in BOOKKEEPING_TABLES

    def __str__(self) -> str:
        return f"{self.service}:{self.operation}" + (f"({self.resource})" if self.resource else "")


@dataclass(frozen=True)
class Failure:
    error_type: str
    message: str

    def __str__(self) -> str:
        return f"{self.error_type}: {self.message}"


@dataclass(frozen=True)
class Invocation:
    agent: str
    output: Any
    failure: Failure | None
    calls: list[AwsCall] = field(default_factory=list)
    duration_ms: float = 0.0

    @property
    def side_effects(self) -> list[AwsCall]:
        return [call for call in self.calls if call.is_side_effect]


def step_event(contract: CapabilityContract, sample: Any, *, now: datetime | None = None) -> Any:
    """What the agent's function receives for a sample: an envelope or an event is sent as is; anything else is
    the payload of a new envelope for the contract's first capability, or, for an agent the bus runs, the
    detail of an event it subscribes to."""
    if isinstance(sample, dict) and ("causation_id" in sample or "detail-type" in sample or "Records" in sample):
        return sample
    if not isinstance(sample, dict):
        raise AgentRunError(f"a sample event must be a JSON object, not {type(sample).__name__}")
    start = now or datetime.now(UTC)
    if contract.subscribes:
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": contract.subscribes[0],
            "source": EVENT_SOURCE,
            "account": ACCOUNT_ID,
            "time": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": [],
            "detail": sample,
        }
    run = f"local-{uuid.uuid4()}"
    runtime = contract.runtime
    ttl_ms = runtime.effective_timeout_s(contract.slo) * 1000 if isinstance(runtime, LambdaRuntime) else 60_000
    envelope = Envelope.with_ttl(
        ttl_ms=ttl_ms,
        trace_id=new_trace_id(start),
        causation_id=f"{run}/{contract.name}",
        correlation_id=run,
        capability=contract.capabilities[0],
        capability_version=contract.version,
        payload=sample,
        now=start,
    )
    return envelope.model_dump(mode="json", exclude_none=True)


def environment(contract: CapabilityContract) -> dict[str, str]:
    """The variables the agent's pool sets, pointing at the local stand-ins."""
    values = {**agent_environment(contract), "DECISIONS_TABLE": TABLES["DECISIONS_TABLE"][0]}
    for permission in contract.permissions:
        if permission not in GRANTED_VARIABLES:
            raise AgentRunError(f"contract {contract.name}: permission {permission!r} has no local stand-in")
        variable, value = GRANTED_VARIABLES[permission]
        values[variable] = value
    return values


@dataclass(frozen=True)
class _Context:
    function_name: str
    memory_limit_in_mb: int
    timeout_s: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self.started)) * 1000))


class LocalAgents:
    """Agents run in-process against moto; a context manager (moto and the handlers' imports are undone at exit)."""

    def __init__(self, contracts: Mapping[str, CapabilityContract], *, functions_dir: Path = FUNCTIONS_DIR) -> None:
        self.contracts = contracts
        self.functions_dir = functions_dir.resolve()
        self._mock: Any = None
        self._handlers: dict[str, Any] = {}
        self._calls: list[AwsCall] = []
        self._replaced: dict[str, ModuleType | None] = {}  # module -> what was loaded before (restored at exit)
        self._path_added = False
        self._env: Any = None

    def __enter__(self) -> LocalAgents:
        if self.functions_dir.name != FUNCTIONS_DIR.name:
            raise AgentRunError(f"{self.functions_dir}: agents' code lives in a folder named {FUNCTIONS_DIR.name!r}")
        try:
            return self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def _start(self) -> LocalAgents:
        from moto import mock_aws

        from functions.runtime import adapters as aws

        self._env = mock.patch.dict(
            os.environ,
            {
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",  # moto's fake credentials
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "POWERTOOLS_METRICS_DISABLED": "true",
            },
        )
        self._env.start()
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            os.environ.pop(name, None)
        self._mock = mock_aws()
        self._mock.start()
        aws.client.cache_clear()
        aws.table.cache_clear()
        self._create_resources()
        self._count_calls()
        if self.functions_dir.parent != FUNCTIONS_DIR.parent:
            # ``functions`` is a namespace package: a second root adds the agents under it.
            sys.path.append(str(self.functions_dir.parent))
            self._path_added = True
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        from functions.runtime import adapters as aws

        for name, original in self._replaced.items():
            parent, _, child = name.rpartition(".")
            if original is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = original
            if parent in sys.modules:
                if original is None and hasattr(sys.modules[parent], child):
                    delattr(sys.modules[parent], child)
                elif original is not None:
                    setattr(sys.modules[parent], child, original)
        if self._path_added:
            sys.path.remove(str(self.functions_dir.parent))
        aws.client.cache_clear()
        aws.table.cache_clear()
        import boto3

        boto3.DEFAULT_SESSION = None
        if self._mock is not None:
            self._mock.stop()
        if self._env is not None:
            self._env.stop()

    def _create_resources(self) -> None:
        import boto3

        dynamodb = boto3.client("dynamodb", region_name=REGION)
        for name, partition, sort in TABLES.values():
            keys: list[Any] = [{"AttributeName": partition, "KeyType": "HASH"}]
            attributes: list[Any] = [{"AttributeName": partition, "AttributeType": "S"}]
            if sort is not None:
                keys.append({"AttributeName": sort, "KeyType": "RANGE"})
                attributes.append({"AttributeName": sort, "AttributeType": "S"})
            dynamodb.create_table(
                TableName=name, KeySchema=keys, AttributeDefinitions=attributes, BillingMode="PAY_PER_REQUEST"
            )
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=DOCUMENTS_BUCKET)
        boto3.client("events", region_name=REGION).create_event_bus(Name=EVENT_BUS)

    def _count_calls(self) -> None:
        import boto3

        boto3.setup_default_session(region_name=REGION)
        calls = self._calls

        def record(params: Mapping[str, Any], model: Any, **_: Any) -> None:
            service = model.service_model.endpoint_prefix
            resource = params.get("TableName") or params.get("Bucket") or params.get("QueueUrl")
            if resource is None and params.get("Entries"):
                resource = params["Entries"][0].get("EventBusName")
            calls.append(AwsCall(service, model.name, None if resource is None else str(resource)))

        boto3.DEFAULT_SESSION.events.register("before-parameter-build", record)  # type: ignore[union-attr]

    def _handler(self, contract: CapabilityContract) -> Any:
        if contract.name in self._handlers:
            return self._handlers[contract.name]
        runtime = contract.runtime
        if not isinstance(runtime, LambdaRuntime):
            raise AgentRunError(f"{contract.name} runs on {runtime.kind}: only Lambda agents run in-process")
        module_name, _, attribute = runtime.handler.rpartition(".")
        folder = module_name.split(".")[FUNCTIONS_PACKAGE.count(".") + 1]
        if not (self.functions_dir / folder).is_dir():
            raise AgentRunError(f"{contract.name}: no folder {self.functions_dir / folder} for {runtime.handler}")
        package = f"{FUNCTIONS_PACKAGE}.{folder}"
        for stale in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
            self._replaced.setdefault(stale, sys.modules[stale])
            sys.modules.pop(stale)  # a cold start: module-level code runs under this agent's environment
        # Powertools reuses a named logger's handler: point one made in an earlier run at this run's stdout.
        for sink in logging.getLogger(contract.name).handlers:
            if isinstance(sink, logging.StreamHandler):
                sink.stream = sys.stdout  # not setStream: it flushes the old stream, which may be closed
        with self._environment(contract):
            try:
                module = importlib.import_module(module_name)
            except Exception as exc:
                raise AgentRunError(
                    f"{contract.name}: cannot import {module_name}: {type(exc).__name__}: {exc}"
                ) from exc
        for loaded in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
            self._replaced.setdefault(loaded, None)
        handler = getattr(module, attribute, None)
        if not callable(handler):
            raise AgentRunError(f"{contract.name}: {module_name} has no function {attribute}")
        self._handlers[contract.name] = handler
        return handler

    @contextmanager
    def _environment(self, contract: CapabilityContract) -> Iterator[None]:
        with mock.patch.dict(os.environ, environment(contract)):
            yield

    def _start_run(self, contract: CapabilityContract, event: Any) -> None:
        """Agents that write the executions view write to a run the API started: start it, as the API would."""
        if "write:executions" not in contract.permissions or not isinstance(event, dict):
            return
        run = event.get("correlation_id")
        if not isinstance(run, str):
            return
        from functions.runtime.adapters import table
        from functions.runtime.executions import DynamoExecutionStore, ExecutionItem

        store = DynamoExecutionStore(table(TABLES["EXECUTIONS_TABLE"][0]))
        if store.get(run) is None:
            store.put(
                ExecutionItem(
                    execution_id=run,
                    workflow="local",
                    execution_arn=f"arn:aws:states:{REGION}:{ACCOUNT_ID}:execution:local:{run}",
                    trace_id=str(event.get("trace_id", "")),
                    submitted_at=datetime.now(UTC).isoformat(),
                    request_sha256="0" * 64,
                )
            )

    def invoke(self, name: str, event: Any) -> Invocation:
        """Run the agent once on ``event`` (a step event: see :func:`step_event`)."""
        contract = self.contracts.get(name)
        if contract is None:
            raise AgentRunError(f"no contract named {name!r} (known: {', '.join(sorted(self.contracts))})")
        handler = self._handler(contract)
        runtime = contract.runtime
        assert isinstance(runtime, LambdaRuntime)
        self._start_run(contract, event)
        context = _Context(f"agentplane-{name}", runtime.memory_mb, runtime.effective_timeout_s(contract.slo))
        self._calls.clear()
        started = time.perf_counter()
        failure: Failure | None = None
        output: Any = None
        with self._environment(contract):
            try:
                output = json.loads(json.dumps(handler(event, context)))
            except Exception as exc:  # the agent's typed errors are the answer, as Lambda would report them
                failure = Failure(type(exc).__name__, " ".join(str(exc).split()))
        return Invocation(
            agent=name,
            output=output,
            failure=failure,
            calls=list(self._calls),
            duration_ms=(time.perf_counter() - started) * 1000,
        )
