"""Every agent's Lambda handler, deployed from its contract and invoked with events, against moto."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from contracts.models import Decision, DocReviewRequest
from functions.api.service import claim_check
from functions.decision_recorder.service import decision_id_for
from functions.intake.service import BadRequestRef, NoClaimsFound
from functions.runtime import BadInput, DeadlineExceeded, DecisionRecord, DynamoDecisionStore
from functions.runtime.admission import DynamoAdmissionSlots, admission_key
from functions.runtime.canonical import canonical_json, sha256_hex
from functions.runtime.executions import DynamoExecutionStore, ExecutionItem
from tests.integration.fakes import (
    REGION,
    TRACE_ID,
    ColdStart,
    Deploy,
    LambdaContext,
    Plane,
    create_table,
    envelope,
    lambda_environment,
    scan,
)
from tests.sample_events import load_event

pytestmark = [
    pytest.mark.integration,
    # A step refused before its service runs, or answered by the idempotency layer, adds no metric.
    pytest.mark.filterwarnings("ignore:No application metrics to publish"),
]


def records(plane: Plane, run: str) -> list[DecisionRecord]:
    return DynamoDecisionStore(plane.decisions).list(run)


def document_keys(plane: Plane) -> list[str]:
    listed = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=plane.documents_bucket)
    return [o["Key"] for o in listed.get("Contents", [])]


def start_run(plane: Plane, run: str) -> None:
    """The executions item the API writes when it starts a run (the recorders update it)."""
    DynamoExecutionStore(plane.executions).put(
        ExecutionItem(
            execution_id=run,
            workflow="doc-review",
            execution_arn=f"arn:aws:states:{REGION}:123456789012:execution:doc-review:{run}",
            trace_id=TRACE_ID,
            submitted_at=datetime.now(UTC).isoformat(),
            request_sha256="0" * 64,
        )
    )


class BusTap:
    """An SQS queue behind a rule on the plane's bus: what the bus delivers for a detail type."""

    def __init__(self, plane: Plane, detail_type: str) -> None:
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.queue_url = self.sqs.create_queue(QueueName="bus-tap")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events = boto3.client("events", region_name=REGION)
        events.put_rule(
            Name="tap",
            EventBusName=plane.event_bus,
            EventPattern=json.dumps({"source": ["agentplane"], "detail-type": [detail_type]}),
        )
        events.put_targets(Rule="tap", EventBusName=plane.event_bus, Targets=[{"Id": "queue", "Arn": queue_arn}])

    def delivered(self) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]


@dataclass(frozen=True)
class Review:
    run: str
    taken: dict[str, Any]
    verdicts: list[dict[str, Any]]
    risk: dict[str, Any]


def review(deploy: Deploy, context: LambdaContext, request: dict[str, Any]) -> Review:
    """The doc-review steps before the decision, each handler called as the coordinator calls it."""
    run = str(uuid.uuid4())
    taken = deploy("document-intake")(
        envelope("document-intake", {"request": request}, correlation_id=run, step="Intake"), context
    )
    verifier = deploy("evidence-verifier")
    verdicts = [
        verifier(
            envelope(
                "fact-check",
                {"claim": claim, "document_ref": taken["document_ref"]},
                correlation_id=run,
                step=f"VerifyClaim/{n}",
            ),
            context,
        )
        for n, claim in enumerate(taken["claims"])
    ]
    risk = deploy("risk-scorer")(
        envelope(
            "risk-scoring", {"claims": taken["claims"], "verdicts": verdicts}, correlation_id=run, step="ScoreRisk"
        ),
        context,
    )
    return Review(run=run, taken=taken, verdicts=verdicts, risk=risk)


# --- document-intake ------------------------------------------------------------------------------


def test_intake_stores_the_document_and_records_the_decision(
    deploy: Deploy, plane: Plane, lambda_context: LambdaContext
) -> None:
    # GIVEN the intake agent and the sample vendor memo in an envelope
    intake = deploy("document-intake")
    event = envelope("document-intake", {"request": load_event("doc-review-request.json")}, step="Intake")

    # WHEN the step runs
    result = intake(event, lambda_context)

    # THEN the result holds the memo's claims and a reference to the stored document
    assert result["title"] == "Vendor assessment: Northwind Analytics"
    assert [c["claim_id"] for c in result["claims"]] == [f"c-{n:03d}" for n in range(1, 11)]
    ref = result["document_ref"]
    assert ref["bucket"] == plane.documents_bucket
    assert ref["key"] == f"documents/{ref['sha256']}.json"
    # AND the stored object is the document, under its own content hash
    body = boto3.client("s3", region_name=REGION).get_object(Bucket=plane.documents_bucket, Key=ref["key"])
    stored = body["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == ref["sha256"]
    assert len(stored) == ref["size_bytes"]
    assert json.loads(stored)["title"] == result["title"]
    # AND one decision record says who decided what, on which input, keyed by the causation id
    [record] = records(plane, event["correlation_id"])
    assert record.step_key == event["causation_id"] == f"{event['correlation_id']}/Intake"
    assert (record.status, record.agent, record.agent_version) == ("SUCCEEDED", "document-intake", "3.0.0")
    assert (record.capability, record.capability_version, record.trace_id) == ("document-intake", "1.0.0", TRACE_ID)
    assert record.input_sha256 == hashlib.sha256(record.input_json.encode()).hexdigest()
    assert json.loads(record.input_json) == event["payload"]
    assert record.output() == result
    assert record.duration_ms >= 0
    assert record.finished_at >= record.started_at


def test_intake_duplicate_delivery_returns_the_same_output_and_records_once(
    deploy: Deploy, plane: Plane, lambda_context: LambdaContext
) -> None:
    # GIVEN an intake step that already ran
    intake = deploy("document-intake")
    event = envelope("document-intake", {"request": load_event("doc-review-request.json")}, step="Intake")
    first = intake(event, lambda_context)

    # WHEN the same envelope is delivered again
    second = intake(event, lambda_context)

    # THEN it answers the same, and the run still has exactly one (succeeded) record of the step
    assert second == first
    assert [(r.step_key, r.status) for r in records(plane, event["correlation_id"])] == [
        (event["causation_id"], "SUCCEEDED")
    ]
    assert len(document_keys(plane)) == 1


def test_intake_duplicate_delivery_answers_from_the_record(
    deploy: Deploy, plane: Plane, lambda_context: LambdaContext
) -> None:
    # GIVEN an intake step that already ran, whose recorded output differs from what a rerun would compute
    intake = deploy("document-intake")
    event = envelope("document-intake", {"request": load_event("doc-review-request.json")}, step="Intake")
    first = intake(event, lambda_context)
    recorded = {**first, "title": "as recorded the first time"}
    plane.decisions.update_item(
        Key={"correlation_id": event["correlation_id"], "step_key": event["causation_id"]},
        UpdateExpression="SET output_json = :o",
        ExpressionAttributeValues={":o": json.dumps(recorded)},
    )

    # WHEN the envelope is redelivered
    second = intake(event, lambda_context)

    # THEN the first decision is what the caller gets: a step is decided once
    assert second == recorded


def test_intake_refuses_a_stale_envelope_without_running(
    deploy: Deploy, plane: Plane, lambda_context: LambdaContext
) -> None:
    # GIVEN an envelope whose deadline passed a minute ago
    intake = deploy("document-intake")
    event = envelope(
        "document-intake",
        load_event("doc-review-request.json"),
        step="Intake",
        ttl_ms=1000,
        now=datetime.now(UTC) - timedelta(minutes=1),
    )

    # WHEN it is delivered THEN the step is refused as DeadlineExceeded
    with pytest.raises(DeadlineExceeded, match="passed before the step started"):
        intake(event, lambda_context)

    # AND the service never ran: nothing was stored
    assert document_keys(plane) == []
    # AND the refusal is on record
    [record] = records(plane, event["correlation_id"])
    assert (record.status, record.error_type, record.output_json) == ("FAILED", "DeadlineExceeded", None)
    assert record.step_key.startswith(f"{event['causation_id']}#failed#")


def test_intake_reads_a_claim_checked_request_and_refuses_one_that_is_not_what_its_reference_says(
    deploy: Deploy, plane: Plane, lambda_context: LambdaContext
) -> None:
    # GIVEN the API's claim-check of a large multi-byte request: the run carries only its reference
    request = load_event("doc-review-request.json")
    request["metadata"] = {f"note-{n}": "ü" * 10_000 for n in range(20)}
    body = canonical_json(DocReviewRequest.model_validate(request).model_dump(mode="json"))
    stored = StubRequests(plane.documents_bucket)
    ref = claim_check(body, sha256_hex(body.encode()), stored).model_dump(mode="json")
    intake = deploy("document-intake")

    # WHEN intake is given the reference
    result = intake(envelope("document-intake", {"request_ref": ref}, step="Intake"), lambda_context)

    # THEN it reads the request, stores the document and extracts its claims
    assert result["claims"]
    assert result["document_ref"]["key"] in document_keys(plane)
    # AND a reference whose digest does not match what is stored is refused
    forged = {**ref, "sha256": "f" * 64}
    with pytest.raises(BadRequestRef, match="not the one referenced"):
        intake(envelope("document-intake", {"request_ref": forged}, step="Intake"), lambda_context)


class StubRequests:
    """The API's request store, writing where the API would (the documents bucket)."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    def put(self, key: str, body: bytes) -> None:
        boto3.client("s3", region_name=REGION).put_object(Bucket=self.bucket, Key=key, Body=body)


def test_intake_rejects_a_payload_that_breaks_the_contract(
    deploy: Deploy, plane: Plane, lambda_context: LambdaContext
) -> None:
    # GIVEN a request whose title is a number (the malformed sample)
    intake = deploy("document-intake")
    event = envelope("document-intake", {"request": load_event("doc-review-malformed.json")}, step="Intake")

    # WHEN it is delivered THEN BadInput names the offending field
    with pytest.raises(BadInput, match=r"document\.title"):
        intake(event, lambda_context)

    # AND nothing was stored, and the failure is on record
    assert document_keys(plane) == []
    [record] = records(plane, event["correlation_id"])
    assert (record.status, record.error_type) == ("FAILED", "BadInput")
    assert record.error_message is not None
    assert "document.title" in record.error_message


def test_intake_refuses_a_capability_it_does_not_serve(
    deploy: Deploy, plane: Plane, lambda_context: LambdaContext
) -> None:
    # GIVEN an envelope addressed to another capability
    intake = deploy("document-intake")
    event = envelope("fact-check", load_event("doc-review-request.json"), step="Intake")

    # WHEN it is delivered to intake THEN it is refused, naming what intake serves
    with pytest.raises(BadInput, match=r"'fact-check' is not served by document-intake \(serves document-intake\)"):
        intake(event, lambda_context)
    assert document_keys(plane) == []


def test_intake_fails_a_document_without_claims(deploy: Deploy, plane: Plane, lambda_context: LambdaContext) -> None:
    # GIVEN a document that only asks questions
    intake = deploy("document-intake")
    event = envelope("document-intake", {"request": load_event("doc-review-no-claims.json")}, step="Intake")

    # WHEN it is taken in THEN NoClaimsFound says what was found instead
    with pytest.raises(NoClaimsFound, match="no checkable claim in 'Open questions for Northwind Analytics'"):
        intake(event, lambda_context)

    # AND nothing was stored, and the failure is on record under the error's name
    assert document_keys(plane) == []
    [record] = records(plane, event["correlation_id"])
    assert (record.status, record.error_type) == ("FAILED", "NoClaimsFound")


# --- evidence-verifier, risk-scorer ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("claim_id", "label"),
    [("c-001", "supported"), ("c-006", "refuted"), ("c-009", "not-enough-info")],
)
def test_evidence_verifier_gives_the_verdict_the_knowledge_base_supports(
    deploy: Deploy, plane: Plane, lambda_context: LambdaContext, claim_id: str, label: str
) -> None:
    # GIVEN a claim of the sample memo, taken in
    run = str(uuid.uuid4())
    taken = deploy("document-intake")(
        envelope(
            "document-intake", {"request": load_event("doc-review-request.json")}, correlation_id=run, step="Intake"
        ),
        lambda_context,
    )
    claim = next(c for c in taken["claims"] if c["claim_id"] == claim_id)
    verifier = deploy("evidence-verifier")
    event = envelope(
        "fact-check", {"claim": claim, "document_ref": taken["document_ref"]}, correlation_id=run, step="VerifyClaim/0"
    )

    # WHEN the verifier checks it
    verdict = verifier(event, lambda_context)

    # THEN the verdict is the one the knowledge base warrants, with evidence when it found any
    assert verdict["claim_id"] == claim_id
    assert verdict["label"] == label
    assert 0 <= verdict["confidence"] <= 1
    if label != "not-enough-info":
        assert verdict["evidence"]
    # AND the verifier's step is on record next to intake's
    recorded = {r.step_key: r for r in records(plane, run)}
    assert recorded[f"{run}/VerifyClaim/0"].agent == "evidence-verifier"
    assert recorded[f"{run}/VerifyClaim/0"].capability == "fact-check"
    assert recorded[f"{run}/VerifyClaim/0"].output() == verdict


def test_evidence_verifier_serves_its_second_capability(deploy: Deploy, lambda_context: LambdaContext) -> None:
    # GIVEN the verifier, which the contract also lists for confidence-scoring
    verifier = deploy("evidence-verifier")
    claim = {"claim_id": "c-001", "text": "Northwind Analytics was founded in 2012.", "sentence_index": 0}
    ref = {"bucket": "agentplane-documents", "key": "documents/x.json", "sha256": "0" * 64, "size_bytes": 1}

    # WHEN it is asked under that capability THEN it answers
    verdict = verifier(envelope("confidence-scoring", {"claim": claim, "document_ref": ref}), lambda_context)
    assert verdict["label"] == "supported"


def test_risk_scorer_escalates_the_sample_memo(deploy: Deploy, plane: Plane, lambda_context: LambdaContext) -> None:
    # GIVEN the sample memo taken in and verified claim by claim, each by its handler
    # WHEN the verdicts are scored
    done = review(deploy, lambda_context, load_event("doc-review-request.json"))

    # THEN the confident refutation of c-006 makes the risk high and the outcome escalate
    assert (done.risk["level"], done.risk["recommended_outcome"]) == ("high", "escalate")
    assert done.risk["policy_version"] == "2026-12-02"
    assert any("confident-refutation" in reason for reason in done.risk["reasons"])
    # AND every step of the run left one succeeded record under its contract's agent
    steps = {r.step_key.removeprefix(f"{done.run}/"): r for r in records(plane, done.run)}
    assert set(steps) == {"Intake", "ScoreRisk", *(f"VerifyClaim/{n}" for n in range(10))}
    assert all(r.status == "SUCCEEDED" for r in steps.values())
    assert steps["ScoreRisk"].agent == "risk-scorer"
    assert steps["ScoreRisk"].output() == done.risk


def test_risk_scorer_accepts_the_low_risk_sample(deploy: Deploy, lambda_context: LambdaContext) -> None:
    # GIVEN / WHEN the low-risk sample goes through intake, verification and scoring
    done = review(deploy, lambda_context, load_event("doc-review-low-risk.json"))

    # THEN it is accepted
    assert (done.risk["level"], done.risk["recommended_outcome"]) == ("low", "accept")


# --- decision-recorder, failure-recorder ----------------------------------------------------------


def hold_slot(plane: Plane, run: str) -> None:
    """The run holds an admission slot, as the API gives one to every run it admits."""
    assert DynamoAdmissionSlots(plane.executions).admit("doc-review", run, now_ms=0, lease_ms=2**62, limit=10)


def holds_slot(plane: Plane, run: str) -> bool:
    item = plane.executions.get_item(Key={"execution_id": admission_key("doc-review")}).get("Item", {})
    return run in item.get("slots", {})


def test_decision_recorder_sets_the_decision_and_publishes_it(
    deploy: Deploy, plane: Plane, lambda_context: LambdaContext
) -> None:
    # GIVEN a reviewed run the API started, and a queue listening for decision.recorded on the bus
    done = review(deploy, lambda_context, load_event("doc-review-request.json"))
    start_run(plane, done.run)
    hold_slot(plane, done.run)
    tap = BusTap(plane, "decision.recorded")
    payload = {
        "workflow": "doc-review",
        "title": done.taken["title"],
        "document_ref": done.taken["document_ref"],
        "claims": done.taken["claims"],
        "verdicts": done.verdicts,
        "risk": done.risk,
    }

    # WHEN the decision is recorded
    decision = deploy("decision-recorder")(
        envelope("record-decision", payload, correlation_id=done.run, step="RecordDecision"), lambda_context
    )

    # THEN the decision follows the risk, under the id derived from the run
    assert decision["decision_id"] == decision_id_for(done.run)
    assert (decision["outcome"], decision["risk_level"]) == ("escalate", "high")
    assert decision["summary"].startswith("Vendor assessment: Northwind Analytics: 10 claims (8 supported, 1 refuted")
    # AND the executions view carries it
    item = DynamoExecutionStore(plane.executions).get(done.run)
    assert item is not None
    assert item.decision == Decision.model_validate(decision)
    # AND the bus delivered decision.recorded with the decision, the run's trace and its claims
    [event] = tap.delivered()
    assert (event["source"], event["detail-type"]) == ("agentplane", "decision.recorded")
    assert event["detail"]["execution_id"] == done.run
    assert event["detail"]["trace_id"] == TRACE_ID
    assert Decision.model_validate(event["detail"]["decision"]) == Decision.model_validate(decision)
    assert event["detail"]["claims"] == done.taken["claims"]
    # AND the run has left processing: its admission slot is free for the next run
    assert not holds_slot(plane, done.run)


def test_decision_recorder_fails_for_a_run_the_api_never_started(
    deploy: Deploy, plane: Plane, lambda_context: LambdaContext
) -> None:
    # GIVEN a decision for a run the executions view does not know, and a queue on the bus
    tap = BusTap(plane, "decision.recorded")
    risk = {
        "level": "low",
        "score": 0.0,
        "reasons": ["all supported"],
        "policy_version": "2026-11-01",
        "recommended_outcome": "accept",
    }
    ref = {"bucket": plane.documents_bucket, "key": "documents/x.json", "sha256": "0" * 64, "size_bytes": 1}
    payload = {"workflow": "doc-review", "title": "t", "document_ref": ref, "claims": [], "verdicts": [], "risk": risk}
    event = envelope("record-decision", payload, step="RecordDecision")

    # WHEN it is recorded THEN the conditional update fails the step
    with pytest.raises(ClientError, match="ConditionalCheckFailed"):
        deploy("decision-recorder")(event, lambda_context)

    # AND nothing was published, nothing half-written, and the failure is on record
    assert tap.delivered() == []
    assert scan(plane.executions) == []
    [record] = records(plane, event["correlation_id"])
    assert (record.status, record.error_type) == ("FAILED", "ConditionalCheckFailedException")


def test_failure_recorder_records_why_the_run_failed(
    deploy: Deploy, plane: Plane, lambda_context: LambdaContext
) -> None:
    # GIVEN a run whose intake failed, as the coordinator's Catch path reports it (Lambda's JSON error as cause)
    run = str(uuid.uuid4())
    start_run(plane, run)
    hold_slot(plane, run)
    tap = BusTap(plane, "decision.recorded")
    message = "no checkable claim in 'Open questions for Northwind Analytics': its 3 sentence(s) are 2 question"
    cause = json.dumps({"errorMessage": message, "errorType": "NoClaimsFound", "requestId": "r-1", "stackTrace": []})
    event = envelope(
        "record-failure",
        {"workflow": "doc-review", "error": "NoClaimsFound", "cause": cause},
        correlation_id=run,
        step="RecordFailure",
    )

    # WHEN the failure is recorded
    decision = deploy("failure-recorder")(event, lambda_context)

    # THEN the decision is "failed" and says why in the error's own words, without the JSON around them
    assert decision["outcome"] == "failed"
    assert decision["decision_id"] == decision_id_for(run)
    assert decision["summary"] == f"doc-review failed with NoClaimsFound: {message}"
    assert "stackTrace" not in decision["summary"]
    # AND the executions view and the bus both have it
    item = DynamoExecutionStore(plane.executions).get(run)
    assert item is not None
    assert item.decision is not None
    assert item.decision.outcome == "failed"
    [published] = tap.delivered()
    assert published["detail"]["decision"]["outcome"] == "failed"
    assert published["detail"]["claims"] == []
    assert not holds_slot(plane, run)  # a failed run frees its admission slot too
    # AND the recorder's own step succeeded
    [record] = records(plane, run)
    assert (record.agent, record.capability, record.status) == ("failure-recorder", "record-failure", "SUCCEEDED")


def test_the_approval_gate_frees_the_runs_admission_slot_while_it_waits_for_a_person(
    plane: Plane, cold_start: ColdStart, lambda_context: LambdaContext
) -> None:
    # GIVEN a run holding an admission slot, reaching the approval gate
    run = str(uuid.uuid4())
    start_run(plane, run)
    hold_slot(plane, run)
    create_table("agentplane-approvals", "approval_id")
    environment = {"APPROVALS_TABLE": "agentplane-approvals", "EXECUTIONS_TABLE": plane.executions_table}
    with lambda_environment(environment, frozenset()):
        gate = cold_start("functions.approval_gate.handler").lambda_handler
        event = {
            "task_token": "token-1",
            "execution_id": run,
            "trace_id": TRACE_ID,
            "workflow": "doc-review",
            "policy_version": "2026-12-02",
            "timeout_s": 3600,
            "subject": {"title": "t", "risk": "high"},
        }

        # WHEN it opens the approval
        opened = gate(event, lambda_context)

    # THEN the run waits for a person without holding a slot: waiting is not processing
    assert opened["approval_id"]
    assert not holds_slot(plane, run)


def test_failure_recorder_records_a_failure_that_comes_after_the_deadline(
    deploy: Deploy, plane: Plane, lambda_context: LambdaContext
) -> None:
    # GIVEN a run that failed because its deadline passed: the Catch path's envelope carries that deadline
    run = str(uuid.uuid4())
    start_run(plane, run)
    late = datetime.now(UTC) - timedelta(minutes=5)
    event = envelope(
        "record-failure",
        {"workflow": "doc-review", "error": "DeadlineExceeded", "cause": "deadline passed"},
        correlation_id=run,
        step="RecordFailure",
        ttl_ms=1000,
        now=late,
    )

    # WHEN the failure is recorded
    decision = deploy("failure-recorder")(event, lambda_context)

    # THEN it is recorded all the same, not refused as stale work
    assert decision["outcome"] == "failed"
    [record] = records(plane, run)
    assert record.status == "SUCCEEDED"


# --- entity-tagger --------------------------------------------------------------------------------


def test_entity_tagger_tags_the_claims_of_a_recorded_decision(
    deploy: Deploy, plane: Plane, lambda_context: LambdaContext
) -> None:
    # GIVEN the tagger and a decision.recorded event as EventBridge delivers it
    tagger = deploy("entity-tagger")
    event = load_event("decision-recorded.json")

    # WHEN it handles the event
    tags = tagger(event, lambda_context)

    # THEN it names the decision and the entities its claims mention, most mentioned first
    assert tags["execution_id"] == event["detail"]["execution_id"]
    assert tags["decision_id"] == event["detail"]["decision"]["decision_id"]
    found = {(e["text"], e["kind"]): e["count"] for e in tags["entities"]}
    assert tags["entities"][0] == {"text": "Northwind Analytics", "kind": "organization", "count": 5}
    assert found[("Ilse Marquardt", "person")] == 1
    assert found[("Rotterdam", "place")] == 1
    assert ("EUR 84.2 million", "money") in found
    # AND its step is on record under the run, named by capability and event
    [record] = records(plane, event["detail"]["execution_id"])
    assert record.step_key == f"{event['detail']['execution_id']}/entity-tagging#{event['id']}"
    assert (record.agent, record.status) == ("entity-tagger", "SUCCEEDED")


def test_entity_tagger_tags_each_decision_once(deploy: Deploy, plane: Plane, lambda_context: LambdaContext) -> None:
    # GIVEN a decision.recorded event already handled
    tagger = deploy("entity-tagger")
    event = load_event("decision-recorded.json")
    first = tagger(event, lambda_context)

    # WHEN the same event is redelivered, and the decision is re-published under a new event id
    again = tagger(event, lambda_context)
    republished = tagger({**event, "id": str(uuid.uuid4())}, lambda_context)

    # THEN both get the first answer, and the decision was tagged once
    assert again == first
    assert republished == first
    assert len(records(plane, event["detail"]["execution_id"])) == 1
    # AND the idempotency table holds one completed item for the decision
    [item] = scan(plane.idempotency)
    assert item["status"] == "COMPLETED"
    assert json.loads(item["data"]) == first


def test_entity_tagger_tags_another_decision_of_the_same_run(
    deploy: Deploy, plane: Plane, lambda_context: LambdaContext
) -> None:
    # GIVEN a handled decision.recorded event
    tagger = deploy("entity-tagger")
    event = load_event("decision-recorded.json")
    tagger(event, lambda_context)

    # WHEN another decision is published (a different decision id, a new event)
    detail = {**event["detail"], "decision": {**event["detail"]["decision"], "decision_id": "dec-another"}}
    tags = tagger({**event, "id": str(uuid.uuid4()), "detail": detail}, lambda_context)

    # THEN it is tagged too: the idempotency key is the decision, not the run
    assert tags["decision_id"] == "dec-another"
    assert len(records(plane, event["detail"]["execution_id"])) == 2
    assert len(scan(plane.idempotency)) == 2


def test_entity_tagger_takes_what_the_recorder_publishes(
    deploy: Deploy, plane: Plane, lambda_context: LambdaContext
) -> None:
    # GIVEN a failure recorded for a run, and the event the bus delivered for it
    run = str(uuid.uuid4())
    start_run(plane, run)
    tap = BusTap(plane, "decision.recorded")
    deploy("failure-recorder")(
        envelope(
            "record-failure", {"workflow": "doc-review", "error": "States.Timeout"}, correlation_id=run, step="Fail"
        ),
        lambda_context,
    )
    [delivered] = tap.delivered()

    # WHEN the tagger handles that very event
    tags = deploy("entity-tagger")(delivered, lambda_context)

    # THEN the contract between them holds: the event parses, and a decision without claims has no entities
    assert tags == {"execution_id": run, "decision_id": decision_id_for(run), "entities": []}
    assert {r.agent for r in records(plane, run)} == {"failure-recorder", "entity-tagger"}


def test_entity_tagger_takes_a_batch_from_its_queue_and_reports_the_bad_record(
    deploy: Deploy, plane: Plane, lambda_context: LambdaContext
) -> None:
    # GIVEN a batch from the tagger's buffer queue: a decision.recorded event and a malformed one
    tagger = deploy("entity-tagger")
    good = load_event("decision-recorded.json")
    bad = {**good, "id": "malformed", "detail": {"execution_id": "x", "trace_id": good["detail"]["trace_id"]}}
    batch = {
        "Records": [
            {
                "messageId": f"m-{n}",
                "receiptHandle": f"r-{n}",
                "body": json.dumps(event),
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "awsRegion": REGION,
                "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:buffer",
            }
            for n, event in enumerate((good, bad))
        ]
    }

    # WHEN it handles the batch
    answer = tagger(batch, lambda_context)

    # THEN only the malformed record goes back to the queue, and the good one was tagged
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    [record] = records(plane, good["detail"]["execution_id"])
    assert (record.agent, record.status) == ("entity-tagger", "SUCCEEDED")
