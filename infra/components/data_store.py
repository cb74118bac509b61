"""Durable state: the decisions, executions and idempotency tables and the documents bucket, under one key."""

from __future__ import annotations

from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from contracts.retention import retention as retention_of
from infra.components.retention import declare, lifecycle_rules


class DataStore(Construct):
    """Everything a run leaves behind. Logical ids here are public API: renaming one replaces data."""

    def __init__(self, scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy = RemovalPolicy.RETAIN):
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "DataKey",
            description="agentplane: decisions, executions, idempotency and documents at rest",
            enable_key_rotation=True,
            removal_policy=removal_policy,
        )
        self.decisions = self.private_table(
            self,
            "Decisions",
            partition="correlation_id",
            sort="step_key",
            stream=dynamodb.StreamViewType.NEW_IMAGE,  # feeds the audit ledger
            retention="decisions",
            removal_policy=removal_policy,
        )
        self.executions = self.private_table(
            self, "Executions", partition="execution_id", retention="executions", removal_policy=removal_policy
        )
        self.idempotency = self.private_table(
            self,
            "Idempotency",
            partition="id",
            ttl="expiration",
            retention="idempotency-records",
            removal_policy=removal_policy,
        )
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,  # S3 server access logging cannot write to SSE-KMS
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=lifecycle_rules("access-log-objects"),
            removal_policy=removal_policy,
        )
        declare(self.access_logs, "access-log-objects")
        self.documents = self.private_bucket(
            self, "Documents", log_prefix="documents/", retention="documents", removal_policy=removal_policy
        )

    def private_bucket(
        self,
        scope: Construct,
        construct_id: str,
        *,
        log_prefix: str,
        retention: str | None = None,
        removal_policy: RemovalPolicy,
        **extra: Any,
    ) -> s3.Bucket:
        """KMS (data key), versioned, TLS-only, never public, access-logged, expired as ``retention`` declares.

        ``retention`` names a kind in ``contracts.retention``; the template tests require every bucket to have one.
        """
        bucket = s3.Bucket(
            scope,
            construct_id,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix=log_prefix,
            lifecycle_rules=lifecycle_rules(retention) if retention is not None else None,
            removal_policy=removal_policy,
            **extra,
        )
        if retention is not None:
            declare(bucket, retention)
        return bucket

    def private_table(
        self,
        scope: Construct,
        construct_id: str,
        *,
        partition: str,
        sort: str | None = None,
        sort_type: dynamodb.AttributeType = dynamodb.AttributeType.STRING,
        stream: dynamodb.StreamViewType | None = None,
        ttl: str | None = None,
        retention: str | None = None,
        removal_policy: RemovalPolicy,
    ) -> dynamodb.Table:
        """On-demand, encrypted with the data key, point-in-time recoverable, protected when retained.

        ``retention`` names a kind in ``contracts.retention`` (the template tests require every table to have one);
        ``ttl`` is the attribute that expires items, required exactly when that kind expires them.
        """
        if retention is not None and (retention_of(retention).days is None) != (ttl is None):
            expires = retention_of(retention).days is not None
            raise ValueError(
                f"table {construct_id}: retention {retention!r} {'expires' if expires else 'keeps'} items, "
                f"so it {'needs' if expires else 'cannot have'} a ttl attribute"
            )
        table = dynamodb.Table(
            scope,
            construct_id,
            partition_key=dynamodb.Attribute(name=partition, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=sort, type=sort_type) if sort else None,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            stream=stream,
            time_to_live_attribute=ttl,
            deletion_protection=removal_policy == RemovalPolicy.RETAIN,
            removal_policy=removal_policy,
        )
        if retention is not None:
            declare(table, retention)
        return table
