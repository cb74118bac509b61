"""An llm agent's turns on the ledger (one decision record per model turn, beside the step's own record), and an
agent step's pauses: the conversation stored while a person decides, and the round that resumes it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contracts.capability import conversation_key
from contracts.models import ApprovalOutcome
from functions.llm_agent.loop import AgentConfig, ApprovalRequired, Checkpoint, Paused, ToolDecision, Turn
from functions.runtime import Step
from functions.runtime.agent import executed_version
from functions.runtime.canonical import canonical_bytes, canonical_json, sha256_hex
from functions.runtime.decisions import DecisionRecord
from functions.runtime.documents import DocumentStore
from functions.runtime.errors import AgentError


def turn_step_key(causation_id: str, number: int) -> str:
    """Under the step's own key (``VerifyClaim/0/turn/1``): the turns list with their step, never colliding."""
    return f"{causation_id}/turn/{number}"


def tool_causation(causation_id: str, call_id: str) -> str:
    """The causation of a tool call (``VerifyClaim/0/tool/1.0``: turn 1, first call), its decision's step key."""
    return f"{causation_id}/tool/{call_id}"


def turn_record(config: AgentConfig, step: Step, turn: Turn, *, finished: datetime) -> DecisionRecord:
    """Who decided is the model (``model:<id>``), so a turn never counts as a call of the implementation.

    Content is hashed: the record holds the digests of what the model was sent and answered, not the text.
    """
    envelope = step.envelope
    input_json = canonical_json(
        {"turn": turn.number, "prompt_sha256": turn.prompt_sha256, "messages_sha256": turn.request_sha256}
    )
    output_json = canonical_json(turn.summary())
    return DecisionRecord(
        correlation_id=envelope.correlation_id,
        step_key=turn_step_key(envelope.causation_id, turn.number),
        trace_id=envelope.trace_id,
        causation_id=envelope.causation_id,
        agent=config.name,
        agent_version=config.version,
        capability=envelope.capability,
        capability_version=envelope.capability_version,
        status="SUCCEEDED",
        actor=f"model:{turn.model_id}",
        input_json=input_json,
        input_sha256=sha256_hex(input_json.encode()),
        output_json=output_json,
        output_sha256=sha256_hex(output_json.encode()),
        route_json=None,
        function_version=executed_version(),
        started_at=finished - timedelta(milliseconds=turn.latency_ms),
        finished_at=finished,
        duration_ms=turn.latency_ms,
    )


# --- an agent step's pauses: what waits for a person, and how the loop goes on after ----------------------------


class PendingCall(BaseModel):
    """An external-action call waiting for a person: what they review (``subject``) and where the loop stands."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tool: str
    arguments: dict[str, Any]
    args_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    subject: dict[str, Any]
    checkpoint: Checkpoint


class LoopRound(BaseModel):
    """What a workflow's agent step sends beside the envelope (``loop``): a first round, or a resumed one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_approvals: int = Field(default=1, ge=1)
    pending: PendingCall | None = None
    approval: ApprovalOutcome | None = Field(default=None, description="The gate's answer on the pending call.")


class ResumeRefused(AgentError):
    """A resumed round whose checkpoint, conversation or approval does not hold together: nothing runs."""


def keep(conversations: DocumentStore, content: Any) -> str:
    """Store ``content`` as canonical JSON under its sha256 (the digest the ledger holds), once; the digest."""
    body = canonical_bytes(content)
    digest = sha256_hex(body)
    conversations.put(conversation_key(digest), body)
    return digest


def keep_turn(conversations: DocumentStore, turn: Turn) -> None:
    """A turn's content beside its record: what was sent and what came back, each under the digest recorded."""
    keep(conversations, turn.sent)
    keep(conversations, turn.answered)


def approval_subject(agent: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """What the approver reviews for one call; its digest is the approval's ``args_sha256``."""
    return {
        "agent": agent,
        "tool": tool,
        "arguments": arguments,
        "arguments_sha256": sha256_hex(canonical_bytes(arguments)),
    }


def pause(
    config: AgentConfig,
    paused: ApprovalRequired,
    decisions: list[ToolDecision],
    asked: int,
    conversations: DocumentStore,
) -> PendingCall:
    """Store the paused conversation (content-addressed) and say what waits: the call and the checkpoint."""
    assert paused.paused is not None
    digest = keep(conversations, paused.paused.messages)
    return PendingCall(
        tool=paused.tool,
        arguments=paused.call.input,
        args_sha256=paused.call.input_sha256,
        subject=approval_subject(config.name, paused.tool, paused.call.input),
        checkpoint=Checkpoint.of(paused.paused, decisions, asked, digest),
    )


def resume(
    config: AgentConfig, loop: LoopRound, conversations: DocumentStore
) -> tuple[Paused | None, list[ToolDecision], int]:
    """Where a round starts: the paused loop (None: a first round), the decisions so far, the approvals asked."""
    pending = loop.pending
    if pending is None:
        return None, [], 0
    if loop.approval is None:
        raise ResumeRefused("a resumed round needs the approval gate's outcome")
    if pending.args_sha256 != sha256_hex(canonical_bytes(pending.arguments)):
        raise ResumeRefused(f"the pending {pending.tool} call's arguments do not match their sha256")
    approval = loop.approval
    if approval.decision not in ("approve", "reject", "timeout"):
        raise ResumeRefused(f"an approval decided {approval.decision!r}: not an answer on a tool call")
    reviewed = sha256_hex(canonical_bytes(approval_subject(config.name, pending.tool, pending.arguments)))
    if approval.decision != "timeout" and approval.args_sha256 != reviewed:
        raise ResumeRefused(f"the approval is for something else than the pending {pending.tool} call: nothing runs")
    checkpoint = pending.checkpoint
    body = conversations.get(conversation_key(checkpoint.conversation_sha256))
    if sha256_hex(body) != checkpoint.conversation_sha256:
        raise ResumeRefused("the stored conversation does not match its checkpoint's sha256")
    decided = ToolDecision(
        tool=pending.tool, args_sha256=pending.args_sha256, decision=approval.decision, reason=approval.reason
    )
    return checkpoint.resumed(json.loads(body)), [*checkpoint.decisions, decided], checkpoint.asked
