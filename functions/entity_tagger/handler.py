"""entity-tagger: enrich each recorded decision with the entities its claims mention (EventBridge target)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from contracts.models import DecisionRecordedDetail, EntityTags
from contracts.retention import RETENTION
from functions.entity_tagger.service import Gazetteer, tag
from functions.runtime import Agent
from functions.runtime.events import envelope_from_event

agent = Agent.from_environment(input_model=DecisionRecordedDetail, output_model=EntityTags)
gazetteer = Gazetteer.load(Path(os.environ["KNOWLEDGE_BASE_PATH"]))
# Keyed on the decision, not the event: a re-published decision.recorded is tagged once.
# Records expire as declared (the idempotency table's TTL deletes them after that).
idempotency = IdempotencyConfig(
    event_key_jmespath="detail.decision.decision_id",
    expires_after_seconds=RETENTION["idempotency-records"].seconds,
)
persistence = DynamoDBPersistenceLayer(table_name=os.environ["IDEMPOTENCY_TABLE"])


@agent.logger.inject_lambda_context
@agent.metrics.log_metrics
@idempotent(config=idempotency, persistence_store=persistence)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
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
