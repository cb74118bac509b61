"""Lambda functions run as deployed: each instance in its own process, behind moto's one invoke method.

Every path that invokes a function in moto (direct invoke, a Step Functions task, an event source
mapping) ends in ``LambdaFunction._invoke_lambda``; routing it here gives them all real handler code, run by
``infra/local/workers.py`` with the function's own packages, environment, role credentials, timeout and memory.
"""

from __future__ import annotations

import json
import re
import threading
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from moto.awslambda.models import LambdaFunction
from opentelemetry.trace import SpanKind

from contracts.envelope import TRACE_ID_PATTERN
from functions.runtime import tracing
from functions.runtime.decisions import step_name
from infra.local import moto_seam
from infra.local.faults import FaultPlan
from infra.local.template import ACCOUNT_ID, REGION
from infra.local.workers import InstanceConfig, InvocationFailed, Pool, Zygote

LATEST = "$LATEST"
TRACE_ID = re.compile(TRACE_ID_PATTERN)
# What an import outside the deployed packages is fixed by (named in the function's ImportModuleError).
IMPORT_FIX = "a third-party package belongs in the `lambda` dependency group of pyproject.toml (the layer)"


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
    role_arn: str = ""
    reserved_concurrency: int | None = None
    snapstart: bool = False  # SnapStart on published versions (their instances run the runtime hooks)
    invocations: int = 0
    errors: int = 0
    busy_s: float = 0.0  # handler time of successful invocations (what Lambda bills as duration)
    # Per executed version (CloudWatch's ExecutedVersion dimension): what rollout alarms are evaluated on.
    versions: dict[str, VersionStats] = field(default_factory=dict)

    @property
    def agent(self) -> str:
        return self.environment.get("AGENT_NAME", self.logical_id)


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
class RuntimeSettings:
    """What the plane gives every instance: where AWS is, the runtime's own libraries, the clock, the limits."""

    runtime_dirs: list[Path] = field(default_factory=list)  # boto3, botocore...: what Lambda's runtime ships
    aws_environment: dict[str, str] = field(default_factory=dict)  # endpoint, telemetry
    timeout_scale: float = 1.0
    max_concurrency: int = 4  # instances of one function at once, whatever its reserved concurrency


class LocalLambdas:
    def __init__(self, logs_dir: Path, faults: FaultPlan, settings: RuntimeSettings | None = None) -> None:
        self.logs_dir = logs_dir
        self.faults = faults
        self.settings = settings or RuntimeSettings()
        self.functions: dict[str, FunctionSpec] = {}
        self.credentials: dict[str, dict[str, str]] = {}  # function name -> its role's session (set by the plane)
        self._pools: dict[tuple[str, str], Pool] = {}
        self._zygotes: dict[tuple[str, ...], Zygote] = {}  # one per set of layers
        self._logs: dict[str, IO[str]] = {}
        self._lock = threading.Lock()
        self._patches = moto_seam.Patches()

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

        self._patches.apply("lambda.invoke", invoke)

    def uninstall(self) -> None:
        self._patches.restore()
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
            zygotes, self._zygotes = list(self._zygotes.values()), {}
        for pool in pools:
            pool.close()
        for zygote in zygotes:
            zygote.close()
        for sink in self._logs.values():
            sink.close()
        self._logs.clear()

    def prewarm(self, targets: list[tuple[str, str]], workers: int = 2) -> None:
        """One warm instance of each (function, version), started a few at a time, before the first invocation."""
        known = [(self.functions[name], version) for name, version in targets if name in self.functions]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prewarm") as pool:
            for started in [pool.submit(self._pool(spec, version).prewarm) for spec, version in known]:
                started.result()

    def recycle(self, function_name: str) -> None:
        """Ends a function's warm instances, as a new deployment or idle reclaim does on Lambda."""
        with self._lock:
            pools = [pool for (name, _), pool in self._pools.items() if name == function_name]
        for pool in pools:
            pool.recycle()

    def cold_starts(self, function_name: str) -> int:
        with self._lock:
            return sum(pool.cold_starts for (name, _), pool in self._pools.items() if name == function_name)

    def _log(self, spec: FunctionSpec) -> IO[str]:
        with self._lock:
            if spec.name not in self._logs:
                self.logs_dir.mkdir(parents=True, exist_ok=True)
                self._logs[spec.name] = (self.logs_dir / f"{spec.logical_id}.log").open("a", buffering=1)
            return self._logs[spec.name]

    def _environment(self, spec: FunctionSpec, version: str) -> dict[str, str]:
        return {
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EXECUTION_ENV": "AWS_Lambda_python_local",
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": version,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start" if spec.snapstart and version != LATEST else "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "_HANDLER": spec.handler,
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "PYTHONDONTWRITEBYTECODE": "1",  # the staged asset is shared by every plane: keep it as staged
            **self.settings.aws_environment,
            **self.credentials.get(spec.name, {}),
            **spec.environment,
        }

    def _pool(self, spec: FunctionSpec, version: str) -> Pool:
        key = (spec.name, version)
        with self._lock:
            pool = self._pools.get(key)
        if pool is not None:
            return pool
        qualifier = "" if version == LATEST else f":{version}"
        # /var/task first, then the layers (a later layer's files win, as when Lambda extracts them in order),
        # then the runtime's own libraries.
        packages = [*(str(d) for d in reversed(spec.layer_dirs)), *(str(d) for d in self.settings.runtime_dirs)]
        config = InstanceConfig(
            function_name=spec.name,
            version=version,
            function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{spec.name}{qualifier}",
            handler=spec.handler,
            task_root=spec.code_dir,
            sys_path=[str(spec.code_dir), *packages],
            environment=self._environment(spec, version),
            timeout_s=spec.timeout_s * self.settings.timeout_scale,
            memory_mb=spec.memory_mb,
            import_fix=IMPORT_FIX,
        )
        concurrency = min(spec.reserved_concurrency or self.settings.max_concurrency, self.settings.max_concurrency)
        log = self._log(spec)
        with self._lock:
            zygote = self._zygotes.get(tuple(packages))
            if zygote is None:
                zygote = self._zygotes[tuple(packages)] = Zygote(packages, self._runtime_log())
            return self._pools.setdefault(key, Pool(config, zygote, log, concurrency))

    def _runtime_log(self) -> IO[str]:
        """The zygotes' own output (nothing, unless the runtime itself fails)."""
        if "" not in self._logs:
            self.logs_dir.mkdir(parents=True, exist_ok=True)
            self._logs[""] = (self.logs_dir / "lambda-runtime.log").open("a", buffering=1)
        return self._logs[""]

    def invoke(self, function_name: str, event: Any, version: str = LATEST) -> tuple[str, bool, str]:
        spec = self.functions.get(function_name)
        if spec is None:
            missing = {"errorType": "ResourceNotFoundException", "errorMessage": f"{function_name} is not emulated"}
            return json.dumps(missing), True, ""
        failed = True
        duration_ms = 0.0  # Lambda's Duration: the handler's time, not a cold start's init nor the queue before it
        spec.invocations += 1
        try:
            endpoint = self.settings.aws_environment.get(tracing.ENDPOINT_ENV)
            with invocation_span(spec, event, endpoint) as trace_header:
                agent = spec.agent
                if spec.environment.get("AGENT_VARIANT", "primary") != "primary":
                    agent += "~" + spec.environment["AGENT_VARIANT"]  # a fault on the primary spares its fallback
                agent = self.faults.key_for(agent, version)  # a fault on one version spares the others
                self.faults.before_invoke(agent)
                pool = self._pool(spec, version)
                # 2: at-least-once redelivery runs the handler again
                for _ in range(self.faults.invocations(agent)):
                    outcome = pool.invoke(event if event is not None else {}, {tracing.LAMBDA_TRACE_ENV: trace_header})
                duration_ms = outcome.duration_ms
                spec.busy_s += duration_ms / 1000
            answer = json.dumps(self.faults.after_invoke(agent, outcome.result)), False, ""
            failed = False
            return answer
        except InvocationFailed as failure:
            spec.errors += 1
            duration_ms = failure.duration_ms
            return json.dumps(failure.error), True, ""
        except Exception as exc:  # an injected fault, raised here rather than in the instance
            spec.errors += 1
            trace = traceback.format_exception(exc)
            self._log(spec).write("".join(trace))
            error: dict[str, Any] = {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": trace[-5:],
            }
            return json.dumps(error), True, ""
        finally:
            if version != LATEST:
                spec.versions.setdefault(version, VersionStats()).samples.append((failed, duration_ms))


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
def invocation_span(spec: FunctionSpec, event: Any, endpoint: str | None) -> Iterator[str | None]:
    """What Lambda's own segment is in X-Ray: one span per invocation (retries and injected faults included),
    whose context (yielded) the function sees in ``_X_AMZN_TRACE_ID``, as on Lambda with active tracing."""
    trace_id, traceparent, step = _trace_of(event)
    if trace_id is None:
        yield None
        return
    attributes = tracing.hop_attributes(
        "invoke",
        agent=spec.environment.get("AGENT_NAME", spec.name),
        step=step or None,
        event=_event_of(event),
        other={"faas.name": spec.name},
    )
    service = spec.environment.get("POWERTOOLS_SERVICE_NAME") or spec.agent
    with tracing.span(
        f"Lambda {spec.name}",
        attributes,
        trace_id=trace_id,
        traceparent=traceparent,
        kind=SpanKind.SERVER,
        service=service,
        endpoint=endpoint,
    ):
        yield tracing.current_headers()[tracing.XRAY_HEADER]
