"""Generated from every contract: the local runner (`agentplane invoke`, the generated contract tests) gives an
agent the variables its deployed function has. Its IAM is checked in test_stack.py, generated the same way."""

from __future__ import annotations

import pytest

from contracts.capability import CapabilityContract
from infra.local.agent_run import GRANTED_VARIABLES, environment
from tests.generated_contracts import LAMBDA_CONTRACTS
from tests.infra.assembly import Synthesized

pytestmark = pytest.mark.infra


@pytest.mark.parametrize("contract", [pytest.param(c, id=c.name) for c in LAMBDA_CONTRACTS])
def test_the_local_runner_sets_what_the_pool_sets(synthesized: Synthesized, contract: CapabilityContract) -> None:
    # `agentplane invoke` and the generated tests run an agent with the variables its deployed function has
    function = synthesized.resources[synthesized.agent_functions()[contract.name]]
    deployed = set(function["Properties"]["Environment"]["Variables"])
    local = set(environment(contract))
    granted_variables = {variable for variable, _ in GRANTED_VARIABLES.values()}
    assert local & granted_variables == deployed & granted_variables
    assert local <= deployed
