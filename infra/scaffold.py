"""`agentplane new agent NAME`: the two files an agent is, a contract and a handler, ready to run and to deploy."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from contracts.capability import KEBAB_PATTERN
from contracts.loader import ContractError, load_contract

CONTRACT = """\
# Capability contract (validated by contracts.capability.CapabilityContract; see docs/adding-an-agent.md).
# Infra derives this agent's Lambda, IAM grants and generated tests from it.
name: {name}
version: 0.1.0
description: {description}
capabilities: [{name}]
io: {{input: ClaimCheck, output: Verdict}}
runtime:
  kind: lambda
  handler: functions.{package}.handler.lambda_handler
  memory_mb: 256
permissions: []
side_effects: read-only
slo: {{p95_ms: 1000, availability: 99.9, error_budget_pct: 0.1}}
fallback: []
telemetry:
  metrics: [latency_ms, success_count]
  errors: [BadInput, DeadlineExceeded]
"""

HANDLER = '''\
"""{name}: {description}"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from contracts.models import ClaimCheck, Verdict
from functions.runtime import Agent, Step

agent = Agent.from_environment(input_model=ClaimCheck, output_model=Verdict)


def check(request: ClaimCheck, step: Step) -> Verdict:
    """The agent's logic: its contract's input in, its output out (no AWS here; adapters go beside it)."""
    return Verdict(
        claim_id=request.claim.claim_id,
        label="not-enough-info",
        confidence=0.0,
        rationale="{name} does not check claims yet",
    )


@agent.logger.inject_lambda_context
@agent.metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return agent.run(event, check)
'''


class ScaffoldError(ValueError):
    """The agent cannot be scaffolded as asked; the message is one line."""


@dataclass(frozen=True)
class Scaffolded:
    contract: Path
    handler: Path


def new_agent(name: str, *, contracts_dir: Path, functions_dir: Path, description: str = "") -> Scaffolded:
    """Write ``<contracts_dir>/<name>.yaml`` and ``<functions_dir>/<package>/handler.py``; refuse to overwrite."""
    if not re.fullmatch(KEBAB_PATTERN, name):
        raise ScaffoldError(f"agent name {name!r} must be kebab-case (lowercase words joined by '-')")
    package = name.replace("-", "_")
    contract = contracts_dir / f"{name}.yaml"
    folder = functions_dir / package
    if contract.exists():
        raise ScaffoldError(f"{contract} already exists")
    if folder.exists():
        raise ScaffoldError(f"{folder} already exists")
    if not contracts_dir.is_dir():
        raise ScaffoldError(f"no contracts directory {contracts_dir}")
    if not functions_dir.is_dir():
        raise ScaffoldError(f"no functions directory {functions_dir}")
    text = " ".join((description or f"Checks one claim ({name}).").split())
    contract.write_text(CONTRACT.format(name=name, package=package, description=text), encoding="utf-8")
    try:
        load_contract(contract)
    except ContractError as error:
        contract.unlink()
        raise ScaffoldError(str(error)) from None
    folder.mkdir()
    (folder / "__init__.py").write_text("", encoding="utf-8")
    handler = folder / "handler.py"
    handler.write_text(HANDLER.format(name=name, description=text), encoding="utf-8")
    return Scaffolded(contract=contract, handler=handler)
