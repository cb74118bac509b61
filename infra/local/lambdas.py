"""Lambda functions run in-process from their staged asset and handler, behind moto's one invoke method.

Every path that invokes a function in moto (direct invoke, a Step Functions task, an event source
mapping) ends in ``LambdaFunction._invoke_lambda``; routing it here gives them all real handler code.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import os
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from moto.awslambda.models import LambdaFunction
from opentelemetry.trace import SpanKind

from contracts.envelope import TRACE_ID_PATTERN
from functions.runtime import tracing
from functions.runtime.decisions import step_name
from infra.local.faults import FaultPlan
from infra.local.isolation import Isolation
from infra.local.template import ACCOUNT_ID, REGION

Handler = Callable[[Any, Any], Any]
LATEST = "$LATEST"
TRACE_ID = re.compile(TRACE_ID_PATTERN)


@dataclass
class FunctionSpec:
    logical_id: str
    name: str
    handler: str
    code_dir: Path
    layer_dirs: list[Path]
    environment: dict[str, str]
    timeout_s: int
    memory_mb: int
    invocations: int = 0
    errors: int = 0
    busy_s: float = 0.0  # handler time of successful invocations (what Lambda bills as duration)
    # Per executed version (CloudWatch's ExecutedVersion dimension): what rollout alarms are evaluated on.
    versions: dict[str, VersionStats] = field(default_factory=dict)
    # A Lambda instance handles one event at a time; its module state (loggers, metrics) assumes it.
    instance: threading.RLock = field(default_factory=threading.RLock)


@dataclass
class VersionStats:
    """One published version's invocations: outcome and duration of each, oldest first."""

    samples: list[tuple[bool, float]] = field(default_factory=list)  # (failed, duration ms)

    @property
    def invocations(self) -> int:
        return len(self.samples)

    @property
    def errors(self) -> int:
        return sum(1 for failed, _ in self.samples if failed)

    def share_within(self, limit_ms: float) -> float:
        """The percentage of invocations that took ``limit_ms`` or less (CloudWatch's ``PR(:limit)``)."""
        if not self.samples:
            return 100.0
        return 100.0 * sum(1 for _, ms in self.samples if ms <= limit_ms) / len(self.samples)


@dataclass
class LambdaContext:
    """The attributes handlers (and Powertools) read from Lambda's context object."""

    function_name: str
    memory_limit_in_mb: int
    timeout_s: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = LATEST
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        qualifier = "" if self.function_version == LATEST else f":{self.function_version}"
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}{qualifier}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/{self.aws_request_id}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self.started)) * 1000))


class InProcessLambdas:
    def __init__(self, isolation: Isolation, logs_dir: Path, faults: FaultPlan) -> None:
        self.isolation = isolation
        self.logs_dir = logs_dir
        self.faults = faults
        self.functions: dict[str, FunctionSpec] = {}
        self._handlers: dict[str, Handler] = {}
        self._module_owners: dict[str, str] = {}  # handler module -> the function that imported it
        self._logs: dict[str, IO[str]] = {}
        self._lock = threading.Lock()
        self._original: Any = None
        # Set by the plane: where functions export their spans (its OTLP receiver).
        self.telemetry_environment: dict[str, str] = {}

    def register(self, spec: FunctionSpec) -> None:
        module = spec.handler.rsplit(".", 1)[0]
        module_file = spec.code_dir.joinpath(*module.split(".")).with_suffix(".py")
        if not module_file.is_file():
            raise FileNotFoundError(
                f"function {spec.logical_id}: handler {spec.handler} has no module in its asset ({module_file})"
            )
        self.functions[spec.name] = spec

    def install(self) -> None:
        plane = self

        def invoke(function: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
            return plane.invoke(function.function_name, event, version=str(function.version))

        self._original = LambdaFunction._invoke_lambda
        LambdaFunction._invoke_lambda = invoke  # type: ignore[method-assign,assignment]

    def uninstall(self) -> None:
        if self._original is not None:
            LambdaFunction._invoke_lambda = self._original  # type: ignore[method-assign]
            self._original = None
        for sink in self._logs.values():
            sink.close()

    def _log(self, spec: FunctionSpec) -> IO[str]:
        with self._lock:
            if spec.name not in self._logs:
                self.logs_dir.mkdir(parents=True, exist_ok=True)
                self._logs[spec.name] = (self.logs_dir / f"{spec.logical_id}.log").open("a", buffering=1)
            return self._logs[spec.name]

    def _environment(self, spec: FunctionSpec, version: str = LATEST) -> dict[str, str]:
        return {
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": version,
            "_HANDLER": spec.handler,
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            **spec.environment,
            **self.telemetry_environment,
        }

    def _handler(self, spec: FunctionSpec) -> Handler:
        with self._lock:
            if spec.name not in self._handlers:
                # The asset and layers come first, as /var/task and /opt/python do on Lambda.
                for path in [*spec.layer_dirs, spec.code_dir]:
                    if str(path) not in sys.path:
                        sys.path.insert(0, str(path))
                module_name, attribute = spec.handler.rsplit(".", 1)
                owner = self._module_owners.get(module_name)
                if owner is not None and owner != spec.name and module_name in sys.modules:
                    # Another function of the same asset (e.g. an agent's approximate handler) imported this
                    # module under its own environment; on Lambda each runs in its own process, so load a copy.
                    module = self._private_copy(module_name)
                else:
                    self._forget_foreign(module_name, spec.code_dir)
                    module = importlib.import_module(module_name)
                    self._module_owners[module_name] = spec.name
                self._handlers[spec.name] = getattr(module, attribute)
            return self._handlers[spec.name]

    @staticmethod
    def _private_copy(module_name: str) -> ModuleType:
        found = importlib.util.find_spec(module_name)
        if found is None or found.loader is None:
            raise ImportError(f"no module {module_name}")
        module = importlib.util.module_from_spec(found)
        found.loader.exec_module(module)
        return module

    @staticmethod
    def _forget_foreign(module_name: str, code_dir: Path) -> None:
        """Drop a same-named module imported from elsewhere (the repo, another plane): it was set up
        under another environment. The handler must come from this function's asset."""
        parts = module_name.split(".")
        for depth in range(2, len(parts) + 1):
            name = ".".join(parts[:depth])
            loaded = sys.modules.get(name)
            origin = getattr(loaded, "__file__", None)
            if loaded is not None and origin and not Path(origin).is_relative_to(code_dir):
                for stale in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
                    del sys.modules[stale]

    def invoke(self, function_name: str, event: Any, version: str = LATEST) -> tuple[str, bool, str]:
        spec = self.functions.get(function_name)
        if spec is None:
            missing = {"errorType": "ResourceNotFoundException", "errorMessage": f"{function_name} is not emulated"}
            return json.dumps(missing), True, ""
        sink = self._log(spec)
        failed = True
        with spec.instance, self.isolation.scoped(self._environment(spec, version), sink):
            started = time.perf_counter()  # Lambda's Duration: from the handler's instance, not the queue before it
            spec.invocations += 1
            try:
                with invocation_span(spec, event):
                    handler = self._handler(spec)
                    agent = spec.environment.get("AGENT_NAME", spec.logical_id)
                    if spec.environment.get("AGENT_VARIANT", "primary") != "primary":
                        agent += "~" + spec.environment["AGENT_VARIANT"]  # a fault on the primary spares its fallback
                    agent = self.faults.key_for(agent, version)  # a fault on one version spares the others
                    self.faults.before_invoke(agent)
                    began = time.perf_counter()
                    deliveries = self.faults.invocations(agent)  # 2: at-least-once redelivery runs the handler again
                    for _ in range(deliveries):
                        context = LambdaContext(spec.name, spec.memory_mb, spec.timeout_s, function_version=version)
                        payload = event if event is not None else {}
                        result = handler(copy.deepcopy(payload) if deliveries > 1 else payload, context)
                    spec.busy_s += time.perf_counter() - began
                answer = json.dumps(self.faults.after_invoke(agent, result)), False, ""
                failed = False
                return answer
            except Exception as exc:
                spec.errors += 1
                trace = traceback.format_exception(exc)
                sink.write("".join(trace))
                error: dict[str, Any] = {
                    "errorType": type(exc).__name__,
                    "errorMessage": str(exc),
                    "stackTrace": trace[-5:],
                }
                return json.dumps(error), True, ""
            finally:
                if version != LATEST:
                    elapsed_ms = (time.perf_counter() - started) * 1000
                    spec.versions.setdefault(version, VersionStats()).samples.append((failed, elapsed_ms))


def _unwrapped(event: Any) -> dict[str, Any]:
    """The step or bus event an invocation is about: a dispatch request's envelope, an SQS batch's first event."""
    if not isinstance(event, dict):
        return {}
    if isinstance(event.get("envelope"), dict):
        return dict(event["envelope"])
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict) and "body" in records[0]:
        try:  # a bursty agent's buffer: Lambda links the batch to its first message's trace
            body = json.loads(records[0]["body"])
        except (TypeError, ValueError):
            return {}
        return body if isinstance(body, dict) else {}
    return event


def _trace_of(event: Any) -> tuple[str | None, str | None, str | None]:
    """(trace id, traceparent, step) an invocation belongs to: from a step's envelope or a bus event's detail."""
    event = _unwrapped(event)
    detail = event.get("detail")
    carrier: dict[str, Any] = detail if isinstance(detail, dict) else event
    trace_id, traceparent = carrier.get("trace_id"), carrier.get("traceparent")
    causation, run = event.get("causation_id"), event.get("correlation_id")
    step = step_name(causation, run) if isinstance(causation, str) and isinstance(run, str) else None
    valid = isinstance(trace_id, str) and TRACE_ID.match(trace_id) is not None
    return (trace_id if valid else None), (traceparent if isinstance(traceparent, str) else None), step


def _event_of(event: Any) -> str | None:
    """The bus event's detail-type an invocation handles, directly or as the first record of an SQS batch."""
    kind = _unwrapped(event).get("detail-type")
    return kind if isinstance(kind, str) else None


@contextmanager
def invocation_span(spec: FunctionSpec, event: Any) -> Iterator[None]:
    """What Lambda's own segment is in X-Ray: one span per invocation (retries and injected faults included),
    whose context the function sees in ``_X_AMZN_TRACE_ID``, as on Lambda with active tracing."""
    trace_id, traceparent, step = _trace_of(event)
    if trace_id is None:
        yield
        return
    attributes: dict[str, tracing.AttributeValue] = {
        "agentplane.hop": "invoke",
        "agentplane.agent": spec.environment.get("AGENT_NAME", spec.name),
        "faas.name": spec.name,
    }
    if step:
        attributes["agentplane.step"] = step
    delivered = _event_of(event)
    if delivered is not None:
        attributes["agentplane.event"] = delivered
    with tracing.span(
        f"Lambda {spec.name}", attributes, trace_id=trace_id, traceparent=traceparent, kind=SpanKind.SERVER
    ):
        os.environ[tracing.LAMBDA_TRACE_ENV] = tracing.current_headers()[tracing.XRAY_HEADER]
        yield
