"""A team's project whose llm agent runs on a self-hosted model: a vLLM serving image on a warm GPU endpoint (open
weights from S3), and an agent that names that endpoint as its model and calls the scaffold's triage as a tool."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.agent_step_project import scaffold_with

SERVED_MODEL = "Qwen/Qwen2.5-7B-Instruct"
MODEL_DATA = "s3://helpdesk-models/qwen2.5-7b-instruct/"
MODEL_DATA_KEY = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"

FILES = {
    "agents/helpdesk-llm-host.yaml": f"""\
name: helpdesk-llm-host
version: 0.1.0
description: Serves the team's open-weights model (vLLM on a warm GPU endpoint) to its llm agents.
capabilities: [helpdesk-chat]
io: {{input: ChatRequest, output: ChatCompletion}}
runtime:
  kind: sagemaker
  instance_type: ml.g6.2xlarge
  min_instances: 1
  max_instances: 2
  serving:
    image: vllm
    version: 0.30.0
    model_data: {MODEL_DATA}
    model_data_key: {MODEL_DATA_KEY}
    model_name: {SERVED_MODEL}
    tool_parser: hermes
    max_model_len: 16384
side_effects: read-only
slo: {{p95_ms: 4000, availability: 99.5, error_budget_pct: 0.5}}
fallback: [human]
telemetry:
  metrics: [latency_ms, success_count]
  errors: [BadInput, DeadlineExceeded, ModelError, EndpointThrottled, EndpointUnavailable]
""",
    "agents/helpdesk-drafter.yaml": """\
name: helpdesk-drafter
version: 0.1.0
description: Drafts the reply to a ticket with the team's own model, after triaging it.
capabilities: [helpdesk-draft]
io: {input: src/helpdesk_agents/schemas/ticket.json, output: "helpdesk_agents.models:HelpdeskDraft"}
runtime:
  kind: llm
  model: {provider: sagemaker, endpoint: helpdesk-llm-host}
  prompt: prompts/helpdesk-drafter.md
  tools: [helpdesk-triage]
  limits: {max_turns: 4, max_input_tokens: 20000, max_output_tokens: 2000, max_cost_usd: 0.05}
  inference: {temperature: 0, top_p: 1, max_tokens: 800}
  memory_mb: 256
  timeout_s: 30
permissions: []
side_effects: read-only
slo: {p95_ms: 8000, availability: 99.5, error_budget_pct: 0.5}
fallback: [human]
telemetry:
  metrics: [latency_ms, success_count, turns, input_tokens, output_tokens, tool_calls]
  errors: [BadInput, DeadlineExceeded, BudgetExceeded, ModelError, ThrottlingException]
""",
    "prompts/helpdesk-drafter.md": """\
You draft replies to support tickets. Triage the ticket with helpdesk-triage first, then call final_answer with
a short, polite draft that fits its category.
""",
    "workflows/helpdesk-draft.yaml": """\
name: helpdesk-draft
description: The team's own model drafts the reply to a ticket.
type: standard
input: src/helpdesk_agents/schemas/ticket.json
api: {mode: async}
deadline: {work_s: 300, grace_s: 300}
failure: {capability: record-failure, version: 2.x}
steps:
  - agent: Draft
    capability: helpdesk-draft
    version: 0.x
    input: {ticket_id: $.request.ticket_id, subject: $.request.subject, body: $.request.body}
    result: $.draft
  - set: Answer
    value: {execution_id: $.correlation_id, draft: $.draft}
""",
}

MODELS = """

class HelpdeskDraft(Strict):
    ticket_id: str
    draft: str = Field(max_length=2000)
"""


def self_hosted_project(folder: Path) -> Path:
    """The scaffold's ``helpdesk`` project in ``folder``, with the model host, the drafter and its workflow."""
    return scaffold_with(folder, FILES, MODELS, name="helpdesk")
