"""The serving container's `serve` entry point with several workers: one port, every worker serving, a dead
worker started again, SIGTERM stopping them all. Real processes on 127.0.0.1, each bounded in time."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from containers.base.serve import serve_forever
from containers.base.settings import WORKERS_ENV, ServingSettings, SettingsError, usable_cores
from tests.containers.test_summarizer_container import DOCUMENT, call, invoke

pytestmark = pytest.mark.container
REPO = Path(__file__).resolve().parents[2]
GUARD_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def workers_of(parent: psutil.Process) -> list[psutil.Process]:
    """The supervisor's serving workers (multiprocessing's own helper processes left out)."""
    return [p for p in parent.children() if "resource_tracker" not in " ".join(p.cmdline())]


def listening(parent: psutil.Process, port: int) -> int:
    """How many of the workers listen on the port."""
    return sum(
        any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in w.net_connections("tcp"))
        for w in workers_of(parent)
    )


def until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GUARD_S
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {GUARD_S}s: {what}")


def answers(url: str) -> bool:
    try:
        return call(url, "GET", "/ping")[0] == 200
    except OSError:
        return False


@pytest.fixture
def container(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {**os.environ, WORKERS_ENV: "2", "SM_MODEL_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "containers.summarizer.app", "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        until(lambda: answers(url), "the container answers /ping")
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=GUARD_S)


def test_workers_share_the_port_a_dead_one_is_replaced_and_sigterm_stops_all(
    container: tuple[subprocess.Popen[bytes], str],
) -> None:
    # GIVEN the container serving with two workers
    process, url = container
    parent = psutil.Process(process.pid)
    until(lambda: len(workers_of(parent)) == 2, "two workers")
    first = {p.pid for p in workers_of(parent)}

    # WHEN each worker answers a summary, then one of them is killed
    status, _, summary = invoke(url, DOCUMENT)
    assert status == 200
    assert summary["claims"] == DOCUMENT["claims"]
    killed = workers_of(parent)[0]
    killed.kill()
    killed.wait(timeout=GUARD_S)

    # THEN a new worker takes its place and the port keeps answering
    until(lambda: len(workers_of(parent)) == 2 and {p.pid for p in workers_of(parent)} != first, "a new worker")
    until(lambda: listening(parent, int(url.rsplit(":", 1)[1])) == 2, "the new worker listening")
    assert killed.pid not in {p.pid for p in workers_of(parent)}
    assert invoke(url, DOCUMENT)[0] == 200

    # AND SIGTERM (how SageMaker stops a container) stops the supervisor and every worker
    workers = workers_of(parent)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=GUARD_S) == 0
    gone, alive = psutil.wait_procs(workers, timeout=GUARD_S)
    assert alive == []
    assert len(gone) == 2


def test_connections_are_spread_over_the_workers(container: tuple[subprocess.Popen[bytes], str]) -> None:
    # GIVEN the container serving with two workers
    process, url = container
    parent = psutil.Process(process.pid)
    host, port = url.removeprefix("http://").split(":")
    until(lambda: len(workers_of(parent)) == 2 and listening(parent, int(port)) == 2, "two workers listening")

    # WHEN 32 connections are opened at once, as a busy front end keeps them
    connections = [socket.create_connection((host, int(port)), timeout=GUARD_S) for _ in range(32)]
    try:
        # THEN each worker holds some of them (one shared socket would let one worker accept nearly all)
        def held() -> list[int]:
            ports = {int(port)}
            return [sum(c.laddr.port in ports for c in w.net_connections("tcp") if c.raddr) for w in workers_of(parent)]

        until(lambda: sum(held()) == 32, "the workers accept all 32 connections")
        assert min(held()) >= 4, held()
    finally:
        for connection in connections:
            connection.close()


def test_workers_need_a_named_port() -> None:
    # GIVEN / WHEN several workers are asked for on port 0
    # THEN it is refused: each worker would get a port of its own
    with pytest.raises(ValueError, match="name it"):
        serve_forever("containers.summarizer.app:from_environment", "127.0.0.1", 0, workers=2)


def test_worker_count_comes_from_the_environment_else_one_per_usable_core() -> None:
    assert ServingSettings.from_environment({}).workers == usable_cores() >= 1
    assert ServingSettings.from_environment({WORKERS_ENV: "3"}).workers == 3
    with pytest.raises(SettingsError, match=WORKERS_ENV):
        ServingSettings.from_environment({WORKERS_ENV: "0"})
    assert ServingSettings().workers == 1  # built in code (tests, the local plane): one


def test_a_port_already_taken_ends_the_container_with_a_reason(tmp_path: Path) -> None:
    # GIVEN the port held by another server (not sharing it)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, WORKERS_ENV: "2", "SM_MODEL_DIR": str(tmp_path)}
        command = [sys.executable, "-m", "containers.summarizer.app", "serve", "--host", "127.0.0.1"]

        # WHEN the container starts on it
        done = subprocess.run(
            [*command, "--port", str(port)], cwd=REPO, env=env, capture_output=True, text=True, timeout=GUARD_S * 2
        )

    # THEN it exits non-zero saying its workers keep exiting, rather than restarting them forever
    assert done.returncode == 1
    assert "a serving worker keeps exiting at start" in done.stderr
