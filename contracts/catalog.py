"""The workflow catalog entry: what the API needs to start a workflow's runs, as deploy writes it.

A stack that holds both the API and a workflow writes the entry into the API's settings; a project's stack,
deployed apart from the plane, writes it into the plane's catalog table, where the API finds it at run time.
One shape for both, here below the CDK app and the API, so neither imports the other.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

KEY = "workflow"  # the catalog table's partition key: the workflow's name


class WorkflowEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    state_machine_arn: str  # the live alias: runs start through it, so a rollout decides which version serves them
    input_model: str  # a payload type name (contracts.payloads)
    # The input's JSON Schema when it is a project's own type (the plane's own types ship with the API).
    input_schema: dict[str, Any] | None = None
    ttl_ms: int = Field(gt=0)
    synchronous: bool = False
    claim_check: bool = False
    max_in_flight: int | None = Field(default=None, gt=0)
    admission_window_ms: int | None = Field(default=None, gt=0)
    project: str | None = None  # the project that deployed it

    @model_validator(mode="after")
    def _admission_whole(self) -> WorkflowEntry:
        if (self.max_in_flight is None) != (self.admission_window_ms is None):
            raise ValueError("max_in_flight and admission_window_ms go together")
        return self

    def settings(self) -> dict[str, Any]:
        """As the API's WORKFLOWS setting holds it (JSON values; absent fields left out)."""
        return self.model_dump(exclude_none=True, exclude={"name"})

    def item(self) -> dict[str, str]:
        """As a catalog table item: every attribute a string (the input schema as JSON)."""
        values = self.model_dump(exclude_none=True)
        return {
            (KEY if key == "name" else key): json.dumps(value, sort_keys=True)
            if isinstance(value, dict)
            else str(value).lower()
            if isinstance(value, bool)
            else str(value)
            for key, value in values.items()
        }

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> WorkflowEntry:
        """A catalog table item (or a WORKFLOWS setting with its name added) back into an entry."""
        values = {("name" if key == KEY else key): value for key, value in item.items()}
        schema = values.get("input_schema")
        if isinstance(schema, str):
            values["input_schema"] = json.loads(schema)
        return cls.model_validate(values)
