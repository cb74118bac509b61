"""Converse as a Step Functions ``aws-sdk:bedrockruntime:converse`` task passes and gets it: in PascalCase.

Step Functions' AWS SDK integrations name every parameter and result field in PascalCase (``ModelId``,
``Messages[0].Content[0].Text``, ``Output.Message``, ``StopReason``), whatever case the service's own API uses, and
prefix a service error with the service's name (``BedrockRuntime.ThrottlingException``). The names are converted
along botocore's shapes, so a document (a tool's ``input``, an ``inputSchema``'s ``Json``, a ``toolResult``'s
``Json``) keeps its own keys.
"""

from __future__ import annotations

from typing import Any

from botocore.model import Shape

from infra.local.bedrock.errors import BedrockError, operation_model

SERVICE = "BedrockRuntime"


def _pascal(name: str) -> str:
    return name[:1].upper() + name[1:]


def _convert(shape: Shape, value: Any, *, to_api: bool) -> Any:
    if shape.type_name == "structure" and not shape.metadata.get("document") and isinstance(value, dict):
        members = shape.members  # type: ignore[attr-defined]
        names = {_pascal(name): name for name in members} if to_api else {name: _pascal(name) for name in members}
        converted = {}
        for key, item in value.items():
            name = names.get(key)
            if name is None:  # not a member: left as is, for validation to name it
                converted[key] = item
                continue
            member = members[name if to_api else key]
            converted[name] = _convert(member, item, to_api=to_api)
        return converted
    if shape.type_name == "list" and isinstance(value, list):
        return [_convert(shape.member, item, to_api=to_api) for item in value]  # type: ignore[attr-defined]
    if shape.type_name == "map" and isinstance(value, dict):
        return {key: _convert(shape.value, item, to_api=to_api) for key, item in value.items()}  # type: ignore[attr-defined]
    return value


def request_from_task(parameters: dict[str, Any]) -> dict[str, Any]:
    """A task's PascalCase parameters as the Converse request boto3 would send."""
    shape = operation_model().input_shape
    assert shape is not None
    converted: dict[str, Any] = _convert(shape, parameters, to_api=True)
    return converted


def result_for_task(response: dict[str, Any]) -> dict[str, Any]:
    """A Converse response as the task's result."""
    shape = operation_model().output_shape
    assert shape is not None
    converted: dict[str, Any] = _convert(shape, response, to_api=False)
    return converted


def task_error(error: BedrockError) -> tuple[str, str]:
    """The task's ``Error`` and ``Cause`` for a Bedrock error, as Step Functions reports an SDK integration's."""
    return f"{SERVICE}.{error.code}", error.message
