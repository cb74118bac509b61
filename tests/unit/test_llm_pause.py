"""An agent step's pause and resume: the stored conversation, the checkpoint, and what a resumed round refuses."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.capability import conversation_key
from contracts.models import ApprovalOutcome
from functions.llm_agent.loop import ApprovalRequired, Paused, ToolCall, Usage
from functions.llm_agent.service import (
    LoopRound,
    PendingCall,
    ResumeRefused,
    approval_subject,
    pause,
    resume,
)
from functions.runtime.canonical import canonical_bytes, sha256_hex
from functions.runtime.documents import InMemoryDocumentStore
from tests.unit.test_llm_loop import SEND, config

pytestmark = pytest.mark.unit

MESSAGES: list[dict[str, Any]] = [
    {"role": "user", "content": [{"text": "{}"}]},
    {"role": "assistant", "content": [{"toolUse": {"toolUseId": "b", "name": "send-email", "input": {"to": "x"}}}]},
]


def paused(bucket: InMemoryDocumentStore) -> PendingCall:
    waiting = ApprovalRequired(SEND, ToolCall("b", "send-email", {"to": "x"}))
    waiting.paused = Paused(messages=MESSAGES, usage=Usage(turns=1, input_tokens=100), turn=1, invalid=0)
    return pause(config(), waiting, [], 1, bucket)


def decided(pending: PendingCall, decision: str, digest: str | None = None) -> LoopRound:
    reviewed = digest or sha256_hex(canonical_bytes(pending.subject))
    outcome = ApprovalOutcome.model_validate({"decision": decision, "reason": "ok", "args_sha256": reviewed})
    return LoopRound(max_approvals=2, pending=pending, approval=outcome)


def test_a_pause_stores_the_conversation_under_its_digest_and_names_the_call() -> None:
    bucket = InMemoryDocumentStore()
    pending = paused(bucket)

    body = canonical_bytes(MESSAGES)
    assert bucket.objects == {conversation_key(sha256_hex(body)): body}
    assert pending.checkpoint.conversation_sha256 == sha256_hex(body)
    assert pending.subject == approval_subject("fact-checker-llm", "send-email", {"to": "x"})
    assert pending.args_sha256 == sha256_hex(canonical_bytes({"to": "x"}))


def test_a_resumed_round_goes_on_from_the_stored_conversation_with_the_decision() -> None:
    bucket = InMemoryDocumentStore()
    pending = paused(bucket)

    loop, decisions, asked = resume(config(), decided(pending, "approve"), bucket)

    assert loop is not None
    assert loop.messages == MESSAGES
    assert loop.turn == 1
    assert loop.usage.input_tokens == 100
    assert [(d.tool, d.decision) for d in decisions] == [("send-email", "approve")]
    assert asked == 1


def test_a_first_round_starts_the_loop() -> None:
    assert resume(config(), LoopRound(), InMemoryDocumentStore()) == (None, [], 0)


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ("digest", "for something else"),
        ("arguments", "do not match their sha256"),
        ("conversation", "does not match its checkpoint"),
        ("no-outcome", "needs the approval gate's outcome"),
        ("not-required", "not an answer on a tool call"),
    ],
)
def test_a_round_that_does_not_hold_together_runs_nothing(change: str, refusal: str) -> None:
    bucket = InMemoryDocumentStore()
    pending = paused(bucket)
    round_ = decided(pending, "approve", "0" * 64 if change == "digest" else None)
    if change == "arguments":
        round_ = round_.model_copy(update={"pending": pending.model_copy(update={"arguments": {"to": "y"}})})
    if change == "conversation":
        (key,) = bucket.objects
        bucket.objects[key] = b"[]"
    if change == "no-outcome":
        round_ = round_.model_copy(update={"approval": None})
    if change == "not-required":
        round_ = round_.model_copy(update={"approval": ApprovalOutcome(decision="not-required")})

    with pytest.raises(ResumeRefused, match=refusal):
        resume(config(), round_, bucket)


def test_a_window_nobody_decided_in_is_a_refusal_without_a_digest() -> None:
    bucket = InMemoryDocumentStore()
    pending = paused(bucket)
    round_ = LoopRound(pending=pending, approval=ApprovalOutcome(decision="timeout", actor="system:approval-window"))

    _loop, decisions, _asked = resume(config(), round_, bucket)

    assert [d.decision for d in decisions] == ["timeout"]
