"""Registry health updater: the decisions stream in, p50/p95, error rate and heartbeat per implementation out."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.registry_health.service import fold_batch
from functions.runtime.adapters import table
from functions.runtime.canonical import from_dynamodb_image
from functions.runtime.decisions import DecisionRecord
from functions.runtime.registry import DynamoRegistry

logger = Logger(service="registry-health")


@cache  # made on the first batch, not at import (boto3 is most of a cold start); kept while warm
def registry() -> DynamoRegistry:
    return DynamoRegistry(table(os.environ["REGISTRY_TABLE"]))


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> None:
    records: list[DecisionRecord] = []
    for record in event.get("Records", []):
        if record.get("eventName") != "INSERT":
            continue
        try:
            records.append(DecisionRecord.from_item(from_dynamodb_image(record["dynamodb"]["NewImage"])))
        except (KeyError, ValueError) as error:  # health is advisory: one odd record must not stall the rest
            logger.warning("decision record skipped", error=str(error)[:300])
    counted = fold_batch(records, registry())
    logger.info("registry health folded", calls=counted)
