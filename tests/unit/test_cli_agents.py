"""The agent-author commands of `agentplane`: contracts card, new agent (and their one-line errors)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts.loader import load_contract
from infra import cli

pytestmark = pytest.mark.unit


def test_contracts_card_prints_the_agent_card(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["contracts", "card", "risk-scorer", "--url", "https://api.example.test/prod/"])

    card = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (card["name"], card["url"]) == ("risk-scorer", "https://api.example.test/prod")
    assert [skill["id"] for skill in card["skills"]] == ["risk-scoring"]


def test_contracts_card_names_the_known_contracts_when_asked_for_another(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["contracts", "card", "no-such-agent"])

    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("agentplane: no contract named 'no-such-agent' (known: decision-recorder, ")
    assert len(err.splitlines()) == 1


def test_new_agent_writes_a_valid_contract_and_a_handler(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    contracts, functions = tmp_path / "contracts", tmp_path / "functions"
    contracts.mkdir()
    functions.mkdir()

    code = cli.main(["new", "agent", "claim-sniffer", "--contracts", str(contracts), "--functions", str(functions)])

    assert code == 0
    contract = load_contract(contracts / "claim-sniffer.yaml")
    assert contract.runtime.kind == "lambda"
    assert contract.runtime.handler == "functions.claim_sniffer.handler.lambda_handler"  # type: ignore[union-attr]
    assert (contract.capabilities, contract.permissions, contract.side_effects) == (
        ["claim-sniffer"],
        [],
        "read-only",
    )
    handler = (functions / "claim_sniffer" / "handler.py").read_text()
    assert "Agent.from_environment(input_model=ClaimCheck, output_model=Verdict)" in handler
    compile(handler, "handler.py", "exec")
    assert "agentplane invoke claim-sniffer" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Claim_Sniffer", "agent name 'Claim_Sniffer' must be kebab-case"),
        ("risk-scorer", "risk-scorer.yaml already exists"),
    ],
)
def test_new_agent_refuses_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, message: str
) -> None:
    contracts, functions = tmp_path / "contracts", tmp_path / "functions"
    contracts.mkdir()
    functions.mkdir()
    (contracts / "risk-scorer.yaml").write_text("name: risk-scorer\n")

    code = cli.main(["new", "agent", name, "--contracts", str(contracts), "--functions", str(functions)])

    err = capsys.readouterr().err
    assert code == 1
    assert message in err
    assert len(err.splitlines()) == 1
    assert sorted(p.name for p in functions.iterdir()) == []


def test_new_agent_refuses_to_overwrite_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    contracts, functions = tmp_path / "contracts", tmp_path / "functions"
    contracts.mkdir()
    (functions / "claim_sniffer").mkdir(parents=True)

    code = cli.main(["new", "agent", "claim-sniffer", "--contracts", str(contracts), "--functions", str(functions)])

    assert code == 1
    assert "claim_sniffer already exists" in capsys.readouterr().err
    assert list(contracts.iterdir()) == []
