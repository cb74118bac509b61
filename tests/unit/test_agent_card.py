"""A contract as an A2A Agent Card: what discovery clients read."""

from __future__ import annotations

import pytest

from contracts.card import A2A_PROTOCOL_VERSION, agent_card
from contracts.loader import load_contracts

pytestmark = pytest.mark.unit

CONTRACTS = load_contracts()
# The fields an A2A client requires of an Agent Card (A2A 0.3 AgentCard).
REQUIRED = {
    "protocolVersion",
    "name",
    "description",
    "url",
    "version",
    "capabilities",
    "defaultInputModes",
    "defaultOutputModes",
    "skills",
}


def test_the_card_says_who_the_agent_is_and_what_it_can_do() -> None:
    contract = CONTRACTS["evidence-verifier"]

    card = agent_card(contract, url="https://api.example.test/prod")

    assert set(card) >= REQUIRED
    assert (card["name"], card["version"], card["protocolVersion"]) == (
        "evidence-verifier",
        contract.version,
        A2A_PROTOCOL_VERSION,
    )
    assert card["description"] == contract.description
    assert card["url"] == "https://api.example.test/prod"
    # one skill per capability, JSON in and out
    assert [s["id"] for s in card["skills"]] == ["fact-check", "confidence-scoring"]
    assert all(s["inputModes"] == s["outputModes"] == ["application/json"] for s in card["skills"])
    assert card["defaultInputModes"] == card["defaultOutputModes"] == ["application/json"]
    assert "ClaimCheck" in card["skills"][0]["description"]


def test_callers_are_told_to_sign_with_sigv4() -> None:
    card = agent_card(CONTRACTS["risk-scorer"], url="http://127.0.0.1:4577")

    [requirement] = card["security"]
    [(scheme_name, scopes)] = requirement.items()
    scheme = card["securitySchemes"][scheme_name]
    assert scopes == []
    assert (scheme["type"], scheme["scheme"]) == ("http", "AWS4-HMAC-SHA256")
    assert "IAM" in scheme["description"]


def test_what_a2a_has_no_field_for_travels_in_the_contract_extension() -> None:
    contract = CONTRACTS["decision-recorder"]

    [extension] = agent_card(contract, url="").get("capabilities", {})["extensions"]

    assert extension["required"] is False
    assert extension["params"] == {
        "input": "DecisionInput",
        "output": "Decision",
        "runtime": "lambda",
        "side_effects": "idempotent-write",
        "slo": {"p95_ms": 500, "availability": 99.9, "error_budget_pct": 0.1},
    }


@pytest.mark.parametrize("name", list(CONTRACTS))
def test_every_contract_has_a_card(name: str) -> None:
    card = agent_card(CONTRACTS[name], url="")
    assert card["name"] == name
    assert len(card["skills"]) == len(CONTRACTS[name].capabilities)


def test_an_agent_known_only_by_its_registry_entry_is_listed_with_the_same_card() -> None:
    from contracts.card import AgentProfile
    from contracts.registry import Implementation, from_item, static_item
    from functions.api.service import capabilities

    contract = load_contracts()["entity-tagger"]
    entry = Implementation(
        name="entity-tagger",
        agent="entity-tagger",
        capabilities=list(contract.capabilities),
        contract_version=contract.version,
        runtime=contract.runtime.kind,
        target="arn:aws:lambda:us-east-1:123456789012:function:tagger:live",
        profile=AgentProfile.of(contract),
    )
    stored = from_item({"implementation": entry.name, **static_item(entry)})  # through the table and back

    from_registry = capabilities({}, [stored], base_url="https://plane")["capabilities"]
    from_contract = capabilities({contract.name: contract}, [stored], base_url="https://plane")["capabilities"]

    assert from_registry == from_contract
    assert from_registry[0]["card"] == agent_card(contract, url="https://plane")
