"""Declared retention as agents apply it: an idempotency record expires when contracts.retention says."""

from __future__ import annotations

import time

import pytest

from contracts.retention import RETENTION
from tests.integration.fakes import Deploy, LambdaContext, Plane, scan
from tests.sample_events import load_event

pytestmark = pytest.mark.integration


def test_entity_tagger_idempotency_records_expire_after_the_declared_period(
    deploy: Deploy, plane: Plane, lambda_context: LambdaContext
) -> None:
    # GIVEN the tagger, deployed as infra deploys it
    tagger = deploy("entity-tagger")
    # WHEN it handles a decision.recorded event
    before = int(time.time())
    tagger(load_event("decision-recorded.json"), lambda_context)
    after = int(time.time())
    # THEN its idempotency record carries the expiry the table's TTL acts on: now + the declared period
    [record] = scan(plane.idempotency)
    declared = RETENTION["idempotency-records"].seconds
    assert before + declared <= int(record["expiration"]) <= after + declared
