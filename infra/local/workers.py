"""Function instances as processes: one per concurrent invocation, as Lambda runs them.

Each instance runs ``infra/local/lambda_runtime.py``, forked from a zygote that sees only the function's deployed
packages (one zygote per set of layers). An instance handles one event at a time; a pool keeps the idle ones warm
and starts another (a cold start) when all are busy, up to the function's concurrency. An invocation past the
function's timeout ends as Lambda ends it (``Sandbox.Timedout``) and the instance is replaced; so is one whose peak
memory went past the function's ``MemorySize`` (``Runtime.OutOfMemory``) or whose process died
(``Runtime.ExitError``).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from infra.local import lambda_runtime

RUNTIME_SCRIPT = Path(lambda_runtime.__file__).resolve()
# Lambda gives a function's init phase up to 10 s of its own, apart from the invocation's timeout.
INIT_LIMIT_S = 10.0
# What a zygote imports before forking instances, where its layers have it: the heavy, environment-free modules
# every function here imports. A module its layers lack is skipped, so a function importing it still fails.
PRELOAD = (
    "boto3",
    "botocore.session",
    "botocore.client",
    "pydantic",
    "aws_lambda_powertools",
    "aws_lambda_powertools.logging",
    "aws_lambda_powertools.metrics",
    "aws_lambda_powertools.event_handler",
    "aws_lambda_powertools.utilities.idempotency",
    "opentelemetry.sdk.trace",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.sdk.extension.aws.trace",
    "yaml",
    "jsonschema",
)


class Zygote:
    """A process on one set of layers that has imported :data:`PRELOAD` and forks an instance per request."""

    def __init__(self, sys_path: list[str], log: IO[str]) -> None:
        self._channel, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, the plane's own runtime script
            [sys.executable, "-I", "-S", str(RUNTIME_SCRIPT), str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "TZ": "UTC"},
            start_new_session=True,
        )
        theirs.close()
        self._channel.send(json.dumps({"sys_path": sys_path, "preload": PRELOAD}).encode())
        self._lock = threading.Lock()

    def fork(self, init: dict[str, Any], requests: int, replies: int, log: IO[str]) -> int:
        """Start an instance reading ``requests`` and answering on ``replies``; its pid."""
        with self._lock:
            socket.send_fds(self._channel, [json.dumps(init).encode()], [requests, replies, log.fileno()])
            self._channel.settimeout(60)  # the zygote is still importing its preloads on the first fork
            answer = self._channel.recv(4096)
        if not answer:
            raise RuntimeError(f"the function runtime exited: {self.process.poll()}")
        pid: int = json.loads(answer)["pid"]
        return pid

    def close(self) -> None:
        self._channel.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


class InvocationFailed(Exception):
    """The function's invocation failed: ``error`` is the payload Lambda returns (errorType, errorMessage)."""

    def __init__(self, error: dict[str, Any], duration_ms: float = 0.0) -> None:
        super().__init__(error.get("errorMessage", ""))
        self.error = error
        self.duration_ms = duration_ms


@dataclass(frozen=True)
class InstanceConfig:
    """What every instance of one function version starts with."""

    function_name: str
    version: str
    function_arn: str
    handler: str
    task_root: Path
    sys_path: list[str]
    environment: dict[str, str]
    timeout_s: float
    memory_mb: int
    import_fix: str


@dataclass
class Outcome:
    result: Any
    duration_ms: float


class _Deadline(Exception):
    pass


class Instance:
    def __init__(self, config: InstanceConfig, zygote: Zygote, log: IO[str]) -> None:
        self.config = config
        requests_read, self._requests = os.pipe()
        self._replies, replies_write = os.pipe()
        self.init_error: dict[str, Any] | None = None
        self.pid = 0
        init = {
            "function_name": config.function_name,
            "function_version": config.version,
            "function_arn": config.function_arn,
            "memory_mb": config.memory_mb,
            "handler": config.handler,
            "task_root": str(config.task_root),
            "sys_path": config.sys_path,
            "environment": config.environment,
            "import_fix": config.import_fix,
        }
        try:
            self.pid = zygote.fork(init, requests_read, replies_write, log)
        except BaseException:
            self.kill()
            raise
        finally:
            os.close(requests_read)
            os.close(replies_write)
        try:
            reply = self._read(time.monotonic() + max(INIT_LIMIT_S, config.timeout_s))
        except _Deadline:
            self.kill()
            self.init_error = {"errorType": "Runtime.InitError", "errorMessage": "init timed out"}
            return
        self.init_error = reply["init"] if reply is not None else self._exit_error()

    @property
    def alive(self) -> bool:
        if self._requests < 0:  # killed
            return False
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X")

    def invoke(self, event: Any, environment: Mapping[str, str | None]) -> Outcome:
        request_id = str(uuid.uuid4())
        timeout_s = self.config.timeout_s
        deadline = time.monotonic() + timeout_s
        request = {
            "event": event,
            "request_id": request_id,
            "deadline_ms": int((time.time() + timeout_s) * 1000),
            "environment": dict(environment),
        }
        try:
            lambda_runtime.write_frame(self._requests, request)
            reply = self._read(deadline)
        except _Deadline:
            self.kill()
            raise InvocationFailed(
                {
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": f"RequestId: {request_id} Error: Task timed out after {timeout_s:.2f} seconds",
                },
                timeout_s * 1000,
            ) from None
        except (BrokenPipeError, OSError):
            reply = None
        if reply is None:
            raise InvocationFailed(self._exit_error(request_id))
        duration_ms = float(reply.get("duration_ms", 0.0))
        if self._peak_memory_mb() > self.config.memory_mb:
            self.kill()
            raise InvocationFailed(
                {
                    "errorType": "Runtime.OutOfMemory",
                    "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: signal: killed "
                    f"(peak memory over the function's {self.config.memory_mb} MB)",
                },
                duration_ms,
            )
        if "error" in reply:
            raise InvocationFailed(reply["error"], duration_ms)
        return Outcome(reply.get("result"), duration_ms)

    def _read(self, deadline: float) -> Any:
        header = self._read_exactly(lambda_runtime._HEADER.size, deadline)
        if header is None:
            return None
        (length,) = lambda_runtime._HEADER.unpack(header)
        body = self._read_exactly(length, deadline)
        return None if body is None else json.loads(body)

    def _read_exactly(self, size: int, deadline: float) -> bytes | None:
        chunks: list[bytes] = []
        while size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Deadline
            ready, _, _ = select.select([self._replies], [], [], remaining)
            if not ready:
                raise _Deadline
            chunk = os.read(self._replies, size)
            if not chunk:
                return None
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def _exit_error(self, request_id: str = "") -> dict[str, Any]:
        self.kill()
        return {
            "errorType": "Runtime.ExitError",
            "errorMessage": f"RequestId: {request_id} Error: Runtime exited without providing a reason",
        }

    def _peak_memory_mb(self) -> float:
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return 0.0
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def kill(self) -> None:
        if self.pid > 0:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        for fd in (self._requests, self._replies):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._requests = self._replies = -1


class Pool:
    """The instances of one function version: warm ones reused, new ones started up to ``concurrency``."""

    def __init__(self, config: InstanceConfig, zygote: Zygote, log: IO[str], concurrency: int) -> None:
        self.config = config
        self.zygote = zygote
        self.log = log
        self.concurrency = max(1, concurrency)
        self.cold_starts = 0
        self._idle: list[Instance] = []
        self._running = 0
        self._changed = threading.Condition()
        self._closed = False

    def invoke(self, event: Any, environment: Mapping[str, str | None]) -> Outcome:
        instance = self._acquire()
        healthy = False
        try:
            if instance.init_error is not None:
                raise InvocationFailed(instance.init_error)
            outcome = instance.invoke(event, environment)
            healthy = True
            return outcome
        except InvocationFailed:
            healthy = instance.alive and instance.init_error is None
            raise
        finally:
            self._release(instance, healthy)

    def _acquire(self) -> Instance:
        with self._changed:
            while not self._idle and self._running >= self.concurrency:
                self._changed.wait()
            self._running += 1
            if self._idle:
                return self._idle.pop()
            self.cold_starts += 1
        try:
            return Instance(self.config, self.zygote, self.log)
        except BaseException:
            with self._changed:
                self._running -= 1
                self._changed.notify()
            raise

    def _release(self, instance: Instance, healthy: bool) -> None:
        with self._changed:
            self._running -= 1
            if healthy and not self._closed:
                self._idle.append(instance)
                instance = None  # type: ignore[assignment]
            self._changed.notify()
        if instance is not None:
            instance.kill()

    def prewarm(self) -> None:
        """Starts one instance and keeps it warm (what provisioned concurrency does for an alias on AWS)."""
        instance = self._acquire()
        self._release(instance, instance.init_error is None and instance.alive)

    def recycle(self) -> None:
        """Ends the warm instances: the next invocation starts cold (a new instance, fresh module state)."""
        with self._changed:
            idle, self._idle = self._idle, []
        for instance in idle:
            instance.kill()

    def close(self) -> None:
        with self._changed:
            self._closed = True
        self.recycle()
