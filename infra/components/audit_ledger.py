"""The audit ledger: decisions stream → appender → hash chains; a scheduled, KMS-signed digest → Object Lock bucket."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.components.data_store import DataStore
from infra.components.nag import STREAM_CONSUMER_REASON, acknowledge, logical_id
from infra.components.platform_function import platform_function
from infra.components.queues import dead_letter_queue
from infra.components.retention import period

TRACE_INDEX = "ByTrace"
# A sandbox's digests are locked in GOVERNANCE mode this long: a throwaway stack can be emptied and deleted.
SANDBOX_LOCK = Duration.days(1)


class AuditLedger(Construct):
    """Logical ids of the table, signing key and digest bucket are public API: changing one loses the ledger."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        data: DataStore,
        layers: list[lambda_.ILayerVersion],
        digest_interval: Duration = Duration.minutes(15),
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        compliance_lock: bool = True,
    ) -> None:
        """``compliance_lock``: digests cannot be deleted by anyone for the declared retention (prod); otherwise
        GOVERNANCE for :data:`SANDBOX_LOCK` (s3:BypassGovernanceRetention can delete them)."""
        super().__init__(scope, construct_id)
        self.digest_interval = digest_interval
        self.table = data.private_table(
            self,
            "Entries",
            partition="chain_id",
            sort="seq",
            sort_type=dynamodb.AttributeType.NUMBER,
            retention="ledger-entries",
            removal_policy=removal_policy,
        )
        self.table.add_global_secondary_index(
            index_name=TRACE_INDEX,
            partition_key=dynamodb.Attribute(name="trace_id", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="appended_at", type=dynamodb.AttributeType.STRING),
        )
        self.signing_key = kms.Key(
            self,
            "SigningKey",
            description="agentplane audit ledger: signs digests (ECDSA P-256); verifying needs only its public key",
            key_spec=kms.KeySpec.ECC_NIST_P256,
            key_usage=kms.KeyUsage.SIGN_VERIFY,
            removal_policy=removal_policy,
        )
        self.digests = data.private_bucket(
            self,
            "Digests",
            log_prefix="digests/",
            retention="ledger-digests",
            removal_policy=removal_policy,
            object_lock_enabled=True,
            object_lock_default_retention=(
                s3.ObjectLockRetention.compliance(period("ledger-digests", locked=True))
                if compliance_lock
                else s3.ObjectLockRetention.governance(SANDBOX_LOCK)
            ),
        )
        self.appender = platform_function(
            self,
            "Appender",
            "ledger_appender",
            layers,
            data=data,
            description="agentplane ledger appender: decisions stream -> hash chains",
            environment={"LEDGER_TABLE": self.table.table_name},
            wildcard_reason=STREAM_CONSUMER_REASON,
        )
        self.failed_batches = dead_letter_queue(self, "AppenderFailures", holds="the appender's on-failure destination")
        self.appender.add_event_source(
            sources.DynamoEventSource(
                data.decisions,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=100,
                bisect_batch_on_error=True,
                report_batch_item_failures=True,
                retry_attempts=10,
                on_failure=sources.SqsDlq(self.failed_batches),
            )
        )
        self.appender.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"],
                resources=[self.table.table_arn],
            )
        )
        self.digester = platform_function(
            self,
            "Digester",
            "ledger_digest",
            layers,
            data=data,
            description="agentplane ledger digest: signed Merkle digest of new entries and all chain heads",
            environment={
                "LEDGER_TABLE": self.table.table_name,
                "DIGESTS_BUCKET": self.digests.bucket_name,
                "SIGNING_KEY_ID": self.signing_key.key_arn,
                "DIGEST_INTERVAL_S": str(int(digest_interval.to_seconds())),
            },
            reserved_concurrency=1,
        )
        self.digester.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:UpdateItem"],
                resources=[self.table.table_arn],
            )
        )
        self.digester.add_to_role_policy(
            iam.PolicyStatement(actions=["kms:Sign", "kms:GetPublicKey"], resources=[self.signing_key.key_arn])
        )
        self.digester.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:GetObject"], resources=[self.digests.arn_for_objects("digests/*")]
            )
        )
        self.digester.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[self.digests.bucket_arn])
        )
        acknowledge(
            self.digester.role,  # type: ignore[arg-type]
            f"AwsSolutions-IAM5[Resource::<{logical_id(self.digests)}.Arn>/digests/*]",
            "digest objects are numbered at run time under digests/",
        )
        self.schedule = events.Rule(
            self,
            "DigestSchedule",
            description="sign a ledger digest",
            schedule=events.Schedule.rate(digest_interval),
            targets=[targets.LambdaFunction(self.digester, retry_attempts=2)],
        )
