"""Generated from every contract: the IAM its agent's role holds in the template is what the contract declares,
no more and no less, beside what every agent gets from the platform."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import Stack

from contracts.capability import CapabilityContract
from infra.components.agent_pool import PERMISSION_VERBS, AgentPool
from infra.components.nag import logical_id
from infra.local.agent_run import GRANTED_VARIABLES, environment
from infra.stack import AgentPlaneStack
from tests.generated_contracts import LAMBDA_CONTRACTS
from tests.infra.assembly import Synthesized

pytestmark = pytest.mark.infra

Grant = tuple[str, str]  # (action, resource as canonical JSON)
SQS_EVENT_SOURCE = ("sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueUrl", "sqs:DeleteMessage")
SQS_EVENT_SOURCE += ("sqs:GetQueueAttributes",)


def _pairs(actions: Any, resources: Any) -> set[Grant]:
    actions = [actions] if isinstance(actions, str) else actions
    resources = resources if isinstance(resources, list) else [resources]
    return {(action, json.dumps(resource, sort_keys=True)) for action in actions for resource in resources}


def _arn(construct: Any) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id(construct), "Arn"]}


def granted(synthesized: Synthesized, name: str) -> set[Grant]:
    role = synthesized.role_of(synthesized.agent_functions()[name])
    statements = synthesized.role_statements(role)
    assert all(s["Effect"] == "Allow" and "Condition" not in s for s in statements)
    return {pair for s in statements for pair in _pairs(s["Action"], s["Resource"])}


def expected(stack: AgentPlaneStack, pool: AgentPool) -> set[Grant]:
    """The platform's part (logs, the decision record, the data key, tracing, a bursty agent's buffer queue),
    plus exactly what the contract's permission verbs grant."""
    data = stack.data
    pairs = _pairs(["logs:CreateLogStream", "logs:PutLogEvents"], _arn(pool.log_group))
    pairs |= _pairs(["dynamodb:PutItem", "dynamodb:GetItem"], _arn(data.decisions))
    pairs |= _pairs(["kms:Decrypt", "kms:GenerateDataKey"], _arn(data.key))
    pairs |= _pairs(["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "*")
    if pool.buffering is not None and pool.contract.subscribes:
        [queue] = [q for q in stack.mesh.node.children if q.node.id.endswith("Buffer") and _feeds(q, pool)]
        pairs |= _pairs(list(SQS_EVENT_SOURCE), _arn(queue))
    for permission in pool.contract.permissions:
        for statement in PERMISSION_VERBS[permission](stack.resources).statements:
            resolved = Stack.of(stack).resolve(statement.to_statement_json())
            pairs |= _pairs(resolved["Action"], resolved["Resource"])
    return pairs


def _feeds(queue: Any, pool: AgentPool) -> bool:
    return str(queue.node.id).removesuffix("Buffer") == str(pool.node.id).removeprefix("Agent")


@pytest.mark.parametrize("contract", [pytest.param(c, id=c.name) for c in LAMBDA_CONTRACTS])
def test_declared_permissions_equal_the_iam_granted(synthesized: Synthesized, contract: CapabilityContract) -> None:
    # GIVEN the agent's pool as synthesized from its contract
    functions = synthesized.agent_functions()
    assert contract.name in functions, f"{contract.name} was not synthesized"
    pool = next(p for p in synthesized.stack.agents.values() if p.contract.name == contract.name)

    # THEN its role holds what the contract declares, no more and no less
    actual, wanted = granted(synthesized, contract.name), expected(synthesized.stack, pool)
    assert actual - wanted == set(), f"{contract.name} is granted more than its contract declares"
    assert wanted - actual == set(), f"{contract.name} lacks what its contract declares"


@pytest.mark.parametrize("contract", [pytest.param(c, id=c.name) for c in LAMBDA_CONTRACTS])
def test_the_local_runner_sets_what_the_pool_sets(synthesized: Synthesized, contract: CapabilityContract) -> None:
    # `agentplane invoke` and the generated tests run an agent with the variables its deployed function has
    function = synthesized.resources[synthesized.agent_functions()[contract.name]]
    deployed = set(function["Properties"]["Environment"]["Variables"])
    local = set(environment(contract))
    granted_variables = {variable for variable, _ in GRANTED_VARIABLES.values()}
    assert local & granted_variables == deployed & granted_variables
    assert local <= deployed
