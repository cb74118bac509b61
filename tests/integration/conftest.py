"""Fixtures: AWS faked with moto, the plane's resources, and agents deployed the way infra deploys them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from contracts.capability import LambdaRuntime
from contracts.loader import load_contracts
from functions.runtime import aws
from tests.integration.fakes import (
    REGION,
    Deploy,
    DeployedAgent,
    LambdaContext,
    Plane,
    fresh_import,
    lambda_environment,
)


@pytest.fixture
def mocked_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials and region, and moto for every AWS call of the test."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    # The runtime caches clients while warm; a client must not outlive the mock it was made in.
    aws.client.cache_clear()
    aws.table.cache_clear()
    with mock_aws():
        yield
    aws.client.cache_clear()
    aws.table.cache_clear()


@pytest.fixture
def plane(mocked_aws: None) -> Plane:
    resources = Plane()
    resources.create()
    return resources


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


@pytest.fixture
def deploy(plane: Plane) -> Deploy:
    """Cold-start the agent a contract names, with the environment infra derives from that contract.

    Only the variables the contract's permissions grant are set: a handler that needs more fails here as well.
    """
    contracts = load_contracts()
    granted = plane.granted_environment()
    grantable = frozenset(variable for variable, _ in granted.values())

    def _deploy(contract_name: str) -> DeployedAgent:
        contract = contracts[contract_name]
        runtime = contract.runtime
        assert isinstance(runtime, LambdaRuntime), f"{contract_name} is not a Lambda agent"
        values = {
            "AGENT_NAME": contract.name,
            "AGENT_VERSION": contract.version,
            "AGENT_CAPABILITIES": ",".join(contract.capabilities),
            "AGENT_TTL_MS": str(runtime.effective_timeout_s(contract.slo) * 1000),
            "DECISIONS_TABLE": plane.decisions_table,
            "POWERTOOLS_SERVICE_NAME": contract.name,
            "POWERTOOLS_METRICS_NAMESPACE": "agentplane",
        }
        values.update(granted[permission] for permission in contract.permissions)
        module_name, _, function = runtime.handler.rpartition(".")
        with lambda_environment(values, grantable):
            handler = getattr(fresh_import(module_name), function)
        return DeployedAgent(name=contract.name, environment=values, unset=grantable, handler=handler)

    return _deploy
