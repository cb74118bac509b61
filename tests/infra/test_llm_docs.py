"""docs/llm-agents.md followed as written: its contract and prompt, added to a copy of the contracts, make an agent.

The page's two blocks are taken as they are; the plane is synthesized with them, and the new agent's loop runs
against the local stand-in model with its tool answered by the heuristic verifier.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from contracts.loader import CONTRACTS_DIR, load_contracts
from contracts.models import ClaimCheck, Verdict
from functions.llm_agent.loop import AgentConfig, run_loop
from infra.components.llm_agent import PRICING_REGION, loop_config
from infra.evals import fact_check_cases, heuristic_check
from infra.local.bedrock import LocalBedrock
from tests.infra.assembly import synthesize

pytestmark = pytest.mark.infra

DOC = Path(__file__).parents[2] / "docs" / "llm-agents.md"
BLOCK = re.compile(
    r"<!-- llm-doc:(?P<kind>prompt|contract) (?P<file>[a-z0-9.-]+) -->\s*```[a-z]*\n(?P<body>.*?)```", re.S
)


@pytest.fixture(scope="module")
def contracts_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project") / "contracts"
    shutil.copytree(CONTRACTS_DIR.parent / "agents", root / "agents")
    shutil.copytree(CONTRACTS_DIR.parent / "prompts", root / "prompts")
    blocks = list(BLOCK.finditer(DOC.read_text(encoding="utf-8")))
    assert sorted(b["kind"] for b in blocks) == ["contract", "prompt"]
    for block in blocks:
        body = "\n".join(line.removeprefix("   ") for line in block["body"].splitlines()) + "\n"
        folder = "agents" if block["kind"] == "contract" else "prompts"
        (root / folder / block["file"]).write_text(body, encoding="utf-8")
    return root / "agents"


def test_the_documented_agent_synthesizes_with_exactly_its_model(
    contracts_copy: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    synthesized = synthesize(tmp_path_factory.mktemp("cdk"), contracts_dir=contracts_copy)

    function = synthesized.agent_functions()["quote-checker"]
    assert synthesized.resources[function]["Properties"]["Handler"] == "functions.llm_agent.handler.lambda_handler"
    statements = synthesized.role_statements(synthesized.role_of(function))
    (bedrock,) = [s for s in statements if s["Action"] == "bedrock:InvokeModel"]
    text = str(bedrock["Resource"])
    assert "inference-profile/eu.anthropic.claude-sonnet-4-5-20250929-v1:0" in text
    assert "eu-west-1::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0" in text


def test_the_documented_agent_answers_through_its_loop(contracts_copy: Path) -> None:
    contracts = load_contracts(contracts_copy)
    config = AgentConfig.model_validate(loop_config(contracts["quote-checker"], contracts, region=PRICING_REGION))
    heuristic = heuristic_check()
    case, label = fact_check_cases()[0]
    called: list[str] = []

    def tool(spec: object, arguments: dict[str, object], call_id: str) -> dict[str, object]:
        called.append(call_id)
        return heuristic(ClaimCheck.model_validate(arguments)).model_dump(mode="json")

    answer, usage = run_loop(
        config,
        Verdict,
        case.model_dump(mode="json"),
        converse=LocalBedrock().converse,
        call_tool=tool,
        record_turn=lambda _turn: None,
        approve=lambda _spec, _call: None,
    )

    assert isinstance(answer, Verdict)
    assert answer.label == label
    assert called == ["1.0"]
    assert usage.turns == 2
    assert 0 < usage.cost_usd < 0.10
