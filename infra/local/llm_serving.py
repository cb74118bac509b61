"""The local plane's stand-in for a standard LLM serving image (vLLM, LMI, TGI): ``/ping`` and the
OpenAI-compatible chat completions those images answer at ``/invocations``, played by a local model.

The model is the local Bedrock's kind (``infra.local.bedrock.Model``, a ``ScriptedModel`` unless a test registers
another), so a loop meets the same tool-use behaviour, token counts and stop reasons whichever provider it names.
Each answer says it came from a stand-in. Not emulated: the image's own engine (batching, KV cache, tokenizer),
its start-up time, and loading the weights from S3; the contract's container settings are read, not applied.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from contracts.models import ChatMessage, ChatRequest
from contracts.validation import first_error
from infra.local.bedrock.model import ConverseRequest, Model, ModelTurn
from infra.local.bedrock.service import finish_turn

FINISH_REASONS = {"tool_use": "tool_calls", "max_tokens": "length", "content_filtered": "content_filter"}
Send = Callable[[dict[str, Any]], Any]


class ServingStandIn:
    """An ASGI app answering as the ``image`` serving image would; ``model()`` is the local model deciding each
    turn (asked per request, so a test may swap it while the endpoint serves)."""

    def __init__(self, image: str, model: Callable[[], Model], *, emit: Callable[[str], None] | None = None) -> None:
        self.image = image
        self.model = model
        self.emit = emit
        self.requests = 0

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Any], send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        route = (scope["method"], scope["path"])
        if route == ("GET", "/ping"):
            status, answer = 200, {"status": "healthy"}
        elif route == ("POST", "/invocations"):
            status, answer = self.answer(body)
        else:
            status, answer = 404, _error(404, f"no route {scope['method']} {scope['path']}")
        payload = json.dumps(answer).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    def answer(self, body: bytes) -> tuple[int, dict[str, Any]]:
        """One chat completion; a request the API refuses is a 400 with the server's error body."""
        try:
            request = ChatRequest.model_validate_json(body)
        except ValidationError as error:
            return 400, _error(400, first_error(error))
        parsed = ConverseRequest.parse(converse_request(request), request.model)
        model = self.model()
        try:
            turn = model.respond(parsed)
        except Exception as exc:  # a local model's bug: the server's 500, which SageMaker hands on as ModelError
            return 500, _error(500, f"the model failed: {type(exc).__name__}: {exc}")
        if not isinstance(turn, ModelTurn):
            return 500, _error(500, f"the model answered {type(turn).__name__}, not a turn")
        self.requests += 1
        completion = self.completion(model, request, parsed, turn)
        if self.emit is not None:
            self.emit(json.dumps({"stand_in": self.image, "model": request.model, "usage": completion["usage"]}))
        return 200, completion

    def completion(
        self, model: Model, request: ChatRequest, parsed: ConverseRequest, turn: ModelTurn
    ) -> dict[str, Any]:
        content, reason, output_tokens = finish_turn(turn, parsed)
        text = "".join(block["text"] for block in content if "text" in block)
        calls = [
            {
                "id": use["toolUseId"],
                "type": "function",
                "function": {"name": use["name"], "arguments": json.dumps(use.get("input", {}))},
            }
            for block in content
            if (use := block.get("toolUse"))
        ]
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = calls
        input_tokens = parsed.input_tokens()
        return {
            "id": f"chatcmpl-local-{self.requests}",
            "object": "chat.completion",
            "model": request.model,
            "choices": [{"index": 0, "message": message, "finish_reason": FINISH_REASONS.get(reason, "stop")}],
            "usage": {
                "prompt_tokens": input_tokens,
                "completion_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
            },
            "agentplane": {
                "localStandIn": True,
                "model": f"{model.id} (playing the {self.image} serving image)",
                "description": model.description,
            },
        }


def converse_request(request: ChatRequest) -> dict[str, Any]:
    """The chat request in Converse's shape, as the local models read requests: consecutive tool and user
    messages become one user turn, the system messages its system prompt."""
    system = [{"text": m.content} for m in request.messages if m.role == "system" and m.content]
    messages: list[dict[str, Any]] = []
    for message in (m for m in request.messages if m.role != "system"):
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})
    converse: dict[str, Any] = {"modelId": request.model, "messages": messages, "system": system}
    if request.tools and request.tool_choice != "none":
        converse["toolConfig"] = {
            "tools": [
                {
                    "toolSpec": {
                        "name": tool.function.name,
                        "description": tool.function.description,
                        "inputSchema": {"json": tool.function.parameters},
                    }
                }
                for tool in request.tools
            ],
            **({"toolChoice": {"any": {}}} if request.tool_choice == "required" else {}),
        }
    inference = {"maxTokens": request.max_tokens, "temperature": request.temperature, "topP": request.top_p}
    converse["inferenceConfig"] = {key: value for key, value in inference.items() if value is not None}
    if request.stop:
        converse["inferenceConfig"]["stopSequences"] = request.stop
    return converse


def _blocks(message: ChatMessage) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [{"toolResult": {"toolUseId": message.tool_call_id, "content": [{"text": message.content or ""}]}}]
    blocks: list[dict[str, Any]] = [{"text": message.content}] if message.content else []
    for call in message.tool_calls or []:
        try:
            arguments = json.loads(call.function.arguments or "{}")
        except ValueError:
            arguments = {"value": call.function.arguments}
        blocks.append({"toolUse": {"toolUseId": call.id, "name": call.function.name, "input": arguments}})
    return blocks


def _error(code: int, message: str) -> dict[str, Any]:
    # The shape vLLM's OpenAI-compatible server answers errors in.
    return {"object": "error", "message": message, "type": "BadRequestError" if code == 400 else "Error", "code": code}
