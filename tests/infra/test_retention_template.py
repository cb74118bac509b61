"""Retention in the synthesized plane: every log group, table, bucket, queue and archive keeps data exactly as
``contracts.retention`` declares, and nothing keeps it by accident forever."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import RemovalPolicy

from contracts.retention import DAY_S, LOG_RETENTION_DAYS, RETENTION, Retention
from infra.components.retention import RETENTION_METADATA, lifecycle_rules, log_retention, period
from tests.infra.assembly import (
    DECISIONS_TABLE,
    DOCUMENTS_BUCKET,
    IDEMPOTENCY_TABLE,
    LEDGER_DIGESTS_BUCKET,
    LEDGER_TABLE,
    Synthesized,
)

pytestmark = pytest.mark.infra

# Resource types that keep data, and the store a declaration of each must be for.
STORES = {
    "AWS::Logs::LogGroup": "logs",
    "AWS::DynamoDB::Table": "table",
    "AWS::S3::Bucket": "bucket",
    "AWS::SQS::Queue": "queue",
    "AWS::Events::Archive": "archive",
}


def declared(synthesized: Synthesized, lid: str) -> Retention:
    resource = synthesized.resources[lid]
    kind = resource.get("Metadata", {}).get(RETENTION_METADATA)
    assert kind is not None, (
        f"{lid} ({resource['Type']}) declares no retention: create it with infra.components.retention "
        "(log_group, lifecycle_rules, declare) and a kind from contracts/retention.py"
    )
    assert kind in RETENTION, f"{lid}: retention {kind!r} is not declared in contracts/retention.py"
    assert RETENTION[kind].store == STORES[resource["Type"]], f"{lid}: {kind!r} is not a {resource['Type']} retention"
    return RETENTION[kind]


def of_types(synthesized: Synthesized, resource_type: str) -> dict[str, dict[str, Any]]:
    found = synthesized.of_type(resource_type)
    assert found, f"the plane has no {resource_type}"
    return found


def test_every_log_group_keeps_events_as_declared(synthesized: Synthesized) -> None:
    for lid, group in of_types(synthesized, "AWS::Logs::LogGroup").items():
        retention = declared(synthesized, lid)
        assert group["Properties"]["RetentionInDays"] == retention.days, lid


def test_every_function_logs_to_a_declared_log_group_not_an_implicit_one(synthesized: Synthesized) -> None:
    # Without an explicit group Lambda creates /aws/lambda/<name> on first use, kept forever.
    for lid, function in of_types(synthesized, "AWS::Lambda::Function").items():
        group = function["Properties"].get("LoggingConfig", {}).get("LogGroup", {}).get("Ref")
        assert group is not None, f"{lid} has no log group of this stack"
        assert declared(synthesized, group).store == "logs"


def test_workflows_and_the_api_log_to_declared_groups(synthesized: Synthesized) -> None:
    for lid, machine in of_types(synthesized, "AWS::StepFunctions::StateMachine").items():
        (destination,) = machine["Properties"]["LoggingConfiguration"]["Destinations"]
        group = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
        assert declared(synthesized, group) == RETENTION["workflow-logs"], lid
    (stage,) = of_types(synthesized, "AWS::ApiGateway::Stage").values()
    access = stage["Properties"]["AccessLogSetting"]["DestinationArn"]["Fn::GetAtt"][0]
    assert declared(synthesized, access) == RETENTION["api-access-logs"]


def test_api_gateway_execution_logs_go_to_a_declared_group_created_before_the_stage(synthesized: Synthesized) -> None:
    # API Gateway writes execution logs to a group of this exact name, creating it (kept forever) if absent.
    (api,) = of_types(synthesized, "AWS::ApiGateway::RestApi")
    ((stage_lid, stage),) = of_types(synthesized, "AWS::ApiGateway::Stage").items()
    expected = {"Fn::Join": ["", ["API-Gateway-Execution-Logs_", {"Ref": api}, f"/{stage['Properties']['StageName']}"]]}
    (group,) = [
        lid
        for lid, res in of_types(synthesized, "AWS::Logs::LogGroup").items()
        if res["Properties"].get("LogGroupName") == expected
    ]
    assert declared(synthesized, group) == RETENTION["api-execution-logs"]
    assert group in synthesized.resources[stage_lid]["DependsOn"]


def test_tables_expire_items_only_where_declared(synthesized: Synthesized) -> None:
    for lid, table in of_types(synthesized, "AWS::DynamoDB::Table").items():
        retention = declared(synthesized, lid)
        ttl = table["Properties"].get("TimeToLiveSpecification")
        if retention.days is None:
            assert ttl is None, f"{lid} keeps its items ({retention.why}) but has a TTL"
        else:
            assert ttl is not None, f"{lid} expires items after {retention.days} days but has no TTL"
            assert ttl["Enabled"] is True


def test_ledger_entries_and_decisions_never_expire(synthesized: Synthesized) -> None:
    for lid in (LEDGER_TABLE, DECISIONS_TABLE):
        assert "TimeToLiveSpecification" not in synthesized.resources[lid]["Properties"], lid
        assert declared(synthesized, lid).days is None


def test_idempotency_records_expire_on_the_attribute_their_writer_sets(synthesized: Synthesized) -> None:
    ttl = synthesized.resources[IDEMPOTENCY_TABLE]["Properties"]["TimeToLiveSpecification"]
    # Powertools' DynamoDBPersistenceLayer writes the record's expiry (epoch seconds) to "expiration".
    assert ttl == {"AttributeName": "expiration", "Enabled": True}
    assert declared(synthesized, IDEMPOTENCY_TABLE) == RETENTION["idempotency-records"]


def test_every_bucket_has_lifecycle_rules_as_declared(synthesized: Synthesized) -> None:
    for lid, bucket in of_types(synthesized, "AWS::S3::Bucket").items():
        retention = declared(synthesized, lid)
        (rule,) = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
        assert rule["Status"] == "Enabled", lid
        assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}, lid
        assert rule.get("ExpirationInDays") == retention.days, lid
        noncurrent = rule.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays")
        assert noncurrent == retention.noncurrent_days, lid


def test_documents_expire_and_their_old_versions_sooner(synthesized: Synthesized) -> None:
    (rule,) = synthesized.resources[DOCUMENTS_BUCKET]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert rule["ExpirationInDays"] == RETENTION["documents"].days
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": RETENTION["documents"].noncurrent_days}


def test_ledger_digests_are_locked_for_the_declared_years_and_never_expired_in_prod(
    synthesized_prod: Synthesized,
) -> None:
    props = synthesized_prod.resources[LEDGER_DIGESTS_BUCKET]["Properties"]
    lock = props["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert lock == {"Mode": "COMPLIANCE", "Days": RETENTION["ledger-digests"].locked_days}
    (rule,) = props["LifecycleConfiguration"]["Rules"]
    assert "ExpirationInDays" not in rule
    assert "NoncurrentVersionExpiration" not in rule


def test_queues_and_the_event_archive_keep_messages_as_declared(synthesized: Synthesized) -> None:
    for lid, queue in of_types(synthesized, "AWS::SQS::Queue").items():
        days = declared(synthesized, lid).days
        assert days is not None
        assert queue["Properties"]["MessageRetentionPeriod"] == days * DAY_S, lid
    for lid, archive in of_types(synthesized, "AWS::Events::Archive").items():
        assert archive["Properties"]["RetentionDays"] == declared(synthesized, lid).days, lid


def test_every_declared_log_retention_is_a_period_cloudwatch_accepts() -> None:
    for kind, retention in RETENTION.items():
        if retention.store == "logs":
            assert retention.days in LOG_RETENTION_DAYS, kind
            assert log_retention(kind).name  # maps onto CDK's enum


def test_an_undeclared_kind_is_refused_naming_the_declared_ones() -> None:
    with pytest.raises(KeyError, match=r"no retention declared for 'scratch' \(declared: access-log-objects, "):
        lifecycle_rules("scratch")


def test_a_kept_forever_kind_has_no_expiry_period() -> None:
    with pytest.raises(ValueError, match="retention 'ledger-entries' declares no expiry period"):
        period("ledger-entries")


@pytest.mark.parametrize(
    ("retention", "ttl", "says"),
    [
        ("ledger-entries", "expiration", "retention 'ledger-entries' keeps items, so it cannot have a ttl attribute"),
        ("idempotency-records", None, "retention 'idempotency-records' expires items, so it needs a ttl attribute"),
    ],
)
def test_a_table_whose_ttl_contradicts_its_retention_is_refused(
    synthesized: Synthesized, retention: str, ttl: str | None, says: str
) -> None:
    # Refused before any construct is added, so the session's stack is left as it was.
    data = synthesized.stack.data
    with pytest.raises(ValueError, match=says):
        data.private_table(
            data, "Probe", partition="id", ttl=ttl, retention=retention, removal_policy=RemovalPolicy.DESTROY
        )
    assert data.node.try_find_child("Probe") is None
