"""Retention, declared once: how long the plane keeps each kind of data, and why.

Infra applies it (log groups, table TTLs, bucket lifecycles, queues, the event archive), agents read it
(idempotency record expiry), template tests check every stateful resource against it, and
``docs/data-governance.md`` explains it. Change a number here and everything follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Store = Literal["logs", "table", "bucket", "queue", "archive", "aws"]

DAY_S = 24 * 3600


@dataclass(frozen=True)
class Retention:
    """``days``: how long an item lives; None: kept until an operator deletes it (never expired by the plane)."""

    store: Store
    days: int | None
    why: str
    noncurrent_days: int | None = None  # versioned buckets: how long a replaced or deleted version is kept
    locked_days: int | None = None  # Object Lock (compliance): nobody, root included, can delete it sooner

    @property
    def seconds(self) -> int:
        if self.days is None:
            raise ValueError("kept indefinitely: no expiry in seconds")
        return self.days * DAY_S


# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)

RETENTION: dict[str, Retention] = {
    # --- logs
    "agent-logs": Retention(
        "logs", 30, "agent logs carry payload excerpts; a month covers incident follow-up, the ledger keeps the record"
    ),
    "workflow-logs": Retention(
        "logs", 30, "Step Functions logs include execution data (inputs and outputs): kept as briefly as agent logs"
    ),
    "api-function-logs": Retention("logs", 30, "request handling; the access log and the ledger say who did what"),
    "api-execution-logs": Retention("logs", 30, "API Gateway's own error log for the stage"),
    "platform-logs": Retention(
        "logs", 365, "ledger appender, digester and approval gate: the operations behind the audit trail"
    ),
    "api-access-logs": Retention(
        "logs", 365, "who called which route, when, with what result: a year for security investigations"
    ),
    # --- tables
    "decisions": Retention(
        "table", None, "each step's record; the ledger chains them and lineage reads them, so they are not expired"
    ),
    "ledger-entries": Retention("table", None, "the audit ledger: hash chains break if any entry is removed"),
    "executions": Retention("table", None, "one item per run (and its Idempotency-Key marker): the run's history"),
    "approvals": Retention("table", None, "who approved or rejected what, and why: part of the decision history"),
    "registry": Retention(
        "table", None, "one item per deployed implementation: written at deploy, deleted when it leaves the template"
    ),
    "idempotency-records": Retention(
        "table", 1, "duplicate suppression for event handlers; EventBridge stops retrying well within a day"
    ),
    # --- buckets
    "documents": Retention(
        "bucket",
        365,
        "submitted documents and llm turns' content (claim-check): decisions keep their SHA-256, not their text, "
        "after a year",
        noncurrent_days=30,
    ),
    "ledger-digests": Retention(
        "bucket",
        None,
        "signed digests make the never-expiring ledger verifiable, so they are kept too",
        locked_days=7 * 365,
    ),
    "access-log-objects": Retention("bucket", 365, "S3 server access logs of the plane's buckets"),
    # --- messaging
    "work-buffers": Retention(
        "queue", 4, "bursty agents' pending events (SQS's default); a record failing 5 times moves to dead letters"
    ),
    "dead-letters": Retention("queue", 14, "failed deliveries wait for a person to redrive them; SQS's maximum"),
    "event-archive": Retention("archive", 90, "every plane event, for replay after an incident"),
    # --- kept by AWS
    "traces": Retention("aws", 30, "X-Ray keeps traces 30 days; not configurable"),
}


def retention(kind: str) -> Retention:
    """The declared retention of ``kind``; an undeclared kind is a programming error that names the known ones."""
    try:
        return RETENTION[kind]
    except KeyError:
        raise KeyError(f"no retention declared for {kind!r} (declared: {', '.join(sorted(RETENTION))})") from None
