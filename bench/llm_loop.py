"""The llm agent loop's overhead per turn, over a bare Converse call to the local plane's Bedrock Runtime.

Both sides make the same Converse calls over HTTP to the local stand-in (boto3, as the loop's function does):
the bare side only calls; the loop side runs ``run_loop`` around the calls, with each turn written as a
decision record and its content kept by digest (both in memory: the S3 put the function makes per turn is not
counted) and its tool answered in-process by the heuristic verifier. The difference per turn
is the loop's own cost: building requests, reading turns, budgets, the answer's validation, the records.
The stand-in is not a language model, so no tokens/s of a local model is reported.
Writes bench/results/llm-loop-<timestamp>.json. A benchmark, not a test: it never fails on a number.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from report import write_report  # bench/ is this script's folder

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import boto3  # noqa: E402

from contracts.envelope import Envelope  # noqa: E402
from contracts.loader import load_contracts  # noqa: E402
from contracts.models import ChatCompletion, ClaimCheck, Verdict  # noqa: E402
from functions.llm_agent.chat import chat_request, converse_response  # noqa: E402
from functions.llm_agent.loop import AgentConfig, Turn, Usage, request_for, run_loop  # noqa: E402
from functions.llm_agent.service import keep_turn, turn_record  # noqa: E402
from functions.runtime import InMemoryDecisionStore, Step  # noqa: E402
from functions.runtime.documents import InMemoryDocumentStore  # noqa: E402
from infra.components.llm_agent import PRICING_REGION, loop_config  # noqa: E402
from infra.evals import fact_check_cases, heuristic_check  # noqa: E402
from infra.local.bedrock import LocalBedrock, ScriptedModel  # noqa: E402
from infra.local.llm_serving import ServingStandIn  # noqa: E402

AGENT = "fact-checker-llm"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="loop runs (each two turns)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = parser.parse_args(argv)

    contracts = load_contracts()
    config = AgentConfig.model_validate(loop_config(contracts[AGENT], contracts, region=PRICING_REGION))
    heuristic = heuristic_check()
    cases = [case for case, _ in fact_check_cases()]
    with LocalBedrock() as bedrock:
        client = boto3.client(
            "bedrock-runtime",
            endpoint_url=bedrock.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        converse_ms: list[float] = []
        loop_requests: list[dict[str, Any]] = []

        def converse(request: dict[str, Any]) -> dict[str, Any]:
            loop_requests.append(request)
            started = time.perf_counter()
            response: dict[str, Any] = client.converse(**request)
            converse_ms.append((time.perf_counter() - started) * 1000)
            response.pop("ResponseMetadata", None)
            return response

        for case in cases[:5]:  # warm both paths
            run_once(config, case, converse, heuristic, InMemoryDecisionStore())
        converse_ms.clear()

        overhead_per_turn: list[float] = []
        turns_total = 0
        for index in range(args.runs):
            case = cases[index % len(cases)]
            before = len(converse_ms)
            started = time.perf_counter()
            turns = run_once(config, case, converse, heuristic, InMemoryDecisionStore())
            wall = (time.perf_counter() - started) * 1000
            spent_in_converse = sum(converse_ms[before:])
            overhead_per_turn.append((wall - spent_in_converse) / turns)
            turns_total += turns
        loop_converse = list(converse_ms)

        # A self-hosted model's turns: what translating each request to a chat completion and back adds.
        translation_ms = self_hosted_translation(config, loop_requests[: args.runs])

        # The bare side: the same first-turn request, called alone.
        first_message = [{"role": "user", "content": [{"text": cases[0].model_dump_json()}]}]
        bare_request = request_for(config, first_message, Usage())
        bare_ms = []
        for _ in range(args.runs):
            started = time.perf_counter()
            client.converse(**bare_request)
            bare_ms.append((time.perf_counter() - started) * 1000)

    report = {
        "benchmark": "llm-loop",
        "at": datetime.now(UTC).isoformat(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "runs": args.runs,
        "turns": turns_total,
        "model": "the local plane's scripted stand-in (not a language model), over HTTP on 127.0.0.1",
        "bare_converse_ms": {"p50": statistics.median(bare_ms), "p95": percentile(bare_ms, 0.95)},
        "loop_converse_ms": {"p50": statistics.median(loop_converse), "p95": percentile(loop_converse, 0.95)},
        "overhead_per_turn_ms": {
            "p50": round(statistics.median(overhead_per_turn), 3),
            "p95": round(percentile(overhead_per_turn, 0.95), 3),
        },
        "includes": "request building, turn reading, budgets, answer validation, one decision record and the "
        "turn's content kept by digest per turn (in memory), the tool call answered in-process; excludes the "
        "Converse call itself and the content's S3 put",
        "self_hosted_translation_per_turn_ms": {
            "p50": round(statistics.median(translation_ms), 3),
            "p95": round(percentile(translation_ms, 0.95), 3),
            "includes": "a turn's Converse request as a chat request (JSON encoded) and the chat completion (JSON "
            "decoded, validated) back as a Converse response, what provider sagemaker adds per turn",
        },
        "local_model_tokens_per_s": None,
        "local_model_note": "no real local model runs here: the stand-in is scripted, so tokens/s is not measured",
    }
    write_report("llm-loop", report, args.out)
    return 0


def self_hosted_translation(config: AgentConfig, requests: list[dict[str, Any]]) -> list[float]:
    stand_in = ServingStandIn("vllm", lambda: ScriptedModel(config.model_id))
    answers = []
    for request in requests:  # the answers the serving image's stand-in gives, made outside the timing
        status, answer = stand_in.answer(chat_request(request, config.model_id).model_dump_json().encode())
        assert status == 200, answer
        answers.append(json.dumps(answer).encode())
    timings = []
    for request, answer in zip(requests, answers, strict=True):
        started = time.perf_counter()
        chat_request(request, config.model_id).model_dump_json(exclude_none=True)
        converse_response(ChatCompletion.model_validate_json(answer), 0.0)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def run_once(config: AgentConfig, case: ClaimCheck, converse: Any, heuristic: Any, store: InMemoryDecisionStore) -> int:
    envelope = Envelope.with_ttl(
        ttl_ms=60_000,
        trace_id="1-00000000-000000000000000000000000",
        causation_id="bench/VerifyClaim/0",
        correlation_id="bench",
        capability="fact-check",
        capability_version="1.0.0",
        payload=case.model_dump(mode="json"),
    )
    step = Step(envelope=envelope, started=datetime.now(UTC))
    turns: list[Turn] = []
    contents = InMemoryDocumentStore()

    def record(turn: Turn) -> None:
        turns.append(turn)
        keep_turn(contents, turn)
        store.put(turn_record(config, step, turn, finished=datetime.now(UTC)))

    answer, usage = run_loop(
        config,
        Verdict,
        case.model_dump(mode="json"),
        converse=converse,
        call_tool=lambda _spec, arguments, _id: heuristic(ClaimCheck.model_validate(arguments)).model_dump(mode="json"),
        record_turn=record,
        approve=lambda _spec, _call: None,
    )
    assert isinstance(answer, Verdict)
    return usage.turns


if __name__ == "__main__":
    raise SystemExit(main())
