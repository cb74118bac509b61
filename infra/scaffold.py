"""`agentplane new agent NAME`: the two files an agent is, a contract and a handler, ready to run and to deploy."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from contracts.capability import KEBAB_PATTERN
from contracts.loader import ContractError, load_contract

CONTRACT = """\
# Capability contract (validated by contracts.capability.CapabilityContract; see docs/adding-an-agent.md).
# Infra derives this agent's Lambda, IAM grants and generated tests from it.
name: {name}
version: 0.1.0
description: {description}
capabilities: [{name}]
io: {{input: ClaimCheck, output: Verdict}}
runtime:
  kind: lambda
  handler: functions.{package}.handler.lambda_handler
  memory_mb: 256
permissions: []
side_effects: read-only
slo: {{p95_ms: 1000, availability: 99.9, error_budget_pct: 0.1}}
fallback: []
telemetry:
  metrics: [latency_ms, success_count]
  errors: [BadInput, DeadlineExceeded]
"""

HANDLER = '''\
"""{name}: {description}"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from contracts.models import ClaimCheck, Verdict
from functions.runtime import Agent, Step

agent = Agent.from_environment(input_model=ClaimCheck, output_model=Verdict)


def check(request: ClaimCheck, step: Step) -> Verdict:
    """The agent's logic: its contract's input in, its output out (no AWS here; adapters go beside it)."""
    return Verdict(
        claim_id=request.claim.claim_id,
        label="not-enough-info",
        confidence=0.0,
        rationale="{name} does not check claims yet",
    )


@agent.logger.inject_lambda_context
@agent.metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return agent.run(event, check)
'''


class ScaffoldError(ValueError):
    """The agent cannot be scaffolded as asked; the message is one line."""


@dataclass(frozen=True)
class Scaffolded:
    contract: Path
    handler: Path


def new_agent(name: str, *, contracts_dir: Path, functions_dir: Path, description: str = "") -> Scaffolded:
    """Write ``<contracts_dir>/<name>.yaml`` and ``<functions_dir>/<package>/handler.py``; refuse to overwrite."""
    if not re.fullmatch(KEBAB_PATTERN, name):
        raise ScaffoldError(f"agent name {name!r} must be kebab-case (lowercase words joined by '-')")
    package = name.replace("-", "_")
    contract = contracts_dir / f"{name}.yaml"
    folder = functions_dir / package
    if contract.exists():
        raise ScaffoldError(f"{contract} already exists")
    if folder.exists():
        raise ScaffoldError(f"{folder} already exists")
    if not contracts_dir.is_dir():
        raise ScaffoldError(f"no contracts directory {contracts_dir}")
    if not functions_dir.is_dir():
        raise ScaffoldError(f"no functions directory {functions_dir}")
    text = " ".join((description or f"Checks one claim ({name}).").split())
    contract.write_text(CONTRACT.format(name=name, package=package, description=text), encoding="utf-8")
    try:
        load_contract(contract)
    except ContractError as error:
        contract.unlink()
        raise ScaffoldError(str(error)) from None
    folder.mkdir()
    (folder / "__init__.py").write_text("", encoding="utf-8")
    handler = folder / "handler.py"
    handler.write_text(HANDLER.format(name=name, description=text), encoding="utf-8")
    return Scaffolded(contract=contract, handler=handler)


# --- `agentplane new project DIR` ------------------------------------------------------------------------------


def _lambda_agent(module: str) -> str:
    """The part both scaffolded contracts share: a small Lambda agent with no grants, a person as its fallback."""
    return f"""\
runtime:
  kind: lambda
  handler: {{package}}.{module}.lambda_handler
  memory_mb: 256
permissions: []
side_effects: read-only
slo: {{{{p95_ms: 1000, availability: 99.9, error_budget_pct: 0.1}}}}
fallback: [human]
telemetry:
  metrics: [latency_ms, success_count]
  errors: [BadInput, DeadlineExceeded]
"""


PROJECT_FILES: dict[str, str] = {
    "agentplane.yaml": """\
# An agentplane project (see docs/projects.md): its agents, their code and payload types, and its workflows.
name: {name}
description: Ticket triage with a person in the loop for urgent tickets.
owners: [{name}-team]
plane: agentplane          # the plane stack this project joins
agents: agents             # capability contracts, one file per agent
workflows: workflows       # workflow specs, one file per workflow
source: src                # the import root of the handler packages and payload models
events: events             # sample requests and payloads
""",
    "agents/{name}-triage.yaml": """\
# Capability contract (see docs/projects.md): the plane derives this agent's Lambda, IAM, registry entry and alarms.
name: {name}-triage
version: 0.1.0
description: Sorts a support ticket into a category and an urgency.
capabilities: [{name}-triage]
# The input is a JSON Schema file of the project, the output a pydantic model of its own package.
io: {{input: src/{package}/schemas/ticket.json, output: "{package}.models:{Type}Triage"}}
"""
    + _lambda_agent("triage"),
    "agents/{name}-resolver.yaml": """\
name: {name}-resolver
version: 0.1.0
description: Decides what to do with a triaged ticket, as far as its approval allows.
capabilities: [{name}-resolution]
io: {{input: "{package}.models:{Type}ResolutionRequest", output: "{package}.models:{Type}Resolution"}}
"""
    + _lambda_agent("resolver"),
    "workflows/{name}-tickets.yaml": """\
# Workflow spec (see docs/workflows.md): steps by capability; `agentplane workflows check --project .` checks it.
name: {name}-tickets
description: Triage a ticket; an urgent one waits for a person before it is resolved.
type: standard
input: src/{package}/schemas/ticket.json
api: {{mode: async}}
deadline: {{work_s: 300, grace_s: 300}}
failure: {{capability: record-failure, version: 2.x}}
steps:
  - task: Triage
    capability: {name}-triage
    version: 0.x
    input: {{ticket_id: $.request.ticket_id, subject: $.request.subject, body: $.request.body}}
    result: $.triage
  - choice: NeedsApproval
    field: $.triage.urgency
    cases:
      - equals: high
        steps:
          - approval: ApproveUrgent
            who: approver
            window_s: 3600
            subject: {{ticket_id: $.request.ticket_id, triage: $.triage}}
            policy_version: {name}-urgent-v1
            result: $.approval
            escalation: {{id: ApprovalTimedOut, action: continue}}
    default:
      - set: NoApprovalNeeded
        model: ApprovalOutcome
        value: {{decision: not-required}}
        result: $.approval
  - task: Resolve
    capability: {name}-resolution
    version: 0.x
    input: {{ticket_id: $.request.ticket_id, triage: $.triage, approval: $.approval}}
    result: $.resolution
  - set: Answer
    value: {{execution_id: $.correlation_id, triage: $.triage, resolution: $.resolution}}
""",
    "src/{package}/__init__.py": '"""{name}: the project\'s agents (handlers) and payload models."""\n',
    "src/{package}/schemas/ticket.json": """\
{{
  "title": "{Type}Ticket",
  "description": "A support ticket: what starts a {name}-tickets run and what triage reads.",
  "type": "object",
  "properties": {{
    "ticket_id": {{"type": "string", "pattern": "^T-[0-9]{{3,}}$"}},
    "subject": {{"type": "string", "minLength": 1, "maxLength": 200}},
    "body": {{"type": "string", "minLength": 1, "maxLength": 5000}}
  }},
  "required": ["ticket_id", "subject", "body"],
  "additionalProperties": false
}}
""",
    "src/{package}/models.py": '''\
"""The project's own payload types (pydantic); contracts name them as ``{package}.models:Name``.

Type names are the plane's, shared by every project on it: they carry the project's name, so two projects'
types never collide.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.models import ApprovalOutcome


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class {Type}Triage(Strict):
    ticket_id: str = Field(pattern=r"^T-[0-9]{{3,}}$")
    category: Literal["outage", "billing", "other"]
    urgency: Literal["low", "high"]
    reason: str = Field(max_length=300)


class {Type}ResolutionRequest(Strict):
    ticket_id: str = Field(pattern=r"^T-[0-9]{{3,}}$")
    triage: {Type}Triage
    approval: ApprovalOutcome


class {Type}Resolution(Strict):
    ticket_id: str
    action: Literal["page-on-call", "refund-review", "reply", "hold"]
    note: str = Field(max_length=300)
''',
    "src/{package}/triage.py": '''\
"""{name}-triage: a ticket in, its category and urgency out (keyword rules: replace with your model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from contracts.payloads import load_schema_model
from functions.runtime import Agent, Step
from {package}.models import {Type}Triage as Triage

# The contract's input is a JSON Schema file; it ships inside this package, so the handler reads the same file.
Ticket = load_schema_model(Path(__file__).parent / "schemas" / "ticket.json")
agent = Agent.from_environment(input_model=Ticket, output_model=Triage)
OUTAGE = ("down", "outage", "unavailable", "error 500")
BILLING = ("invoice", "refund", "charge", "billing")


def triage(ticket: BaseModel, step: Step) -> Triage:
    fields = ticket.model_dump()
    text = f"{{fields['subject']}} {{fields['body']}}".lower()
    if any(word in text for word in OUTAGE):
        return Triage(ticket_id=fields["ticket_id"], category="outage", urgency="high", reason="mentions an outage")
    if any(word in text for word in BILLING):
        return Triage(ticket_id=fields["ticket_id"], category="billing", urgency="low", reason="about billing")
    return Triage(ticket_id=fields["ticket_id"], category="other", urgency="low", reason="no rule matched")


@agent.logger.inject_lambda_context
@agent.metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return agent.run(event, triage)
''',
    "src/{package}/resolver.py": '''\
"""{name}-resolver: what to do with a triaged ticket, never past what its approval allows."""

from __future__ import annotations

from typing import Any, Literal

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.runtime import Agent, Step
from {package}.models import {Type}Resolution as Resolution
from {package}.models import {Type}ResolutionRequest as ResolutionRequest

agent = Agent.from_environment(input_model=ResolutionRequest, output_model=Resolution)
ACTIONS: dict[str, Literal["page-on-call", "refund-review", "reply"]] = {{
    "outage": "page-on-call",
    "billing": "refund-review",
    "other": "reply",
}}


def resolve(request: ResolutionRequest, step: Step) -> Resolution:
    decision = request.approval.decision
    if decision in ("reject", "timeout"):
        return Resolution(ticket_id=request.ticket_id, action="hold", note=f"approval: {{decision}}")
    action = ACTIONS[request.triage.category]
    return Resolution(ticket_id=request.ticket_id, action=action, note=f"approval: {{decision}}")


@agent.logger.inject_lambda_context
@agent.metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return agent.run(event, resolve)
''',
    "events/{name}-tickets-request.json": """\
{{"ticket_id": "T-001", "subject": "Checkout is down", "body": "Since 09:00 every checkout answers error 500."}}
""",
    "events/{name}-tickets-low.json": """\
{{"ticket_id": "T-002", "subject": "Question about my invoice", "body": "The invoice for May lists two seats."}}
""",
    "README.md": """\
# {name}

An agentplane project: two agents (`agents/`), their code and payload types (`src/{package}/`) and a
workflow (`workflows/{name}-tickets.yaml`).

```bash
agentplane workflows check --project .     # the spec against the contracts
agentplane synth --project .               # the plane with this project (cdk-nag runs)
agentplane local serve --project . &       # the same template on the local plane
agentplane run {name}-tickets --input events/{name}-tickets-request.json --wait
```
""",
}


def new_project(folder: Path, name: str | None = None) -> list[Path]:
    """Write a working project into ``folder`` (new or empty): two agents, a workflow with an approval, samples."""
    project = name or folder.resolve().name
    if not re.fullmatch(KEBAB_PATTERN, project) or len(project) > 30:
        raise ScaffoldError(f"project name {project!r} must be kebab-case, at most 30 characters (use --name)")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ScaffoldError(f"{folder} exists and is not an empty folder")
    package = project.replace("-", "_") + "_agents"
    type_prefix = "".join(part.capitalize() for part in project.split("-"))
    written: list[Path] = []
    for template, text in PROJECT_FILES.items():
        path = folder / template.format(name=project, package=package)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.format(name=project, package=package, Type=type_prefix), encoding="utf-8")
        written.append(path)
    return written
