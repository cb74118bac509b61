"""The registry table on moto: deploy's upsert, the dispatcher's circuit and the stream's health never clobber."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest

from contracts.registry import KEY, Implementation, static_item
from functions.registry_health.service import fold_batch
from functions.runtime.decisions import DecisionRecord
from functions.runtime.registry import DynamoRegistry
from functions.runtime.routing import Breaker

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
BREAKER = Breaker(consecutive_failures=2, cool_down_s=30)


@pytest.fixture
def table(mocked_aws: None):  # type: ignore[no-untyped-def]
    dynamodb = boto3.resource("dynamodb")
    created = dynamodb.create_table(
        TableName="registry",
        KeySchema=[{"AttributeName": KEY, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": KEY, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return created


def deploy(table, name: str = "verifier", version: str = "1.0.0", group: str = "") -> None:  # type: ignore[no-untyped-def]
    """What the deploy-time custom resource does: SET the static attributes only."""
    implementation = Implementation(
        name=name,
        agent=name,
        capabilities=["fact-check"],
        contract_version=version,
        runtime="lambda",
        target=f"arn:fn:{name}:live",
        fallback=["approximate", "human"],
        deployment_group=group,
    )
    attributes = static_item(implementation)
    table.update_item(
        Key={KEY: name},
        UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in attributes),
        ExpressionAttributeNames={f"#{k}": k for k in attributes},
        ExpressionAttributeValues={f":{k}": v for k, v in attributes.items()},
    )


def record(agent: str, *, ok: bool, ms: float, at: datetime, actor: str | None = None) -> DecisionRecord:
    return DecisionRecord(
        correlation_id="run-1",
        step_key=f"run-1/{at.isoformat()}",
        trace_id="1-6745a1b2-5e0c3d9a7b1f42e68c0d9a31",
        causation_id="run-1/x",
        agent=agent,
        agent_version="1.0.0",
        capability="fact-check",
        capability_version="1.0.0",
        status="SUCCEEDED" if ok else "FAILED",
        actor=actor or f"agent:{agent}",
        input_json="{}",
        input_sha256="0" * 64,
        started_at=at,
        finished_at=at,
        duration_ms=ms,
    )


def test_a_deployed_entry_reads_back_with_a_closed_circuit_and_no_health(table) -> None:  # type: ignore[no-untyped-def]
    deploy(table)

    (found,) = DynamoRegistry(table).implementations()

    assert found.name == "verifier"
    assert found.fallback == ["approximate", "human"]
    assert found.circuit.state == "closed"
    assert found.health.samples == 0


def test_an_entry_records_the_deployment_group_that_rolls_it_out(table) -> None:  # type: ignore[no-untyped-def]
    # GIVEN a primary rolled out by a deployment group, and a variant no group rolls out
    deploy(table, group="agentplane-verifier")
    deploy(table, name="verifier~approximate")

    # WHEN the registry is read
    found = {i.name: i for i in DynamoRegistry(table).implementations()}

    # THEN each entry carries its group's name, or none, beside the alias it targets
    assert found["verifier"].deployment_group == "agentplane-verifier"
    assert found["verifier"].target == "arn:fn:verifier:live"
    assert found["verifier~approximate"].deployment_group == ""


def test_an_entry_written_before_rollouts_reads_back_with_no_deployment_group(table) -> None:  # type: ignore[no-untyped-def]
    # GIVEN an entry a previous release wrote, without the attribute
    deploy(table)
    table.update_item(Key={KEY: "verifier"}, UpdateExpression="REMOVE deployment_group")

    (found,) = DynamoRegistry(table).implementations()

    assert found.deployment_group == ""


def test_outcomes_open_the_circuit_and_a_redeploy_keeps_it(table) -> None:  # type: ignore[no-untyped-def]
    deploy(table)
    registry = DynamoRegistry(table)

    registry.observe("verifier", succeeded=False, now=T0, breaker=BREAKER)
    registry.observe("verifier", succeeded=False, now=T0, breaker=BREAKER)
    deploy(table, version="1.1.0")

    (found,) = registry.implementations()
    assert found.contract_version == "1.1.0"
    assert found.circuit.state == "open"
    assert found.circuit.reason == "2 consecutive failures"
    assert int(table.get_item(Key={KEY: "verifier"})["Item"]["circuit_version"]) == 2


def test_the_stream_folds_decision_records_into_health_per_implementation(table) -> None:  # type: ignore[no-untyped-def]
    deploy(table)
    deploy(table, name="verifier~approximate")
    registry = DynamoRegistry(table, cache_s=0)
    batch = [
        record("verifier", ok=True, ms=10, at=T0),
        record("verifier", ok=False, ms=30, at=T0 + timedelta(seconds=1)),
        record("verifier", ok=True, ms=20, at=T0 + timedelta(seconds=2), actor="agent:verifier~approximate"),
        record("approval-gate", ok=True, ms=5, at=T0, actor="human:arn:aws:sts::1:assumed-role/a/b"),
    ]

    counted = fold_batch(batch, registry)

    assert counted == {"verifier": 2, "verifier~approximate": 1}
    health = {i.name: i.health for i in registry.implementations()}
    assert health["verifier"].samples == 2
    assert health["verifier"].error_rate == 0.5
    assert health["verifier"].p95_ms == 30
    assert health["verifier"].last_heartbeat == T0 + timedelta(seconds=1)
    assert health["verifier~approximate"].samples == 1


def test_health_for_an_implementation_no_longer_registered_is_dropped(table) -> None:  # type: ignore[no-untyped-def]
    DynamoRegistry(table).record_health("gone", [(1.0, True, T0)])

    assert "Item" not in table.get_item(Key={KEY: "gone"})
