"""The Lambda runtime of one local function instance: run as a script in its own process, standard library only.

The local plane starts one process per function instance, as Lambda does, with ``python -I -S``: no site
packages, no ``PYTHONPATH``, nothing of the development virtualenv. ``sys.path`` is what the deployed function
has (its asset as ``/var/task``, its layers as ``/opt/python``, the runtime's own boto3 and botocore), so an import
that would fail on AWS fails here. The plane sends invocations over one pipe and reads results from another, each
a length-prefixed JSON frame; the handler's prints and logs go to stdout, which the plane writes to the
function's log file.

Frames from the plane: ``{"init": {...}}`` once, then ``{"event", "request_id", "deadline_ms", "environment"}``.
Frames to the plane: ``{"init": null | error}`` once, then ``{"result": ..., "duration_ms"}`` or ``{"error": ...}``.
"""

from __future__ import annotations

import importlib
import json
import os
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


def serve(requests: int, replies: int) -> None:
    init = read_frame(requests)["init"]
    # What the deployed function imports from, in Lambda's order: /var/task, /opt/python, the runtime, the stdlib.
    sys.path[:0] = init["sys_path"]
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


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]))
