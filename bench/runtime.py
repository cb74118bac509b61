"""Runtime figures, each beside its anchor measured in the same run.

- cold start: each handler's init (imports + module setup) in a fresh interpreter, beside a bare
  Powertools handler (Logger + Metrics) — target: ours adds <= 50 ms;
- tracing: per handler, init plus its first span with spans exported over OTLP (to a receiver on
  127.0.0.1, as the ADOT collector layer listens on localhost in Lambda), beside the same with tracing
  off (no endpoint: the OpenTelemetry API's no-op) — what turning tracing on adds to a cold start;
- warm per-step overhead: `Agent.run` (envelope parse and checks, idempotency key, contract validation,
  decision record, hashing) on a ~2 KB payload with an in-memory store, beside plain pydantic validation
  of the same payload — target: <= 0.5 ms p50 over the anchor; once with tracing off, once with spans
  recorded for a receiver in another process (as the ADOT collector is), the export made at the end of
  each invocation timed apart (it is paid once per invocation, however many spans or steps it holds).
Writes bench/results/runtime-<timestamp>.json. A benchmark, not a test: it never fails on a number.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from report import write_report  # bench/ is this script's folder

REPO = Path(__file__).resolve().parents[1]
HANDLERS = {  # every function the stack deploys (tests/unit/test_cold_start.py finds the same 13)
    "api": "functions.api.handler",
    "approval-gate": "functions.approval_gate.handler",
    "decision-recorder": "functions.decision_recorder.handler",
    "dispatcher": "functions.dispatcher.handler",
    "document-intake": "functions.intake.handler",
    "endpoint-invoker": "functions.endpoint_invoker.handler",
    "entity-tagger": "functions.entity_tagger.handler",
    "evidence-verifier": "functions.evidence_verifier.handler",
    "ledger-appender": "functions.ledger_appender.handler",
    "ledger-digest": "functions.ledger_digest.handler",
    "registry-health": "functions.registry_health.handler",
    "risk-scorer": "functions.risk_scorer.handler",
    "summarizer": "functions.summarizer.handler",
}
BARE = "\n".join(
    [
        "from aws_lambda_powertools import Logger, Metrics",
        "logger = Logger(service='bare')",
        "metrics = Metrics(namespace='bare')",
    ]
)
ENV = {
    "AGENT_NAME": "bench",
    "AGENT_VERSION": "1.0.0",
    "AGENT_CAPABILITIES": "bench",
    "DECISIONS_TABLE": "decisions",
    "EXECUTIONS_TABLE": "executions",
    "EVENT_BUS_NAME": "bus",
    "DOCUMENTS_BUCKET": "documents",
    "IDEMPOTENCY_TABLE": "idempotency",
    "LEDGER_TABLE": "ledger",
    "REGISTRY_TABLE": "registry",
    "APPROVALS_TABLE": "approvals",
    "AGENT_INPUT_MODEL": "ClaimCheck",
    "AGENT_OUTPUT_MODEL": "Verdict",
    "ENDPOINT_NAME": "endpoint",
    "KNOWLEDGE_BASE_PATH": str(REPO / "functions" / "knowledge_base" / "passages.jsonl"),
    "WORKFLOWS": json.dumps(
        {"doc-review": {"state_machine_arn": "arn", "input_model": "DocReviewRequest", "ttl_ms": 1}}
    ),
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_METRICS_NAMESPACE": "bench",
}


# A span receiver in its own process: prints its endpoint, serves until its stdin closes.
RECEIVER = "\n".join(
    [
        "import sys",
        "from infra.local.otlp import OtlpReceiver, SpanStore",
        "receiver = OtlpReceiver(SpanStore()).start()",
        "print(receiver.endpoint, flush=True)",
        "sys.stdin.read()",
        "receiver.stop()",
    ]
)


def init_ms(code: str, runs: int, env: dict[str, str] | None = None) -> float:
    """Median wall time of ``code`` in a fresh interpreter (the interpreter's own start excluded)."""
    probe = f"import time\nt0 = time.perf_counter()\n{code}\nprint((time.perf_counter() - t0) * 1000)"
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", probe],
            env={**os.environ, **ENV, **(env or {})},
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def warm_overhead(iterations: int, *, traced: bool = False) -> dict[str, float]:
    from contracts.models import RiskAssessment, RiskInput
    from functions.runtime import Agent, AgentIdentity, InMemoryDecisionStore, Step, tracing

    claims = [
        {"claim_id": f"c-{i:03d}", "text": f"Northwind Analytics claim number {i} is stated.", "sentence_index": i}
        for i in range(12)
    ]
    verdicts = [
        {
            "claim_id": c["claim_id"],
            "label": "supported",
            "confidence": 0.9,
            "evidence": [],
            "rationale": "stated in nw-001",
        }
        for c in claims
    ]
    payload = {"claims": claims, "verdicts": verdicts}
    size = len(json.dumps(payload))
    answer = RiskAssessment(level="low", score=0.1, reasons=["ok"], policy_version="p", recommended_outcome="accept")

    def service(request: RiskInput, step: Step) -> RiskAssessment:
        return answer

    agent = Agent(
        AgentIdentity("risk-scorer", "1.0.0", ("risk-scoring",)),
        input_model=RiskInput,
        output_model=RiskAssessment,
        store=InMemoryDecisionStore,
    )
    agent.metrics.provider.flush_metrics = lambda *a, **k: None  # type: ignore[method-assign]
    deadline = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    runtime, anchor, export = [], [], []
    flush = tracing.flush
    if traced:  # the invocation's export is timed apart from the step (see the module docstring)
        tracing.flush = lambda: None  # type: ignore[assignment]
    for i in range(iterations):
        event: dict[str, Any] = {
            "trace_id": "1-6b000000-0123456789abcdef01234567",
            "correlation_id": f"run-{i}",
            "causation_id": f"run-{i}/ScoreRisk",
            "capability": "risk-scoring",
            "capability_version": "1.0.0",
            "deadline": deadline,
            "payload": payload,
        }
        t0 = time.perf_counter()
        RiskInput.model_validate(payload)
        anchor.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        agent.run(event, service)
        runtime.append(time.perf_counter() - t0)
        if traced:
            t0 = time.perf_counter()
            flush()
            export.append(time.perf_counter() - t0)
    tracing.flush = flush  # type: ignore[assignment]
    p50_runtime, p50_anchor = statistics.median(runtime) * 1000, statistics.median(anchor) * 1000
    figures = {
        "payload_bytes": size,
        "runtime_p50_ms": round(p50_runtime, 4),
        "anchor_pydantic_p50_ms": round(p50_anchor, 4),
        "overhead_p50_ms": round(p50_runtime - p50_anchor, 4),
        "target_overhead_ms": 0.5,
    }
    if traced:
        figures["export_per_invocation_p50_ms"] = round(statistics.median(export) * 1000, 4)
    return figures


def warm_overhead_traced(iterations: int) -> dict[str, float]:
    """``warm_overhead`` with spans exported over OTLP to a receiver in its own process."""
    from functions.runtime import tracing

    receiver = subprocess.Popen(
        [sys.executable, "-c", RECEIVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert receiver.stdout is not None
        os.environ[tracing.ENDPOINT_ENV] = receiver.stdout.readline().strip()
        return warm_overhead(iterations, traced=True)
    finally:
        os.environ.pop(tracing.ENDPOINT_ENV, None)
        tracing.shutdown()
        receiver.communicate(timeout=30)  # closing its stdin stops it


def tracing_cold_start(runs: int) -> dict[str, Any]:
    """Each handler's init and first span, traced (OTLP export to a local receiver) and untraced."""
    from functions.runtime.tracing import ENDPOINT_ENV
    from infra.local.otlp import OtlpReceiver, SpanStore

    first_span = (
        "from functions.runtime import tracing\n"
        "with tracing.span('bench', {}, trace_id='1-6b000000-0123456789abcdef01234567'):\n"
        "    pass"
    )
    receiver = OtlpReceiver(SpanStore()).start()
    try:
        handlers = {}
        for name, module in HANDLERS.items():
            code = f"import {module}\n{first_span}"
            off = init_ms(code, runs, {ENDPOINT_ENV: ""})
            on = init_ms(code, runs, {ENDPOINT_ENV: receiver.endpoint, "OTEL_SERVICE_NAME": name})
            handlers[name] = {"untraced_ms": round(off, 1), "traced_ms": round(on, 1), "added_ms": round(on - off, 1)}
        sdk = init_ms(first_span, runs, {ENDPOINT_ENV: receiver.endpoint})
        noop = init_ms(first_span, runs, {ENDPOINT_ENV: ""})
    finally:
        receiver.stop()
    return {
        "what": "init + first span (exported), traced vs untraced",
        "seam_alone": {"untraced_ms": round(noop, 1), "traced_ms": round(sdk, 1), "added_ms": round(sdk - noop, 1)},
        "handlers": handlers,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = parser.parse_args()

    bare = init_ms(BARE, args.runs)
    cold = {}
    for name, module in HANDLERS.items():
        ours = init_ms(f"import {module}", args.runs)
        cold[name] = {"init_ms": round(ours, 1), "added_over_bare_ms": round(ours - bare, 1)}
    report = {
        "benchmark": "runtime",
        "when": datetime.now(UTC).isoformat(),
        "cold_start": {"bare_powertools_init_ms": round(bare, 1), "target_added_ms": 50, "handlers": cold},
        "warm_step": warm_overhead(args.iterations),
        "warm_step_traced": warm_overhead_traced(args.iterations),
        "tracing_cold_start": tracing_cold_start(args.runs),
    }
    write_report("runtime", report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
