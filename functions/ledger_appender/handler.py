"""Ledger appender: the decisions stream in, hash-chained entries out; failures reported per record."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.ledger_appender.service import append_record, process_stream_batch
from functions.runtime.adapters import table
from functions.runtime.canonical import from_dynamodb_image
from functions.runtime.ledger_store import DynamoLedgerStore

logger = Logger(service="ledger-appender")


def now() -> str:
    return datetime.now(UTC).isoformat()


def append(record: Mapping[str, Any]) -> None:
    if record.get("eventName") != "INSERT":
        return  # decisions are append-only: an update or removal is not a decision and is not chained
    try:
        result = append_record(
            from_dynamodb_image(record["dynamodb"]["NewImage"]),
            store=DynamoLedgerStore(table(os.environ["LEDGER_TABLE"])),
            now=now,
        )
    except Exception:
        logger.exception("ledger append failed", sequence=record["dynamodb"].get("SequenceNumber"))
        raise
    logger.info("ledger append", outcome=result.outcome, record_id=result.record_id, chain=result.chain_id)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    return process_stream_batch(event.get("Records", []), append)
