"""The local Bedrock: a bare Converse call's latency (scripted model, in-process and over HTTP), and the opt-in
real model's speed on CPU (tokens/s generating text, seconds for a schema-constrained tool call).

The real model runs when llama-cpp-python and a GGUF are installed (``uv sync --extra local-llm``); otherwise the
report says why it did not. Writes bench/results/llm-<timestamp>.json. A benchmark, not a test: it never fails on
a number.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from report import write_report  # bench/ is this script's folder

from infra.local.bedrock import FINAL_ANSWER, LocalBedrock
from infra.local.bedrock.llama import ENVIRONMENT, PACKAGED, LocalModelUnavailable, packaged_gguf

REPO = Path(__file__).resolve().parents[1]
MODEL = "anthropic.claude-sonnet-4-5"
VERDICT = {
    "type": "object",
    "properties": {
        "verdict": {"enum": ["supported", "refuted", "not-enough-info"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "reason": {"type": "string", "maxLength": 120},
    },
    "required": ["verdict", "confidence", "reason"],
}
PROMPT = "Claim: Northwind Analytics grew revenue 12% in 2025. Evidence: the annual report says revenue rose 12%."


def request(max_tokens: int, tools: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "modelId": MODEL,
        "system": [{"text": "You check claims against evidence."}],
        "messages": [{"role": "user", "content": [{"text": PROMPT}]}],
        "inferenceConfig": {"maxTokens": max_tokens, "temperature": 0},
    }
    if tools:
        spec = {"name": FINAL_ANSWER, "description": "the verdict", "inputSchema": {"json": VERDICT}}
        body["toolConfig"] = {"tools": [{"toolSpec": spec}], "toolChoice": {"any": {}}}
    return body


def milliseconds(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p95_ms": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000, 3),
    }


def bare_converse(calls: int) -> dict[str, Any]:
    """The scripted model's Converse: what a loop's turn costs on the local plane before any model time."""
    bedrock = LocalBedrock()
    body = request(200, tools=True)
    bedrock.converse(body)  # imports, schema compilation
    in_process = []
    for _ in range(calls):
        started = time.perf_counter()
        bedrock.converse(body)
        in_process.append(time.perf_counter() - started)
    with bedrock:
        client = boto3.client(
            "bedrock-runtime",
            region_name="us-east-1",
            endpoint_url=bedrock.endpoint_url,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            config=Config(retries={"total_max_attempts": 1}),
        )
        client.converse(**body)
        over_http = []
        for _ in range(calls):
            started = time.perf_counter()
            client.converse(**body)
            over_http.append(time.perf_counter() - started)
    return {"calls": calls, "in_process": milliseconds(in_process), "over_http": milliseconds(over_http)}


def real_model(path: Path, threads: int, repeats: int) -> dict[str, Any]:
    from llama_cpp import Llama

    started = time.perf_counter()
    llama = Llama(model_path=str(path), n_ctx=2048, n_threads=threads, seed=0, verbose=False)
    load_s = time.perf_counter() - started
    messages = [{"role": "system", "content": "You check claims."}, {"role": "user", "content": PROMPT}]
    generation = []
    for _ in range(repeats):
        started = time.perf_counter()
        answer = llama.create_chat_completion(messages=messages, max_tokens=128, temperature=0.0, seed=0)
        elapsed = time.perf_counter() - started
        generation.append((answer["usage"]["completion_tokens"], answer["usage"]["prompt_tokens"], elapsed))
    constrained = []
    for _ in range(repeats):
        started = time.perf_counter()
        llama.create_chat_completion(
            messages=messages,
            response_format={"type": "json_object", "schema": VERDICT},
            max_tokens=128,
            temperature=0.0,
            seed=0,
        )
        constrained.append(time.perf_counter() - started)
    produced = sum(tokens for tokens, _, _ in generation)
    seconds = sum(elapsed for _, _, elapsed in generation)
    return {
        "model_file": path.name,
        "model_bytes": path.stat().st_size,
        "threads": threads,
        "load_s": round(load_s, 3),
        "completion_tokens": produced,
        "prompt_tokens": generation[0][1],
        "tokens_per_s": round(produced / seconds, 1) if seconds else None,
        "tool_call_s": {"p50": round(statistics.median(constrained), 3), "max": round(max(constrained), 3)},
        "last_answer_sample": answer["choices"][0]["message"]["content"][:200],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200, help="bare Converse calls per path")
    parser.add_argument("--repeats", type=int, default=3, help="real-model generations")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads (they spin: keep below free cores)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = parser.parse_args()
    report: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "processor": platform.machine(),
            "load_average_1m": round(os.getloadavg()[0], 1),  # a busy machine slows the real model most
        },
        "bare_converse_scripted": bare_converse(args.calls),
    }
    choice = os.environ.get(ENVIRONMENT, "smollm2")
    try:
        path = packaged_gguf(PACKAGED[choice]) if choice in PACKAGED else Path(choice)
        report["real_model"] = real_model(path, args.threads, args.repeats)
    except (LocalModelUnavailable, ImportError, OSError) as exc:
        report["real_model"] = {"ran": False, "why": f"{type(exc).__name__}: {exc}"}
    write_report("llm", report, args.out)


if __name__ == "__main__":
    main()
