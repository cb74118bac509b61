"""entity-tagger: enrich each recorded decision with the entities its claims mention (EventBridge, via SQS).

Bursty, so its events arrive through a queue in batches (SQS event source); a rule can also target it
directly, so a bare EventBridge event is handled too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from contracts.models import DecisionRecordedDetail, EntityTags
from contracts.retention import RETENTION
from contracts.validation import first_error
from functions.entity_tagger.service import Gazetteer, tag
from functions.runtime import Agent, BadInput
from functions.runtime.events import envelope_from_event

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

agent = Agent.from_environment(input_model=DecisionRecordedDetail, output_model=EntityTags)
gazetteer = Gazetteer.load(Path(os.environ["KNOWLEDGE_BASE_PATH"]))
processor = BatchProcessor(event_type=EventType.SQS)


def _tag_event(event: dict[str, Any]) -> dict[str, Any]:
    envelope = envelope_from_event(
        event,
        capability=agent.identity.capabilities[0],
        version=agent.identity.version,
        ttl_ms=int(os.environ.get("AGENT_TTL_MS", "60000")),
        now=datetime.now(UTC),
    )
    return agent.run(
        envelope,
        lambda detail, _step: tag(detail, gazetteer=gazetteer),
        lambda tags: {"entities_tagged": len(tags.entities)},
    )


@cache
def _idempotent() -> tuple[IdempotencyConfig, Callable[..., dict[str, Any]]]:
    """Tagging made at most once per decision, built on the first event: the idempotency utility and its
    DynamoDB persistence layer (which import boto3) are most of this function's cold start."""
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    from functions.runtime.adapters import client

    # Keyed on the decision, not the event: a re-published decision.recorded is tagged once.
    # Records expire as declared (the idempotency table's TTL deletes them after that).
    config = IdempotencyConfig(
        event_key_jmespath="detail.decision.decision_id",
        expires_after_seconds=RETENTION["idempotency-records"].seconds,
    )
    persistence = DynamoDBPersistenceLayer(table_name=os.environ["IDEMPOTENCY_TABLE"], boto3_client=client("dynamodb"))
    tag_once: Callable[..., dict[str, Any]] = idempotent_function(
        data_keyword_argument="event", config=config, persistence_store=persistence
    )(_tag_event)
    return config, tag_once


def tag_event(event: dict[str, Any]) -> dict[str, Any]:
    # Checked before the idempotency lookup: a malformed event is refused, never answered from an earlier one.
    try:
        DecisionRecordedDetail.model_validate(event.get("detail"))
    except ValidationError as exc:
        raise BadInput(f"event detail {first_error(exc)}") from None
    return _idempotent()[1](event=event)


def tag_record(record: SQSRecord) -> dict[str, Any]:
    return tag_event(event=json.loads(record.body))


@agent.logger.inject_lambda_context
@agent.metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    _idempotent()[0].register_lambda_context(context)
    if "Records" in event:
        response = process_partial_response(
            event=event, record_handler=tag_record, processor=processor, context=context
        )
        return dict(response)
    return tag_event(event=event)
