"""Tests generated from every contract (parametrised over the contracts directory): a new contract gets them
without a test file being touched. Each agent runs in-process on moto, as `agentplane invoke` runs it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from contracts.capability import CapabilityContract
from infra.local.agent_run import LocalAgents, step_event
from tests.generated_contracts import (
    CONTRACTS,
    LAMBDA_CONTRACTS,
    SIDE_EFFECTING,
    functions_dir,
    invalid_payloads,
    output_schema,
    sample_payload,
)

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:No application metrics to publish")]

BY_NAME = [pytest.param(c, id=c.name) for c in LAMBDA_CONTRACTS]
INVALID = [
    pytest.param(c, payload, id=f"{c.name}-{what}") for c in LAMBDA_CONTRACTS for what, payload in invalid_payloads(c)
]


@pytest.fixture(scope="module")
def agents() -> Iterator[LocalAgents]:
    with LocalAgents(CONTRACTS, functions_dir=functions_dir()) as running:
        yield running


def test_every_contract_has_invalid_inputs_to_refuse() -> None:
    # A contract whose input accepts anything would get no rejection tests: that is a gap, not a pass.
    for contract in LAMBDA_CONTRACTS:
        assert invalid_payloads(contract), f"{contract.name}: its input model {contract.io.input} refuses nothing"


@pytest.mark.parametrize("contract", BY_NAME)
def test_the_sample_input_is_accepted_and_the_output_conforms(
    agents: LocalAgents, contract: CapabilityContract
) -> None:
    # GIVEN a valid input for the contract WHEN its agent runs on it
    result = agents.invoke(contract.name, step_event(contract, sample_payload(contract)))

    # THEN it succeeds, and what it returns validates against the contract's output schema
    assert result.failure is None, f"{contract.name} refused a valid {contract.io.input}: {result.failure}"
    jsonschema.validate(result.output, output_schema(contract))
    contract.output_model.model_validate(result.output)


@pytest.mark.parametrize(("contract", "payload"), INVALID)
def test_each_invalid_field_is_rejected_as_bad_input(
    agents: LocalAgents, contract: CapabilityContract, payload: dict[str, Any]
) -> None:
    result = agents.invoke(contract.name, step_event(contract, payload))

    assert result.failure is not None, f"{contract.name} accepted an invalid {contract.io.input}"
    assert result.failure.error_type == "BadInput", result.failure
    # AND nothing was done on its behalf
    assert result.side_effects == []


@pytest.mark.parametrize("contract", [pytest.param(c, id=c.name) for c in SIDE_EFFECTING])
def test_a_redelivered_step_has_its_side_effects_once(agents: LocalAgents, contract: CapabilityContract) -> None:
    # GIVEN one step event, delivered
    event = step_event(contract, sample_payload(contract))
    first = agents.invoke(contract.name, event)
    assert first.failure is None, first.failure

    # WHEN the same event is delivered again (a retry, a redelivered message)
    again = agents.invoke(contract.name, event)

    # THEN it answers what the first delivery decided, and does nothing a second time
    assert again.failure is None, again.failure
    assert again.output == first.output
    assert again.side_effects == [], f"{contract.name} repeated {', '.join(map(str, again.side_effects))}"
