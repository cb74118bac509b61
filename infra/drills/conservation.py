"""Conservation after load or chaos: nothing accepted was lost, nothing ran twice, the ledger holds every decision.

Reads the plane the way an operator would (the API, signed as the admin persona, and its tables), after
its asynchronous deliveries have drained and a digest has been signed over what was written.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from functions.runtime.decisions import step_in_run
from functions.runtime.ledger import read_export, record_id_for, verify_export
from infra.client import TERMINAL, call, fetch_export, local_endpoint, pending_approvals
from infra.local.plane import LocalPlane


@dataclass
class Submission:
    """What a client saw: the execution ids answered for one Idempotency-Key (one, if the plane is right)."""

    key: str | None
    execution_ids: set[str] = field(default_factory=set)


@dataclass
class Conservation:
    accepted: int = 0
    finished: int = 0  # ended, with its decision (or failure) recorded
    waiting_for_approval: int = 0  # accounted for: parked at the approval gate, a pending approval names it
    lost: list[str] = field(default_factory=list)  # neither
    by_status: dict[str, int] = field(default_factory=dict)
    idempotency_keys: int = 0
    keys_answered_twice: list[str] = field(default_factory=list)  # one key, more than one execution id
    keys_stored_twice: list[str] = field(default_factory=list)  # one key, more than one stored execution
    decision_records: int = 0
    ledger_entries: int = 0
    decisions_not_in_ledger: list[str] = field(default_factory=list)
    appender_failed_batches: int = 0  # batches the appender gave up on, waiting in its on-failure queue
    ledger_verified: bool = False
    ledger_problem: str | None = None
    settled: bool = False

    @property
    def ok(self) -> bool:
        return (
            self.settled
            and not self.lost
            and not self.keys_answered_twice
            and not self.keys_stored_twice
            and self.decision_records == self.ledger_entries
            and not self.decisions_not_in_ledger
            and self.ledger_verified
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def ledger_detail(conservation: Mapping[str, Any]) -> str:
    """The ledger against the decision records, in one line: the counts, then which records it lacks and how
    many batches the appender gave up on (what to look at when they differ)."""
    parts = [f"{conservation['ledger_entries']} entries, {conservation['decision_records']} records"]
    if missing := conservation["decisions_not_in_ledger"]:
        parts.append(f"not in the ledger: {', '.join(missing[:5])}")
    if failed := conservation["appender_failed_batches"]:
        parts.append(f"{failed} batches in the appender's on-failure queue")
    return "; ".join(parts)


def _scan(client: Any, table: str, projection: str) -> Iterable[dict[str, Any]]:
    for page in client.get_paginator("scan").paginate(TableName=table, ProjectionExpression=projection):
        yield from page["Items"]


def _record_id(item: dict[str, Any]) -> str:
    """The ledger's id for a decision record (as the appender derives it)."""
    correlation_id = item["correlation_id"]["S"]
    return record_id_for(correlation_id, step_in_run(item["step_key"]["S"], correlation_id))


def check(plane: LocalPlane, submissions: Iterable[Submission], *, settle_timeout: float = 60.0) -> Conservation:
    result = Conservation()
    result.settled = plane.settle(settle_timeout)
    admin = local_endpoint(plane.url, plane.state_dir, "admin")
    submitted = list(submissions)

    accepted = {eid for s in submitted for eid in s.execution_ids}
    result.accepted = len(accepted)
    parked = {a["execution_id"] for a in pending_approvals(admin)}
    by_status: dict[str, int] = defaultdict(int)
    for execution_id in sorted(accepted):
        answer = call(admin, "GET", f"/v1/executions/{execution_id}")
        run = answer.body if answer.status == 200 else {"status": f"HTTP {answer.status}"}
        by_status[run["status"]] += 1
        if run["status"] in TERMINAL and run.get("decision"):
            result.finished += 1
        elif run["status"] == "RUNNING" and execution_id in parked:
            result.waiting_for_approval += 1
        else:
            result.lost.append(execution_id)
    result.by_status = dict(by_status)

    keyed = [s for s in submitted if s.key is not None]
    result.idempotency_keys = len(keyed)
    result.keys_answered_twice = sorted(str(s.key) for s in keyed if len(s.execution_ids) > 1)
    ddb = plane.client("dynamodb")
    executions_table = plane.physical("DataExecutions", "AWS::DynamoDB::Table")
    stored: dict[str, set[str]] = defaultdict(set)
    for item in _scan(ddb, executions_table, "execution_id, idempotency_key"):
        is_marker = item["execution_id"]["S"].startswith("idempotency-key#")
        if not is_marker and "S" in item.get("idempotency_key", {}):
            stored[item["idempotency_key"]["S"]].add(item["execution_id"]["S"])
    mine = {str(s.key) for s in keyed}
    result.keys_stored_twice = sorted(k for k, ids in stored.items() if k in mine and len(ids) > 1)

    # Every decision record, once in the ledger; then a digest over them, and the export must verify.
    decisions_table = plane.physical("DataDecisions", "AWS::DynamoDB::Table")
    records = {_record_id(item) for item in _scan(ddb, decisions_table, "correlation_id, step_key")}
    result.decision_records = len(records)
    assert plane.scheduler is not None
    plane.scheduler.run()
    export = read_export(io.StringIO(fetch_export(admin)))
    in_ledger = {entry.record_id for entry in export.all_entries()}
    result.ledger_entries = export.entry_count
    result.decisions_not_in_ledger = sorted(records - in_ledger)[:20]
    failures = plane.physical("LedgerAppenderFailures", "AWS::SQS::Queue")
    depth = plane.client("sqs").get_queue_attributes(QueueUrl=failures, AttributeNames=["ApproximateNumberOfMessages"])
    result.appender_failed_batches = int(depth["Attributes"]["ApproximateNumberOfMessages"])
    report = verify_export(export)
    result.ledger_verified = report.ok
    if report.first_problem is not None:
        result.ledger_problem = f"{report.first_problem.subject}: {report.first_problem.reason}"
    return result
