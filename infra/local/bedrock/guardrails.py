"""Guardrails on the local Bedrock: a word filter per guardrail, applied to the input and to the model's answer.

A request's ``guardrailConfig`` names a guardrail by id (or ARN) and version. A guardrail registered with
``LocalBedrock.add_guardrail`` blocks the input (the model is not called) or the answer when either holds one of its
words, as a Bedrock guardrail's word filter does: the answer is then its blocked message, with stop reason
``guardrail_intervened``. Only the user's text is evaluated, or only its ``guardContent`` blocks when it has some,
as Bedrock does. A guardrail that is not registered is not evaluated (content, topic, PII and grounding policies
are not emulated).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from infra.local.bedrock.model import ConverseRequest, compact

BLOCKED = "Sorry, the model cannot answer this question."  # Bedrock's default blocked message


@dataclass(frozen=True)
class LocalGuardrail:
    identifier: str  # the guardrail's id, as requests name it (or the id inside its ARN)
    version: str = "DRAFT"
    blocked_words: tuple[str, ...] = ()
    blocked_input_message: str = BLOCKED
    blocked_output_message: str = BLOCKED
    _pattern: re.Pattern[str] | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self.blocked_words:
            words = "|".join(re.escape(word) for word in self.blocked_words)
            object.__setattr__(self, "_pattern", re.compile(rf"\b(?:{words})\b", re.IGNORECASE))

    def blocks(self, texts: Iterator[str]) -> bool:
        return self._pattern is not None and any(self._pattern.search(text) for text in texts)


def guardrail_id(identifier: str) -> str:
    """The id in ``arn:aws:bedrock:REGION:ACCOUNT:guardrail/ID``, or the identifier itself."""
    return identifier.rsplit("/", 1)[-1] if identifier.startswith("arn:") else identifier


def guardrail_arn(identifier: str, region: str, account_id: str) -> str:
    return (
        identifier if identifier.startswith("arn:") else f"arn:aws:bedrock:{region}:{account_id}:guardrail/{identifier}"
    )


def input_texts(request: ConverseRequest) -> Iterator[str]:
    """What a guardrail evaluates of the input: the guardContent blocks if the user sent any, else the user's text."""
    user_blocks = [block for m in request.messages if m.get("role") == "user" for block in m.get("content", [])]
    guarded = [block["guardContent"] for block in user_blocks if "guardContent" in block]
    if guarded:
        yield from (block["text"]["text"] for block in guarded if "text" in block)
        return
    for block in user_blocks:
        if "text" in block:
            yield block["text"]


def output_texts(content: list[dict[str, Any]]) -> Iterator[str]:
    for block in content:
        if "text" in block:
            yield block["text"]
        elif "toolUse" in block:
            yield compact(block["toolUse"].get("input"))
