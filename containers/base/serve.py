"""Running a :class:`ServingApp` over HTTP: in the container (``serve``), in the local plane, in tests."""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import signal
import socket
import threading
import time
from multiprocessing.process import BaseProcess
from typing import Any

import uvicorn

READY_TIMEOUT_S = 10.0
CRASH_LOOP_S, CRASH_LOOP_TRIES = 2.0, 3  # a worker dying this soon after its start, this many times in a row


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:  # each worker listens on its own socket and the kernel spreads connections over them
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted sockets inherit it on Linux
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _config(app: Any) -> uvicorn.Config:
    # httptools parses HTTP in C; lifespan off: the app loads its model lazily on the first ping or request;
    # no proxy headers: SageMaker's front end is the only client, and rewriting addresses costs every request.
    return uvicorn.Config(
        app,
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        proxy_headers=False,
        factory=isinstance(app, str),
    )


def serve_forever(factory: str, host: str, port: int, *, workers: int = 1) -> None:
    """The container's entry point: blocks until SIGTERM (SageMaker stops containers that way).

    ``factory`` is an import string (``module:function``) that builds the app. With ``workers`` > 1 each
    worker process builds its own (its own model, queue and batches) and listens on its own socket on the
    same port (``SO_REUSEPORT``), so the kernel spreads connections evenly and every core serves; one shared
    socket would let the busiest worker accept nearly every connection. A worker that dies is started again.
    """
    if workers == 1:
        _serve_one(factory, host, port, reuse_port=False)  # alone on the port
        return
    if port == 0:
        raise ValueError("workers share one port: name it (port 0 would give each worker a port of its own)")
    _supervise(factory, host, port, workers)


def _serve_one(factory: str, host: str, port: int, *, reuse_port: bool) -> None:
    asyncio.run(uvicorn.Server(_config(factory)).serve(sockets=[bind(host, port, reuse_port=reuse_port)]))


def _supervise(factory: str, host: str, port: int, workers: int) -> None:
    context = multiprocessing.get_context("spawn")  # no threads or model state copied into the workers
    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)

    def start() -> BaseProcess:
        shared = {"reuse_port": True}  # every worker on its own socket of the one port
        process = context.Process(target=_serve_one, args=(factory, host, port), kwargs=shared, daemon=True)
        process.start()
        return process

    processes = [start() for _ in range(workers)]
    born = [time.monotonic()] * workers
    quick_deaths = [0] * workers  # a worker that keeps dying at start (port taken, import error) is not retried
    try:
        while not stopping.is_set():
            multiprocessing.connection.wait([p.sentinel for p in processes], timeout=0.5)
            for index, process in enumerate(processes):
                if process.is_alive() or stopping.is_set():
                    continue
                quick = time.monotonic() - born[index] < CRASH_LOOP_S
                quick_deaths[index] = quick_deaths[index] + 1 if quick else 0
                if quick_deaths[index] >= CRASH_LOOP_TRIES:
                    raise SystemExit(f"a serving worker keeps exiting at start (exit code {process.exitcode})")
                processes[index], born[index] = start(), time.monotonic()
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=READY_TIMEOUT_S)


class BackgroundServer:
    """The app on a loopback port in a daemon thread, started and stopped by its owner (the local plane, tests)."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self._socket = bind(host, port)
        self.host, self.port = self._socket.getsockname()[:2]
        self._server = uvicorn.Server(_config(app))
        self._thread = threading.Thread(target=self._run, name=f"serving-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def start(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        if not self._server.started:
            raise RuntimeError(f"the serving app did not start on {self.url}")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=READY_TIMEOUT_S)
        self._socket.close()
        close = getattr(self.app, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
