"""Running a :class:`ServingApp` over HTTP: in the container (``serve``), in the local plane, in tests."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import uvicorn

READY_TIMEOUT_S = 10.0


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted sockets inherit it on Linux
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _config(app: Any) -> uvicorn.Config:
    # httptools parses HTTP in C; lifespan off: the app loads its model lazily on the first ping or request.
    return uvicorn.Config(app, http="httptools", lifespan="off", access_log=False, log_level="warning")


def serve_forever(app: Any, host: str, port: int) -> None:
    """The container's entry point: blocks until SIGTERM (SageMaker stops containers that way)."""
    server = uvicorn.Server(_config(app))
    asyncio.run(server.serve(sockets=[bind(host, port)]))


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
