"""What Bedrock checks about a conversation beyond its shape: roles, content and the tool-use protocol.

Each refusal is a ``ValidationException`` worded as Bedrock words it where its wording is known (roles, empty
content, a missing toolConfig, missing or surplus toolResult blocks, an empty error result); the rest (a toolResult
naming an id the previous turn did not use, tool blocks in the wrong role, tool names) follow the same style.
"""

from __future__ import annotations

from typing import Any

import jsonschema

from infra.local.bedrock.errors import validation

_START = "A conversation must start with a user message. Try again with a conversation that starts with a user message."
_ALTERNATE = (
    "A conversation must alternate between user and assistant roles. Make sure the conversation alternates between "
    "user and assistant roles and try again."
)


def check_conversation(request: dict[str, Any]) -> None:
    messages = request.get("messages") or []
    if not messages or messages[0]["role"] != "user":
        raise validation(_START)
    previous = None
    for index, message in enumerate(messages):
        role = message["role"]
        if role == "system" or role == previous:
            raise validation(_ALTERNATE)
        previous = role
        _check_content(index, message)
    tools = _check_tools(request.get("toolConfig"))
    uses_tools = any(
        "toolUse" in block or "toolResult" in block for message in messages for block in message["content"]
    )
    if uses_tools and tools is None:
        raise validation("The toolConfig field must be defined when using toolUse and toolResult content blocks.")
    _check_tool_protocol(messages)


def _check_content(index: int, message: dict[str, Any]) -> None:
    content = message["content"]
    if not content:
        raise validation(
            f"The content field in the Message object at messages.{index} is empty. Add a ContentBlock object to "
            "the content field and try again."
        )
    for position, block in enumerate(content):
        where = f"messages.{index}.content.{position}"
        if "text" in block and not block["text"].strip():
            raise validation(
                f"The text field in the ContentBlock object at {where} is blank. "
                "Add text to the text field, and try again."
            )
        if "toolUse" in block and message["role"] != "assistant":
            raise validation(
                f"The toolUse block at {where} is in a {message['role']} message: only the assistant uses tools."
            )
        if "toolResult" in block:
            result = block["toolResult"]
            if message["role"] != "user":
                raise validation(
                    f"The toolResult block at {where} is in an assistant message: tool results come from the user."
                )
            if result.get("status") == "error" and not result["content"]:
                raise validation(f"The content field at {where}.toolResult cannot be empty when status value is error.")


def _check_tools(tool_config: dict[str, Any] | None) -> set[str] | None:
    if tool_config is None:
        return None
    names: set[str] = set()
    for index, tool in enumerate(tool_config["tools"]):
        spec = tool.get("toolSpec")
        if spec is None:
            continue
        where = f"toolConfig.tools.{index}.toolSpec"
        if spec["name"] in names:
            raise validation(f"The tool name {spec['name']} at {where}.name is not unique: tool names must be unique.")
        names.add(spec["name"])
        schema = spec["inputSchema"].get("json")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise validation(f"The value at {where}.inputSchema.json.type must be one of the following: object.")
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise validation(f"The JSON schema at {where}.inputSchema.json is invalid: {exc.message}") from None
    chosen = ((tool_config.get("toolChoice") or {}).get("tool") or {}).get("name")
    if chosen is not None and chosen not in names:
        raise validation(f"The tool {chosen} named in toolConfig.toolChoice.tool is not one of toolConfig.tools.")
    return names


def _check_tool_protocol(messages: list[dict[str, Any]]) -> None:
    """Every toolUse of an assistant turn is answered, by id, in the next user turn, and nothing else is."""
    for index, message in enumerate(messages):
        if message["role"] != "user":
            continue
        asked = (
            [block["toolUse"]["toolUseId"] for block in messages[index - 1]["content"] if "toolUse" in block]
            if index > 0
            else []
        )
        answered = [block["toolResult"]["toolUseId"] for block in message["content"] if "toolResult" in block]
        if len(answered) > len(asked):
            raise validation(
                f"The number of toolResult blocks at messages.{index}.content exceeds the number of toolUse blocks "
                "of previous turn."
            )
        for position, block in enumerate(message["content"]):
            tool_use_id = block.get("toolResult", {}).get("toolUseId")
            if tool_use_id is not None and tool_use_id not in asked:
                raise validation(
                    f"The toolUseId {tool_use_id} at messages.{index}.content.{position}.toolResult "
                    "does not match any toolUse block of the previous turn."
                )
        missing = [tool_use_id for tool_use_id in asked if tool_use_id not in answered]
        if missing:
            raise validation(
                f"Expected toolResult blocks at messages.{index}.content for the following Ids: {', '.join(missing)}"
            )
