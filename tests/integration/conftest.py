"""Fixtures: AWS faked with moto, the plane's resources, and agents deployed the way infra deploys them."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest
from moto import mock_aws

from contracts.capability import LambdaRuntime
from contracts.loader import load_contracts
from functions.runtime import adapters as aws
from tests.integration.fakes import (
    REGION,
    ColdStart,
    Deploy,
    DeployedAgent,
    LambdaContext,
    Plane,
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
def cold_start() -> Iterator[ColdStart]:
    """Import a module afresh, as a cold start does: its module-level code runs under the current environment.

    The module object is new, and afterwards the modules the test replaced are put back, so nothing a handler
    built at import (clients, workflows, agents) outlives the test or leaks into another suite in this process.
    """
    replaced: dict[str, ModuleType | None] = {}

    def _import(name: str) -> ModuleType:
        if name not in replaced:
            replaced[name] = sys.modules.get(name)
        sys.modules.pop(name, None)
        return importlib.import_module(name)

    yield _import
    for name, original in replaced.items():
        parent, _, child = name.rpartition(".")
        if original is None:
            sys.modules.pop(name, None)
            if parent in sys.modules and hasattr(sys.modules[parent], child):
                delattr(sys.modules[parent], child)
        else:
            sys.modules[name] = original
            if parent in sys.modules:
                setattr(sys.modules[parent], child, original)


@pytest.fixture
def deploy(plane: Plane, cold_start: ColdStart) -> Deploy:
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
            "AGENT_METRICS": ",".join(contract.telemetry.metrics),
            "AGENT_TTL_MS": str(runtime.effective_timeout_s(contract.slo) * 1000),
            "DECISIONS_TABLE": plane.decisions_table,
            "POWERTOOLS_SERVICE_NAME": contract.name,
            "POWERTOOLS_METRICS_NAMESPACE": "agentplane",
        }
        values.update(granted[permission] for permission in contract.permissions)
        module_name, _, function = runtime.handler.rpartition(".")
        with lambda_environment(values, grantable):
            handler = getattr(cold_start(module_name), function)
        return DeployedAgent(name=contract.name, environment=values, unset=grantable, handler=handler)

    return _deploy
