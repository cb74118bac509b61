"""The loop's Converse turns, asked of a self-hosted model: the OpenAI-compatible messages API that the standard
serving images (vLLM, LMI, TGI) answer at SageMaker's ``/invocations``.

Pure translation, both ways: :func:`chat_request` turns the Converse request the loop builds into a
:class:`ChatRequest`; :func:`converse_response` turns the container's :class:`ChatCompletion` into the Converse
response the loop reads. The loop itself does not know which provider answered.
"""

from __future__ import annotations

import json
from typing import Any

from contracts.models import (
    ChatCompletion,
    ChatFunction,
    ChatFunctionCall,
    ChatMessage,
    ChatRequest,
    ChatTool,
    ChatToolCall,
)

# Converse's toolChoice -> the messages API's tool_choice ("any": some tool must be called).
TOOL_CHOICE = {"auto": "auto", "any": "required"}
# finish_reason -> Converse stopReason.
STOP_REASONS = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "length": "max_tokens",
    "content_filter": "content_filtered",
}


class ChatTranslationError(ValueError):
    """A request this API cannot carry, or an answer that is not a turn; the message says which part."""


def chat_request(request: dict[str, Any], model_name: str) -> ChatRequest:
    system = "\n\n".join(block["text"] for block in request.get("system", []) if "text" in block)
    messages = [ChatMessage(role="system", content=system)] if system else []
    for message in request.get("messages", []):
        messages.extend(_messages(message))
    tool_config = request.get("toolConfig") or {}
    tools = [
        ChatTool(function=ChatFunction(name=spec["name"], description=spec.get("description", ""), parameters=schema))
        for tool in tool_config.get("tools", [])
        if (spec := tool.get("toolSpec")) and (schema := spec["inputSchema"].get("json")) is not None
    ]
    choice = next(iter(tool_config.get("toolChoice") or {}), None)
    if choice is not None and choice not in TOOL_CHOICE:
        raise ChatTranslationError(f"toolChoice {choice!r} has no equivalent here (auto or any)")
    if request.get("guardrailConfig"):
        raise ChatTranslationError("guardrails are applied by Bedrock Converse, not by a self-hosted model")
    inference = request.get("inferenceConfig") or {}
    return ChatRequest(
        model=model_name,
        messages=messages,
        tools=tools,
        tool_choice=TOOL_CHOICE[choice] if choice is not None and tools else None,
        max_tokens=inference.get("maxTokens"),
        temperature=inference.get("temperature"),
        top_p=inference.get("topP"),
        stop=inference.get("stopSequences") or None,
    )


def _messages(message: dict[str, Any]) -> list[ChatMessage]:
    """One Converse message as messages: an assistant's text and tool calls; a user's tool results (one tool
    message each, right after the calls they answer) then its text. Cache points are Bedrock's own: dropped."""
    blocks = message.get("content", [])
    text = "\n".join(block["text"] for block in blocks if "text" in block)
    if message.get("role") == "assistant":
        calls = [
            ChatToolCall(
                id=use["toolUseId"],
                function=ChatFunctionCall(name=use["name"], arguments=json.dumps(use.get("input", {}))),
            )
            for block in blocks
            if (use := block.get("toolUse"))
        ]
        return [ChatMessage(role="assistant", content=text or None, tool_calls=calls or None)]
    answered = [
        ChatMessage(role="tool", tool_call_id=result["toolUseId"], content=_result_text(result))
        for block in blocks
        if (result := block.get("toolResult"))
    ]
    return [*answered, *([ChatMessage(role="user", content=text)] if text or not answered else [])]


def _result_text(result: dict[str, Any]) -> str:
    parts = [
        json.dumps(part["json"], separators=(",", ":")) if "json" in part else str(part.get("text", ""))
        for part in result.get("content", [])
    ]
    text = "\n".join(parts)
    return f"error: {text}" if result.get("status") == "error" else text


def converse_response(completion: ChatCompletion, latency_ms: float) -> dict[str, Any]:
    """The Converse response the loop reads; tool arguments that are not a JSON object are a malformed turn."""
    choice = completion.choices[0]
    content: list[dict[str, Any]] = [{"text": choice.message.content}] if choice.message.content else []
    for call in choice.message.tool_calls or []:
        try:
            arguments = json.loads(call.function.arguments or "{}")
        except ValueError:
            raise ChatTranslationError(f"tool call {call.function.name}: arguments are not JSON") from None
        if not isinstance(arguments, dict):
            raise ChatTranslationError(f"tool call {call.function.name}: arguments are not a JSON object")
        content.append({"toolUse": {"toolUseId": call.id, "name": call.function.name, "input": arguments}})
    if not content:
        raise ChatTranslationError("the answer holds neither text nor tool calls")
    # Some servers say "stop" for a turn that calls tools: the calls decide.
    reason = "tool_use" if choice.message.tool_calls else STOP_REASONS.get(choice.finish_reason or "stop", "end_turn")
    usage = completion.usage
    response: dict[str, Any] = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": reason,
        "usage": {
            "inputTokens": usage.prompt_tokens,
            "outputTokens": usage.completion_tokens,
            "totalTokens": usage.prompt_tokens + usage.completion_tokens,
        },
        "metrics": {"latencyMs": round(latency_ms)},
    }
    if completion.agentplane is not None:  # the local stand-in names itself, as the local Bedrock does
        response["additionalModelResponseFields"] = {"agentplane": completion.agentplane}
    return response
