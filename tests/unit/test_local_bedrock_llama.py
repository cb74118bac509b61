"""The opt-in real model's adapter, with llama-cpp-python replaced by a fake: prompts, grammars, the switch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.local.bedrock import FINAL_ANSWER, LocalBedrock, ScriptedModel
from infra.local.bedrock import llama as adapter
from infra.local.bedrock.llama import LlamaModel, LocalModelUnavailable, model_from_environment

pytestmark = pytest.mark.unit

SCHEMA = {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}


class FakeLlama:
    """Answers as llama-cpp-python's create_chat_completion does, and keeps what it was asked."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def create_chat_completion(self, **request: Any) -> dict[str, Any]:
        self.calls.append(request)
        schema = (request.get("response_format") or {}).get("schema")
        content = json.dumps({"query": "from the model"}) if schema else "A short answer."
        return {"choices": [{"message": {"role": "assistant", "content": content}}]}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeLlama:
    llama = FakeLlama()
    monkeypatch.setattr(adapter, "_llama", lambda path, threads: llama)
    return llama


def body(*tools: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    request: dict[str, Any] = {
        "modelId": "amazon.nova-lite-v1:0",
        "system": [{"text": "Check claims."}],
        "messages": [{"role": "user", "content": [{"text": "Is the sky green?"}]}],
    }
    if tools:
        specs = [{"toolSpec": {"name": n, "description": f"{n} tool", "inputSchema": {"json": s}}} for n, s in tools]
        request["toolConfig"] = {"tools": specs, "toolChoice": {"any": {}}}
    return request


def test_tool_arguments_are_generated_under_the_tools_schema(fake: FakeLlama) -> None:
    bedrock = LocalBedrock(default_model=lambda model_id: LlamaModel(model_id, Path("model.gguf")))
    response = bedrock.converse(body(("search", SCHEMA), (FINAL_ANSWER, SCHEMA)))
    use = response["output"]["message"]["content"][0]["toolUse"]
    assert (use["name"], use["input"]) == ("search", {"query": "from the model"})
    asked = fake.calls[0]
    assert asked["response_format"] == {"type": "json_object", "schema": SCHEMA}
    assert asked["messages"][0]["content"].startswith("Check claims.\nNow call the tool search (search tool).")
    assert asked["messages"][1] == {"role": "user", "content": "user: Is the sky green?"}
    assert "model.gguf on CPU" in response["additionalModelResponseFields"]["agentplane"]["description"]


def test_without_tools_the_model_answers_in_text(fake: FakeLlama) -> None:
    bedrock = LocalBedrock(default_model=lambda model_id: LlamaModel(model_id, Path("model.gguf")))
    response = bedrock.converse({**body(), "inferenceConfig": {"maxTokens": 50, "stopSequences": ["END"]}})
    assert response["output"]["message"]["content"] == [{"text": "A short answer."}]
    assert (fake.calls[0]["max_tokens"], fake.calls[0]["stop"]) == (50, ["END"])
    assert "response_format" not in fake.calls[0]


def test_the_switch_defaults_to_the_scripted_model_and_refuses_what_cannot_run(tmp_path: Path) -> None:
    assert model_from_environment({}) is ScriptedModel
    assert model_from_environment({"AGENTPLANE_LOCAL_LLM": "scripted"}) is ScriptedModel
    for choice in (str(tmp_path / "missing.gguf"), "gpt-5"):
        with pytest.raises(LocalModelUnavailable, match="no such model"):
            model_from_environment({"AGENTPLANE_LOCAL_LLM": choice})
