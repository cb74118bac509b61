"""The audit ledger in the template: stream mapping, signing key, write-once digest bucket, schedule."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.assembly import (
    DECISIONS_TABLE,
    LEDGER_DIGESTS_BUCKET,
    LEDGER_SIGNING_KEY,
    LEDGER_TABLE,
    Synthesized,
)

pytestmark = pytest.mark.infra


def resource(synthesized: Synthesized, logical_id: str) -> dict[str, Any]:
    found: dict[str, Any] = synthesized.template["Resources"][logical_id]
    return found


def test_the_decisions_stream_feeds_the_appender_with_partial_batch_reporting(synthesized: Synthesized) -> None:
    (props,) = [
        m["Properties"]
        for m in synthesized.of_type("AWS::Lambda::EventSourceMapping").values()
        if "Ref" in m["Properties"]["FunctionName"]  # agents' mappings name their alias, qualified
        and resource(synthesized, m["Properties"]["FunctionName"]["Ref"])["Properties"]["Handler"]
        == "functions.ledger_appender.handler.lambda_handler"
    ]

    assert props["EventSourceArn"] == {"Fn::GetAtt": [DECISIONS_TABLE, "StreamArn"]}
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["BisectBatchOnFunctionError"] is True
    assert props["StartingPosition"] == "TRIM_HORIZON"
    destination = props["DestinationConfig"]["OnFailure"]["Destination"]
    assert resource(synthesized, destination["Fn::GetAtt"][0])["Type"] == "AWS::SQS::Queue"
    function = resource(synthesized, props["FunctionName"]["Ref"])
    assert function["Properties"]["Handler"] == "functions.ledger_appender.handler.lambda_handler"


def test_digests_are_signed_with_an_asymmetric_p256_key(synthesized: Synthesized) -> None:
    key = resource(synthesized, LEDGER_SIGNING_KEY)["Properties"]
    assert (key["KeySpec"], key["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")

    signers = [
        statement
        for policy in synthesized.of_type("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "kms:Sign" in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    ]
    assert len(signers) == 1, "only the digest function may sign"
    assert signers[0]["Resource"] == {"Fn::GetAtt": [LEDGER_SIGNING_KEY, "Arn"]}


def test_digests_land_in_a_compliance_mode_object_lock_bucket_in_prod(synthesized_prod: Synthesized) -> None:
    bucket = resource(synthesized_prod, LEDGER_DIGESTS_BUCKET)["Properties"]

    assert bucket["ObjectLockEnabled"] is True
    retention = bucket["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert retention["Mode"] == "COMPLIANCE"
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    encryption = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert encryption["SSEAlgorithm"] == "aws:kms"


def test_the_ledger_table_is_encrypted_recoverable_and_indexed_by_trace(synthesized: Synthesized) -> None:
    table = resource(synthesized, LEDGER_TABLE)["Properties"]

    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert [index["IndexName"] for index in table["GlobalSecondaryIndexes"]] == ["ByTrace"]
    assert "TimeToLiveSpecification" not in table  # ledger entries never expire


def test_a_digest_is_scheduled(synthesized: Synthesized) -> None:
    schedules = [
        r for r in synthesized.of_type("AWS::Events::Rule").values() if "ScheduleExpression" in r["Properties"]
    ]

    (rule,) = schedules
    assert rule["Properties"]["ScheduleExpression"].startswith("rate(")
    (target,) = rule["Properties"]["Targets"]
    digester = resource(synthesized, target["Arn"]["Fn::GetAtt"][0])["Properties"]
    assert digester["Handler"] == "functions.ledger_digest.handler.lambda_handler"
    assert digester["ReservedConcurrentExecutions"] == 1
    # Each digest signs the schedule's period as interval_s, and `audit verify` judges a digest's age by it.
    amount, unit = rule["Properties"]["ScheduleExpression"].removeprefix("rate(").removesuffix(")").split()
    seconds = int(amount) * {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600}[unit]
    assert digester["Environment"]["Variables"]["DIGEST_INTERVAL_S"] == str(seconds)
