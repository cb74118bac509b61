"""The Lambda runtime of one local function instance: run as a script in its own process, standard library only.

The local plane runs one process per function instance, as Lambda does, under ``python -I -S``: no site
packages, no ``PYTHONPATH``, nothing of the development virtualenv. ``sys.path`` is what the deployed function
has (its asset as ``/var/task``, its layers as ``/opt/python``, the runtime's own boto3 and botocore), so an import
that would fail on AWS fails here.

Instances are forked from a zygote (``--zygote``): a process that has already imported the third-party modules
the functions' layers hold, on exactly those layers' path, so a cold start pays for the function's own code only.
The zygote gets one request per instance (its init, and the instance's two pipes and log file as descriptors);
the instance reports its init on the reply pipe, then serves invocations, each a length-prefixed JSON frame:
``{"event", "request_id", "deadline_ms", "environment"}`` in, ``{"result" | "error", "duration_ms"}`` out.
The handler's prints and logs go to stdout: the function's log file.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import struct
import sys
import time
import traceback
from typing import Any

_HEADER = struct.Struct(">I")


def read_frame(fd: int) -> Any:
    header = _read_exactly(fd, _HEADER.size)
    if header is None:
        return None
    (length,) = _HEADER.unpack(header)
    body = _read_exactly(fd, length)
    return None if body is None else json.loads(body)


def write_frame(fd: int, message: Any) -> None:
    body = json.dumps(message).encode()
    view = memoryview(_HEADER.pack(len(body)) + body)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


class LambdaContext:
    """The attributes handlers (and Powertools) read from Lambda's context object."""

    def __init__(self, init: dict[str, Any], request_id: str, deadline_ms: int) -> None:
        self.function_name: str = init["function_name"]
        self.function_version: str = init["function_version"]
        self.memory_limit_in_mb: int = init["memory_mb"]
        self.invoked_function_arn: str = init["function_arn"]
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"local/{os.getpid()}"
        self.aws_request_id = request_id
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def error_of(exc: BaseException, error_type: str | None = None, message: str | None = None) -> dict[str, Any]:
    """An error as Lambda's Python runtime reports it in the invoke response."""
    return {
        "errorType": error_type or type(exc).__name__,
        "errorMessage": message if message is not None else str(exc),
        "stackTrace": [line.rstrip("\n") for line in traceback.format_tb(exc.__traceback__)][-5:],
    }


def import_error(exc: ImportError, module: str, init: dict[str, Any]) -> dict[str, Any]:
    missing = exc.name or str(exc)
    fix = init.get("import_fix", "")
    return error_of(
        exc,
        "Runtime.ImportModuleError",
        f"Unable to import module '{module}': No module named '{missing}' "
        f"(function {init['function_name']} imports only its asset, its layers and the Lambda runtime's own "
        f"libraries{'; ' + fix if fix else ''})",
    )


def load_handler(init: dict[str, Any]) -> Any:
    module_name, attribute = init["handler"].rsplit(".", 1)
    module = importlib.import_module(module_name)
    return getattr(module, attribute)


def run_snapstart_hooks() -> dict[str, Any] | None:
    """What Lambda does around a SnapStart snapshot, in one instance: the before-snapshot hooks after init, then
    the after-restore hooks (locally no snapshot is taken: each instance inits itself). A failing hook fails the
    instance's start, as it fails the version's publication or the restore on AWS."""
    import snapshot_restore_py

    for phase, hooks in (
        ("before snapshot", snapshot_restore_py.get_before_snapshot()),
        ("after restore", snapshot_restore_py.get_after_restore()),
    ):
        for hook, args, kwargs in hooks:  # the registry holds (hook, args, kwargs) triples
            try:
                hook(*args, **kwargs)
            except Exception as exc:
                traceback.print_exception(exc)
                detail = f"a runtime hook {phase} failed: {type(exc).__name__}: {exc}"
                return error_of(exc, "SnapStartException", detail)
    return None


def serve(requests: int, replies: int, init: dict[str, Any]) -> None:
    # What the deployed function imports from, in Lambda's order: /var/task, /opt/python, the runtime, the stdlib.
    sys.path[:0] = [path for path in init["sys_path"] if path not in sys.path]
    os.environ.clear()
    os.environ.update(init["environment"])
    os.chdir(init["task_root"])
    module_name = init["handler"].rsplit(".", 1)[0]
    try:
        handler = load_handler(init)
    except ImportError as exc:
        write_frame(replies, {"init": import_error(exc, module_name, init)})
        return
    except Exception as exc:
        kind = "Runtime.UserCodeSyntaxError" if isinstance(exc, SyntaxError) else None
        traceback.print_exception(exc)
        write_frame(replies, {"init": error_of(exc, kind)})
        return
    if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start":
        failed = run_snapstart_hooks()
        if failed is not None:
            write_frame(replies, {"init": failed})
            return
    write_frame(replies, {"init": None})
    while (request := read_frame(requests)) is not None:
        for key, value in request["environment"].items():  # per invocation, as Lambda sets _X_AMZN_TRACE_ID
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        context = LambdaContext(init, request["request_id"], request["deadline_ms"])
        started = time.perf_counter()
        try:
            result = handler(request["event"], context)
        except ImportError as exc:  # an import inside the handler fails as the module-level ones do
            reply: dict[str, Any] = {"error": import_error(exc, module_name, init)}
        except Exception as exc:
            reply = {"error": error_of(exc)}
            traceback.print_exception(exc)
        else:
            reply = {"result": result}
        reply["duration_ms"] = (time.perf_counter() - started) * 1000
        sys.stdout.flush()
        try:
            write_frame(replies, reply)
        except (TypeError, ValueError) as exc:  # the result is not JSON
            write_frame(replies, {"error": error_of(exc, "Runtime.MarshalError"), "duration_ms": reply["duration_ms"]})


def zygote(control: int) -> None:
    """Preload the layers' modules, then fork one instance per request until the plane closes the socket."""
    channel = socket.socket(fileno=control)
    setup = json.loads(channel.recv(1 << 20))
    sys.path[:0] = setup["sys_path"]
    for name in setup["preload"]:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: S112 - not in these layers: a function importing it fails on its own import
            continue
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # instances are reaped as they end
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(channel, 1 << 20, 3)
        except OSError:
            return
        if not message:
            return
        pid = os.fork()
        if pid == 0:
            _instance(channel, json.loads(message), *fds)
        for fd in fds:
            os.close(fd)
        channel.send(json.dumps({"pid": pid}).encode())


def _instance(channel: socket.socket, init: dict[str, Any], requests: int, replies: int, log: int) -> None:
    try:
        channel.close()
        os.setsid()  # its own process group: a timed-out instance is killed with whatever it started
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        serve(requests, replies, init)
    finally:
        sys.stdout.flush()
        os._exit(0)


if __name__ == "__main__":
    zygote(int(sys.argv[1]))
