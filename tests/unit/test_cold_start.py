"""What a cold start imports: no handler makes an AWS client (boto3) or the idempotency layer at import, nor
loads ``cryptography`` (only signing and verifying digests need it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
HANDLERS = sorted(f"functions.{path.parent.name}.handler" for path in (REPO / "functions").glob("*/handler.py"))
ENV = {
    "AGENT_NAME": "cold",
    "AGENT_VERSION": "1.0.0",
    "AGENT_CAPABILITIES": "cold",
    "AGENT_SIDE_EFFECTS": "idempotent-write",
    "AGENT_INPUT_MODEL": "ClaimCheck",
    "AGENT_OUTPUT_MODEL": "Verdict",
    "ENDPOINT_NAME": "endpoint",
    "DECISIONS_TABLE": "decisions",
    "EXECUTIONS_TABLE": "executions",
    "REGISTRY_TABLE": "registry",
    "IDEMPOTENCY_TABLE": "idempotency",
    "LEDGER_TABLE": "ledger",
    "EVENT_BUS_NAME": "bus",
    "DOCUMENTS_BUCKET": "documents",
    "KNOWLEDGE_BASE_PATH": str(REPO / "functions" / "knowledge_base" / "passages.jsonl"),
    "WORKFLOWS": json.dumps(
        {"doc-review": {"state_machine_arn": "arn", "input_model": "DocReviewRequest", "ttl_ms": 1}}
    ),
    "AWS_DEFAULT_REGION": "us-east-1",
}
PROBE = """
import importlib, json, sys
loaded = {}
for module in sys.argv[1:]:
    importlib.import_module(module)
    heavy = ("boto3", "aws_lambda_powertools.utilities.idempotency", "cryptography")
    loaded[module] = [m for m in heavy if m in sys.modules]
print(json.dumps(loaded))
"""


def test_every_handler_imports_without_boto3_the_idempotency_layer_or_cryptography(tmp_path: Path) -> None:
    assert len(HANDLERS) == 14
    # the llm agents' loop reads the agent.json synth stages beside it: the shipped fact-checker's, here
    from contracts.loader import load_contracts
    from infra.components.llm_agent import PRICING_REGION, loop_config

    contracts = load_contracts()
    config = tmp_path / "agent.json"
    config.write_text(json.dumps(loop_config(contracts["fact-checker-llm"], contracts, region=PRICING_REGION)))
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *HANDLERS],
        env={**os.environ, **ENV, "LLM_AGENT_CONFIG": str(config)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == {module: [] for module in HANDLERS}
