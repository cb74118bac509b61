"""A team's project whose workflow runs an llm agent as an ``agent`` step: its one tool sends the customer a message,
an external action, so every call waits for a person (the scaffold's project, plus three files and a workflow)."""

from __future__ import annotations

from pathlib import Path

from infra.scaffold import new_project

FILES = {
    "agents/tickets-notifier.yaml": """\
name: tickets-notifier
version: 0.1.0
description: Sends the customer of a ticket a message (an external action, done at most once per call).
capabilities: [tickets-notify]
io: {input: "tickets_agents.models:TicketsNotice", output: "tickets_agents.models:TicketsNoticeSent"}
runtime:
  kind: lambda
  handler: tickets_agents.notifier.lambda_handler
  memory_mb: 256
  timeout_s: 10
permissions: [write:idempotency]
side_effects: external-action
slo: {p95_ms: 1500, availability: 99.5, error_budget_pct: 0.5}
fallback: [human]
telemetry:
  metrics: [latency_ms, success_count]
  errors: [BadInput, DeadlineExceeded]
""",
    "agents/tickets-assistant.yaml": """\
name: tickets-assistant
version: 0.1.0
description: Answers a ticket; it may message the customer, which a person approves first.
capabilities: [tickets-assist]
io: {input: src/tickets_agents/schemas/ticket.json, output: "tickets_agents.models:TicketsReply"}
runtime:
  kind: llm
  model: {provider: bedrock, id: anthropic.claude-haiku-4-5-20251001-v1:0, inference_profile: us}
  prompt: prompts/tickets-assistant.md
  tools: [tickets-notify]
  limits: {max_turns: 4, max_input_tokens: 20000, max_output_tokens: 2000, max_cost_usd: 0.05}
  inference: {temperature: 0, top_p: 1, max_tokens: 800}
  memory_mb: 256
  timeout_s: 30
permissions: []
side_effects: read-only
slo: {p95_ms: 8000, availability: 99.5, error_budget_pct: 0.5}
fallback: [human]
telemetry:
  metrics: [latency_ms, success_count, turns, input_tokens, output_tokens, cost_usd, tool_calls]
  errors: [BadInput, DeadlineExceeded, BudgetExceeded, ModelError, ThrottlingException]
""",
    "prompts/tickets-assistant.md": """\
You answer support tickets. When the customer should hear from us now, send them one short message with
tickets-notify; a person approves every message before it goes. Then call final_answer with your reply.
""",
    "workflows/tickets-assist.yaml": """\
name: tickets-assist
description: An assistant answers a ticket; any message it sends the customer waits for a person first.
type: standard
input: src/tickets_agents/schemas/ticket.json
api: {mode: async}
deadline: {work_s: 300, grace_s: 300}
failure: {capability: record-failure, version: 2.x}
steps:
  - agent: Assist
    capability: tickets-assist
    version: 0.x
    input: {ticket_id: $.request.ticket_id, subject: $.request.subject, body: $.request.body}
    result: $.reply
    approvals: {who: approver, window_s: 600, max_calls: 2}
  - set: Answer
    value: {execution_id: $.correlation_id, reply: $.reply}
""",
    "src/tickets_agents/notifier.py": '''\
"""tickets-notifier: the message a ticket's customer gets; the plane runs it once per approved call."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.runtime import Agent, Step
from tickets_agents.models import TicketsNotice, TicketsNoticeSent

agent = Agent.from_environment(input_model=TicketsNotice, output_model=TicketsNoticeSent)


def notify(notice: TicketsNotice, step: Step) -> TicketsNoticeSent:
    return TicketsNoticeSent(ticket_id=notice.ticket_id, sent=True, message_id=f"msg-{step.envelope.causation_id}")


@agent.logger.inject_lambda_context
@agent.metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return agent.run(event, notify)
''',
}

MODELS = """

class TicketsNotice(Strict):
    ticket_id: str = Field(pattern=r"^T-[0-9]{3,}$")
    message: str = Field(min_length=1, max_length=500)


class TicketsNoticeSent(Strict):
    ticket_id: str
    sent: bool
    message_id: str


class TicketsReply(Strict):
    ticket_id: str
    reply: str = Field(max_length=2000)
"""


def scaffold_with(folder: Path, files: dict[str, str], models: str, name: str = "tickets") -> Path:
    """The scaffold's project ``name`` in ``folder``, plus ``files`` and ``models`` (appended to its models). Tests
    in one process give each project its own name: a package imported from one project's source folder stays
    imported."""
    new_project(folder, name)
    for file, text in files.items():
        path = folder / file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    module = folder / "src" / f"{name.replace('-', '_')}_agents" / "models.py"
    module.write_text(module.read_text(encoding="utf-8") + models, encoding="utf-8")
    return folder


def agent_step_project(folder: Path) -> Path:
    """The scaffold's ``tickets`` project in ``folder``, with the assistant, its tool and the workflow."""
    return scaffold_with(folder, FILES, MODELS)
