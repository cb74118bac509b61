"""Summarizer serving: throughput and latency at concurrency 1, 8 and 32, dynamic batching on and off.

Starts the container's app (``python -m containers.summarizer.app serve``) as a separate process on
127.0.0.1 for each mode, with the container's own worker count (one per usable core unless
``AGENTPLANE_SERVING_WORKERS`` says otherwise; the report records it), drives it with closed-loop
keep-alive clients over real HTTP, and reads the batch sizes back from the EMF lines the workers print.
Batching on uses the summarizer contract's ``batching``; off is ``max_batch=1``. Runs unchanged on a GPU
machine (the core picks CUDA when ONNX Runtime has it).
Writes bench/results/summarizer-<timestamp>.json. A benchmark, not a test: it never fails on a number.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from report import write_report  # bench/ is this script's folder

from containers.base.settings import ServingSettings
from contracts.loader import CONTRACTS_DIR, load_contract
from functions.intake.service import extract_claims

REPO = Path(__file__).resolve().parents[1]
CONCURRENCY = (1, 8, 32)
READY_TIMEOUT_S = 30.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def payload() -> bytes:
    body = json.loads((REPO / "events" / "doc-review-request.json").read_text())
    claims = extract_claims(body["document"]["text"])
    return json.dumps({"title": body["document"]["title"], "claims": [c.model_dump() for c in claims]}).encode()


class Server:
    """The serving app in its own process, its stdout (EMF lines) collected."""

    def __init__(self, max_batch: int, max_wait_ms: int) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "AGENTPLANE_MAX_BATCH": str(max_batch),
            "AGENTPLANE_MAX_WAIT_MS": str(max_wait_ms),
            "SM_MODEL_DIR": str(REPO / "build" / "bench-no-model"),  # none there: the bundled scorer serves
        }
        command = [sys.executable, "-m", "containers.summarizer.app", "serve", "--host", "127.0.0.1"]
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port)], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
        )
        self.batch_sizes: list[int] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("{") and '"batch_size"' in line:
                self.batch_sizes.extend(json.loads(line)["batch_size"])

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"GET /ping HTTP/1.1\r\nHost: bench\r\n\r\n")
                    if sock.recv(64).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the serving app did not answer /ping")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self._reader.join(timeout=5)


async def client(port: int, body: bytes, until: float, warm_until: float, latencies: list[float]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /invocations HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    errors = 0
    try:
        while (now := time.perf_counter()) < until:
            writer.write(head + body)
            headers = await reader.readuntil(b"\r\n\r\n")
            length = int(headers.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            if not headers.startswith(b"HTTP/1.1 200"):
                errors += 1
            elif now >= warm_until:
                latencies.append((time.perf_counter() - now) * 1000)
    finally:
        writer.close()
    return errors


async def drive(port: int, body: bytes, concurrency: int, seconds: float, warm_up: float) -> dict[str, Any]:
    latencies: list[float] = []
    start = time.perf_counter()
    warm_until, until = start + warm_up, start + warm_up + seconds
    errors = await asyncio.gather(*(client(port, body, until, warm_until, latencies) for _ in range(concurrency)))
    elapsed = time.perf_counter() - warm_until
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": sum(errors),
        "throughput_rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50), 3),
        "p95_ms": round(percentile(latencies, 0.95), 3),
        "p99_ms": round(percentile(latencies, 0.99), 3),
    }


def measure(modes: dict[str, tuple[int, int]], body: bytes, seconds: float, warm_up: float) -> dict[str, Any]:
    """Both servers up at once; each concurrency level runs against one mode, then the other, so a busy
    machine's drift hits both modes alike."""
    servers = {mode: Server(max_batch, max_wait_ms) for mode, (max_batch, max_wait_ms) in modes.items()}
    results: dict[str, Any] = {
        mode: {"max_batch": max_batch, "max_wait_ms": max_wait_ms, "levels": []}
        for mode, (max_batch, max_wait_ms) in modes.items()
    }
    try:
        for server in servers.values():
            server.wait_ready()
        for concurrency in CONCURRENCY:
            for mode, server in servers.items():
                before = len(server.batch_sizes)
                level = asyncio.run(drive(server.port, body, concurrency, seconds, warm_up))
                time.sleep(1.2)  # the server flushes its EMF line at most once a second
                sizes = server.batch_sizes[before:]
                level["mean_batch_size"] = round(sum(sizes) / len(sizes), 2) if sizes else None
                results[mode]["levels"].append(level)
    finally:
        for server in servers.values():
            server.stop()
    return results


def breakdown(body: bytes, max_batch: int, repeat: int = 2000) -> dict[str, float]:
    """Where a request's time goes inside the server, in-process: what batching can amortize and what not."""
    from containers.summarizer.app import SummarizerPredictor

    predictor = SummarizerPredictor()
    predictor.load(REPO / "build" / "bench-no-model", 1)
    started = time.perf_counter()
    items = [predictor.parse(body) for _ in range(repeat)]
    parse_us = (time.perf_counter() - started) / repeat * 1e6

    def predict_us(batch: int) -> float:
        started = time.perf_counter()
        for i in range(0, repeat, batch):
            predictor.predict(items[i : i + batch])
        return (time.perf_counter() - started) / repeat * 1e6

    one, batched = predict_us(1), predict_us(max_batch)
    results = predictor.predict(items[:1])
    started = time.perf_counter()
    for _ in range(repeat):
        predictor.render(results[0])  # type: ignore[arg-type]
    render_us = (time.perf_counter() - started) / repeat * 1e6
    return {
        "parse_us": round(parse_us, 1),  # validation; tokenising is done with the batch
        "tokenise_and_model_call_per_item_us_batch_1": round(one, 1),
        f"tokenise_and_model_call_per_item_us_batch_{max_batch}": round(batched, 1),
        "render_us": round(render_us, 1),
    }


def providers() -> list[str]:
    import onnxruntime as ort

    available: list[str] = ort.get_available_providers()
    return available


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0, help="measured time per concurrency level")
    parser.add_argument("--warm-up", type=float, default=0.5)
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = parser.parse_args()
    contract = load_contract(CONTRACTS_DIR / "summarizer.yaml")
    if contract.batching is None:
        print("contracts/agents/summarizer.yaml declares no batching", file=sys.stderr)
        return 1
    body = payload()
    batching = (contract.batching.max_batch, contract.batching.max_wait_ms)
    measured = measure({"on": batching, "off": (1, 0)}, body, args.seconds, args.warm_up)
    on, off = measured["on"], measured["off"]

    def level(mode: dict[str, Any], concurrency: int) -> dict[str, Any]:
        return next(lv for lv in mode["levels"] if lv["concurrency"] == concurrency)

    single_ms = level(off, 1)["p50_ms"]
    p95_budget = contract.batching.max_wait_ms + 2 * single_ms
    report = {
        "benchmark": "summarizer-serving",
        "when": datetime.now(UTC).isoformat(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "onnxruntime": providers()},
        "serving_workers": ServingSettings.from_environment(os.environ).workers,  # both modes, as deployed
        "payload": {"bytes": len(body), "sentences": len(json.loads(body)["claims"])},
        "batching_on": on,
        "batching_off": off,
        "single_request_ms": single_ms,
        "c32_throughput_gain": round(level(on, 32)["throughput_rps"] / level(off, 32)["throughput_rps"], 2),
        "c32_p95_ms": level(on, 32)["p95_ms"],
        "c32_p95_budget_ms": round(p95_budget, 3),
        "server_breakdown": breakdown(body, contract.batching.max_batch),
        "targets": {"c32_throughput_gain": ">= 4", "c32_p95_ms": "<= max_wait_ms + 2 x single_request_ms"},
    }
    write_report("summarizer", report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
