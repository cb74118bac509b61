"""The workflow catalog: the entry shape deploy writes, and the API learning projects' workflows at run time."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from contracts.catalog import KEY, WorkflowEntry
from contracts.models import DocReviewRequest
from functions.api.admission import AdmissionLimit
from functions.api.service import Workflow, WorkflowCatalog, workflow_of

pytestmark = pytest.mark.unit

TICKET_SCHEMA = {
    "title": "CatalogTicket",
    "type": "object",
    "properties": {"ticket_id": {"type": "string", "pattern": "^T-[0-9]+$"}},
    "required": ["ticket_id"],
    "additionalProperties": False,
}
TICKETS = WorkflowEntry(
    name="tickets",
    state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:tickets:live",
    input_model="CatalogTicket",
    input_schema=TICKET_SCHEMA,
    ttl_ms=60_000,
    max_in_flight=8,
    admission_window_ms=2_000,
    project="support",
)
STATIC = {"doc-review": Workflow("doc-review", "arn:sm:doc-review", DocReviewRequest, ttl_ms=60_000)}


class Source:
    def __init__(self, *entries: WorkflowEntry) -> None:
        self.entries_now = list(entries)
        self.reads = 0

    def entries(self) -> list[WorkflowEntry]:
        self.reads += 1
        return list(self.entries_now)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_survives_the_table_as_strings() -> None:
    item = TICKETS.item()
    assert all(isinstance(value, str) for value in item.values())
    assert item[KEY] == "tickets"
    assert item["synchronous"] == "false"
    assert WorkflowEntry.from_item(item) == TICKETS


def test_an_entry_as_the_api_setting_leaves_out_its_name_and_what_is_unset() -> None:
    plain = WorkflowEntry(name="doc-review", state_machine_arn="arn:x", input_model="DocReviewRequest", ttl_ms=5)
    assert plain.settings() == {
        "state_machine_arn": "arn:x",
        "input_model": "DocReviewRequest",
        "ttl_ms": 5,
        "synchronous": False,
        "claim_check": False,
    }


def test_an_admission_limit_needs_its_window() -> None:
    with pytest.raises(ValidationError, match="go together"):
        WorkflowEntry(name="w", state_machine_arn="arn:x", input_model="DocReviewRequest", ttl_ms=5, max_in_flight=3)


def test_a_projects_input_is_validated_by_the_schema_its_entry_carries() -> None:
    workflow = workflow_of(TICKETS, wait_scale=0.5, max_in_flight_cap=4)
    assert workflow.input_model.model_validate({"ticket_id": "T-1"})
    with pytest.raises(ValidationError):
        workflow.input_model.model_validate({"ticket_id": "nope"})
    assert workflow.ttl_ms == 30_000  # the local plane's scaled clock
    assert workflow.admission == AdmissionLimit(max_in_flight=4, window_ms=2_000)


def test_a_workflow_deployed_after_the_api_started_is_found_by_name() -> None:
    source, clock = Source(), Clock()
    catalog = WorkflowCatalog(STATIC, source, refresh_s=10.0, clock=clock)
    assert "tickets" not in catalog
    assert sorted(catalog) == ["doc-review"]

    source.entries_now.append(TICKETS)  # a project's stack deploys
    clock.now += 2.0
    assert catalog["tickets"].state_machine_arn == TICKETS.state_machine_arn  # an unknown name reads again
    assert sorted(catalog) == ["doc-review", "tickets"]


def test_unknown_names_in_a_burst_cost_one_read() -> None:
    source, clock = Source(), Clock()
    catalog = WorkflowCatalog(STATIC, source, refresh_s=10.0, clock=clock)
    for _ in range(50):
        assert catalog.get("missing") is None
    assert source.reads == 1
    clock.now += 11.0
    assert catalog.get("missing") is None
    assert source.reads == 2


def test_the_stacks_own_workflows_win_over_the_catalog() -> None:
    shadow = TICKETS.model_copy(update={"name": "doc-review"})
    catalog = WorkflowCatalog(STATIC, Source(shadow), clock=Clock())
    assert catalog["doc-review"] is STATIC["doc-review"]
    assert len(catalog) == 1


def test_without_a_catalog_only_the_stacks_workflows_are_served() -> None:
    catalog = WorkflowCatalog(STATIC)
    assert list(catalog) == ["doc-review"]
    with pytest.raises(KeyError):
        catalog["tickets"]


def test_a_bad_entry_in_the_table_is_skipped_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.api import adapters
    from functions.api.adapters import DynamoCatalog

    class Table:
        def scan(self, **_: object) -> dict[str, object]:
            return {"Items": [TICKETS.item(), {KEY: "broken", "ttl_ms": "-1"}]}

    monkeypatch.setattr(adapters, "table", lambda name: Table())
    assert [e.name for e in DynamoCatalog("catalog").entries()] == ["tickets"]
    assert json.loads(TICKETS.item()["input_schema"]) == TICKET_SCHEMA
