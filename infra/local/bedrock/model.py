"""What a local model sees and answers: a checked Converse request, and one assistant turn.

Models are pluggable (``Model``): ``ScriptedModel`` for tests and the demo, a real small model where one runs.
Token counts are a deterministic approximation the whole local Bedrock shares (``count_tokens``): one token per
four characters of text, rounded up; JSON (tool inputs, tool results, schemas) counted on its compact form.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

FINAL_ANSWER = "final_answer"  # the tool whose toolUse is the agent's structured answer
CHARS_PER_TOKEN = 4
StopReason = Literal["end_turn", "tool_use", "max_tokens", "stop_sequence", "guardrail_intervened", "content_filtered"]


def count_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=str)


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class ToolResult:
    """A toolResult block of the conversation, with the name of the tool whose toolUse it answers."""

    tool_use_id: str
    name: str | None
    status: str  # success | error
    value: Any  # the first json block's value, else the text blocks joined


@dataclass(frozen=True)
class ConverseRequest:
    """A Converse request that passed validation, in the parts a model needs (``raw`` is the whole request)."""

    model_id: str  # as the caller named it
    foundation_model_id: str  # the model behind an inference profile or ARN
    messages: list[dict[str, Any]]
    system: list[str]
    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    stop_sequences: list[str]
    tools: list[ToolSpec]
    tool_choice: Literal["auto", "any", "tool"] | None
    tool_choice_name: str | None  # with tool_choice "tool"
    output_schema: dict[str, Any] | None  # outputConfig.textFormat's JSON Schema, when the caller asked for one
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def parse(cls, request: dict[str, Any], foundation_model_id: str) -> ConverseRequest:
        inference = request.get("inferenceConfig") or {}
        tool_config = request.get("toolConfig") or {}
        tools = [
            ToolSpec(spec["name"], spec.get("description", ""), spec["inputSchema"].get("json") or {})
            for tool in tool_config.get("tools", [])
            if (spec := tool.get("toolSpec"))
        ]
        choice = tool_config.get("toolChoice") or {}
        kind = next((key for key in ("auto", "any", "tool") if key in choice), None)
        structure = ((request.get("outputConfig") or {}).get("textFormat") or {}).get("structure") or {}
        schema = (structure.get("jsonSchema") or {}).get("schema")
        return cls(
            model_id=request["modelId"],
            foundation_model_id=foundation_model_id,
            messages=request.get("messages") or [],
            system=[block["text"] for block in request.get("system") or [] if "text" in block],
            max_tokens=inference.get("maxTokens"),
            temperature=inference.get("temperature"),
            top_p=inference.get("topP"),
            stop_sequences=list(inference.get("stopSequences") or []),
            tools=tools,
            tool_choice=kind,  # type: ignore[arg-type]
            tool_choice_name=(choice.get("tool") or {}).get("name"),
            output_schema=json.loads(schema) if isinstance(schema, str) else None,
            raw=request,
        )

    @property
    def turn(self) -> int:
        """How many assistant turns the conversation already holds: 0 on the first call of a loop."""
        return sum(1 for message in self.messages if message.get("role") == "assistant")

    def tool(self, name: str) -> ToolSpec | None:
        return next((tool for tool in self.tools if tool.name == name), None)

    def tool_uses(self) -> Iterator[dict[str, Any]]:
        """Every toolUse block the assistant sent, oldest first."""
        for message in self.messages:
            if message.get("role") == "assistant":
                for block in message.get("content", []):
                    if "toolUse" in block:
                        yield block["toolUse"]

    def called_tools(self) -> list[str]:
        return [use["name"] for use in self.tool_uses()]

    def tool_results(self) -> list[ToolResult]:
        """Every toolResult block the caller sent, oldest first."""
        names = {use["toolUseId"]: use["name"] for use in self.tool_uses()}
        found = []
        for message in self.messages:
            if message.get("role") != "user":
                continue
            for block in message.get("content", []):
                result = block.get("toolResult")
                if result is None:
                    continue
                parts = result.get("content", [])
                value = next((part["json"] for part in parts if "json" in part), None)
                if value is None:
                    text = "".join(part.get("text", "") for part in parts)
                    value = _json_in(text)
                    value = text if value is None else value
                found.append(
                    ToolResult(
                        result["toolUseId"], names.get(result["toolUseId"]), result.get("status", "success"), value
                    )
                )
        return found

    def first_user_json(self) -> Any:
        """The JSON in the first user message: a json document, or the first JSON object in its text."""
        for message in self.messages:
            if message.get("role") != "user":
                continue
            for block in message.get("content", []):
                if "text" in block and (value := _json_in(block["text"])) is not None:
                    return value
            return None
        return None

    def input_tokens(self) -> int:
        """The approximate token count of everything the model reads."""
        total = sum(count_tokens(text) for text in self.system)
        for message in self.messages:
            total += sum(block_tokens(block) for block in message.get("content", []))
        for tool in self.tools:
            total += count_tokens(tool.name) + count_tokens(tool.description) + count_tokens(compact(tool.input_schema))
        return total


def _json_in(text: str) -> Any:
    """The whole text as JSON, or the first JSON object or array inside it (a prompt around the input)."""
    stripped = text.strip()
    try:
        return json.loads(stripped)
    except ValueError:
        pass
    decoder = json.JSONDecoder()
    for index, char in enumerate(text):
        if char in "{[":
            try:
                value, _ = decoder.raw_decode(text, index)
            except ValueError:
                continue
            if isinstance(value, dict | list) and value:
                return value
    return None


def block_tokens(block: dict[str, Any]) -> int:
    if "text" in block:
        return count_tokens(block["text"])
    if "toolUse" in block:
        use = block["toolUse"]
        return count_tokens(use.get("name", "")) + count_tokens(compact(use.get("input")))
    if "toolResult" in block:
        return sum(
            count_tokens(part["text"]) if "text" in part else count_tokens(compact(part.get("json")))
            for part in block["toolResult"].get("content", [])
        )
    return count_tokens(compact(block))  # images, documents...: their encoded size, roughly


@dataclass(frozen=True)
class ModelTurn:
    """One assistant turn: content blocks in Converse's wire form, and why the model stopped.

    ``stop_reason`` defaults to ``tool_use`` when the turn calls a tool, else ``end_turn``. A toolUse block may
    leave out ``toolUseId``: the local Bedrock gives it a deterministic one.
    """

    content: Sequence[dict[str, Any]]
    stop_reason: StopReason | None = None

    @classmethod
    def text(cls, text: str, stop_reason: StopReason | None = None) -> ModelTurn:
        return cls(({"text": text},), stop_reason)

    @classmethod
    def tool_use(cls, name: str, tool_input: Any, tool_use_id: str | None = None) -> ModelTurn:
        return cls((_tool_use(name, tool_input, tool_use_id),))

    @classmethod
    def tool_uses(cls, calls: Sequence[tuple[str, Any]]) -> ModelTurn:
        return cls(tuple(_tool_use(name, tool_input, None) for name, tool_input in calls))

    @classmethod
    def final_answer(cls, value: Any) -> ModelTurn:
        return cls.tool_use(FINAL_ANSWER, value)

    @property
    def reason(self) -> StopReason:
        if self.stop_reason is not None:
            return self.stop_reason
        return "tool_use" if any("toolUse" in block for block in self.content) else "end_turn"


def _tool_use(name: str, tool_input: Any, tool_use_id: str | None) -> dict[str, Any]:
    use: dict[str, Any] = {"name": name, "input": tool_input}
    if tool_use_id is not None:
        use["toolUseId"] = tool_use_id
    return {"toolUse": use}


@runtime_checkable
class Model(Protocol):
    """A local stand-in for a Bedrock model: ``respond`` answers one Converse turn."""

    id: str
    description: str

    def respond(self, request: ConverseRequest) -> ModelTurn: ...
