"""SageMaker's serving contract as a small ASGI app: ``GET /ping`` and ``POST /invocations`` on port 8080.

A container supplies a :class:`Predictor` (the model, input, predict, output split of SageMaker's inference
toolkit); the app loads it lazily from the model directory, queues requests for the micro-batcher and answers
errors as RFC 9457 problems: 400 for a bad body, 415 for a content type the predictor does not read, 429 when
the queue is full, 504 when the caller's deadline passed in the queue.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from containers.base.batching import BatchPolicy, DeadlineExceeded, MicroBatcher, QueueFull
from containers.base.metrics import BatchMetrics
from containers.base.settings import ServingSettings

Item = TypeVar("Item")
Result = TypeVar("Result")
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

MAX_BODY_BYTES = 6 * 1024 * 1024  # SageMaker's real-time payload limit
CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"
SESSION_ID = "x-amzn-sagemaker-session-id"
NEW_SESSION = "NEW_SESSION"
SESSION_TTL = timedelta(hours=1)
PROBLEM = b"application/problem+json"


class BadRequest(Exception):
    """The body cannot be read as the predictor's input; the message says where and why."""


class PayloadTooLarge(Exception):
    """The body is larger than SageMaker would pass to the container."""


class Predictor(Protocol[Item, Result]):
    content_types: tuple[str, ...]

    def load(self, model_dir: Path, threads: int) -> None: ...

    def parse(self, body: bytes) -> Item: ...

    def predict(self, items: list[Item]) -> Sequence[Result | Exception]: ...

    def render(self, result: Result) -> bytes: ...


def parse_custom_attributes(header: str) -> dict[str, str]:
    """``key=value;key=value`` (what the plane's invokers send); anything else is ignored, not refused."""
    pairs = (part.split("=", 1) for part in header.split(";") if "=" in part)
    return {key.strip(): value.strip() for key, value in pairs}


class ServingApp(Generic[Item, Result]):
    def __init__(
        self,
        predictor: Predictor[Item, Result],
        settings: ServingSettings,
        *,
        metrics: BatchMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.predictor = predictor
        self.settings = settings
        self.metrics = metrics or BatchMetrics(service="serving")
        self._clock = clock
        self._wall = wall
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._load_lock = threading.Lock()
        self.loaded = False
        self.batcher: MicroBatcher[Item, Result] = MicroBatcher(
            self._predict,
            BatchPolicy(settings.max_batch, settings.max_wait_ms),
            max_queue=settings.max_queue,
            metrics=self.metrics,
            clock=clock,
            executor=self._executor,
        )

    # --- model (worker thread) -------------------------------------------------------------------

    def ensure_loaded(self) -> None:
        """Load the model on first use, once: SageMaker pings before traffic, so the first ping pays for it."""
        with self._load_lock:
            if not self.loaded:
                self.predictor.load(self.settings.model_dir, self.settings.model_threads)
                self.loaded = True

    def _predict(self, items: list[Item]) -> Sequence[Result | Exception]:
        self.ensure_loaded()
        return self.predictor.predict(items)

    def close(self) -> None:
        self._executor.shutdown(wait=False)
        self.metrics.flush()

    # --- HTTP ------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/ping":
            if method != "GET":
                await self._problem(send, 405, "Method Not Allowed", f"{method} /ping: use GET")
                return
            await self._ping(send)
        elif path == "/invocations":
            if method != "POST":
                await self._problem(send, 405, "Method Not Allowed", f"{method} /invocations: use POST")
                return
            await self._invoke(scope, receive, send)
        else:
            await self._problem(
                send, 404, "Not Found", f"no route {path}: this container serves /ping and /invocations"
            )

    async def _ping(self, send: Send) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self.ensure_loaded)
        except Exception as exc:
            await self._problem(send, 503, "Model Unavailable", f"the model did not load: {exc}")
            return
        await _respond(send, 200, b"application/json", b'{"status":"healthy"}')

    async def _invoke(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type not in self.predictor.content_types:
            accepted = ", ".join(self.predictor.content_types)
            await self._problem(send, 415, "Unsupported Media Type", f"content type {content_type!r}: send {accepted}")
            return
        attributes = parse_custom_attributes(headers.get(CUSTOM_ATTRIBUTES, ""))
        try:
            with self.batcher.expecting():  # a filling batch waits for this request only while it is on its way
                body = await _read_body(receive)
                if body is None:
                    raise PayloadTooLarge(f"bodies are limited to {MAX_BODY_BYTES} bytes")
                queued = self.batcher.enqueue(self.predictor.parse(body), deadline=self._deadline(attributes))
            result = await queued
        except PayloadTooLarge as exc:
            await self._problem(send, 413, "Payload Too Large", str(exc))
            return
        except BadRequest as exc:
            await self._problem(send, 400, "Bad Request", str(exc))
            return
        except QueueFull as exc:
            await self._problem(send, 429, "Too Many Requests", str(exc))
            return
        except DeadlineExceeded as exc:
            await self._problem(send, 504, "Deadline Exceeded", str(exc))
            return
        except Exception as exc:
            await self._problem(send, 500, "Model Error", f"{type(exc).__name__}: {exc}")
            return
        extra: list[tuple[bytes, bytes]] = []
        if CUSTOM_ATTRIBUTES in headers:
            extra.append((b"x-amzn-sagemaker-custom-attributes", headers[CUSTOM_ATTRIBUTES].encode("latin-1")))
        extra.extend(self._session_headers(headers.get(SESSION_ID)))
        await _respond(send, 200, b"application/json", self.predictor.render(result), extra)

    def _deadline(self, attributes: dict[str, str]) -> float | None:
        """``deadline`` (epoch milliseconds) moved onto the batcher's clock; absent or unreadable: none."""
        raw = attributes.get("deadline")
        if raw is None or not raw.isdigit():
            return None
        return self._clock() + (int(raw) / 1000 - self._wall())

    def _session_headers(self, session: str | None) -> list[tuple[bytes, bytes]]:
        """Sticky sessions: a new id for ``NEW_SESSION``, the same id echoed for a session in progress."""
        if session is None:
            return []
        if session == NEW_SESSION:
            expires = (datetime.fromtimestamp(self._wall(), UTC) + SESSION_TTL).strftime("%Y-%m-%dT%H:%M:%SZ")
            value = f"{uuid.uuid4().hex}; Expires={expires}"
            return [(b"x-amzn-sagemaker-new-session-id", value.encode())]
        return [(b"x-amzn-sagemaker-session-id", session.encode("latin-1"))]

    async def _problem(self, send: Send, status: int, title: str, detail: str) -> None:
        body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail}).encode()
        await _respond(send, status, PROBLEM, body)


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(
    send: Send, status: int, content_type: bytes, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
