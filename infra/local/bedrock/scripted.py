"""The deterministic stand-in model: a default policy derived from the request, a policy of your own, or a script.

The default policy plays an agent that uses every tool it is offered once, then answers:

- each offered tool but ``final_answer`` that the conversation has not called yet is called, in the order offered
  (one a turn; all at once with ``parallel_tool_calls``), with arguments built from its ``inputSchema`` and filled
  by name from earlier tool results (newest first) and the JSON of the first user message;
- then ``final_answer`` is called with a value built from its ``inputSchema`` the same way;
- ``toolChoice: {tool: {name}}`` calls that tool; with no tools, the answer is text (JSON built from
  ``outputConfig``'s schema when the request has one), which says it comes from a scripted stand-in.

A script is a list of turns (or policies) played by turn number: the conversation's count of assistant messages.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from infra.local.bedrock.model import FINAL_ANSWER, ConverseRequest, ModelTurn
from infra.local.bedrock.schema_values import ValueBuilder

Policy = Callable[[ConverseRequest], ModelTurn]
DESCRIPTION = "agentplane ScriptedModel: a deterministic local stand-in, not a language model"


def default_policy(request: ConverseRequest, *, parallel_tool_calls: bool = False) -> ModelTurn:
    sources = [result.value for result in reversed(request.tool_results()) if result.status == "success"]
    if (user := request.first_user_json()) is not None:
        sources.append(user)

    def call(name: str) -> tuple[str, object]:
        tool = request.tool(name)
        schema = tool.input_schema if tool is not None else {"type": "object"}
        return name, ValueBuilder(schema, sources).build()

    if request.tool_choice == "tool" and request.tool_choice_name:
        return ModelTurn.tool_uses([call(request.tool_choice_name)])
    called = set(request.called_tools())
    pending = [tool.name for tool in request.tools if tool.name != FINAL_ANSWER and tool.name not in called]
    if pending:
        return ModelTurn.tool_uses([call(name) for name in (pending if parallel_tool_calls else pending[:1])])
    if request.tool(FINAL_ANSWER) is not None:
        return ModelTurn.tool_uses([call(FINAL_ANSWER)])
    if request.tool_choice == "any" and request.tools:
        return ModelTurn.tool_uses([call(request.tools[0].name)])  # it must call a tool, and has used them all
    if request.output_schema is not None:
        return ModelTurn.text(json.dumps(ValueBuilder(request.output_schema, sources).build()))
    results = len(request.tool_results())
    return ModelTurn.text(f"Scripted local stand-in for {request.model_id}: answered after {results} tool result(s).")


@dataclass
class ScriptedModel:
    """A deterministic local model for ``id``: ``policy`` if given, else ``script``, else the default policy.

    ``after`` says what a script does past its last turn: ``repeat`` its last turn (endless tool calls), or go on
    with the ``default`` policy.
    """

    id: str
    policy: Policy | None = None
    script: Sequence[ModelTurn | Policy] = ()
    after: Literal["repeat", "default"] = "repeat"
    parallel_tool_calls: bool = False
    description: str = field(default=DESCRIPTION)

    def respond(self, request: ConverseRequest) -> ModelTurn:
        if self.policy is not None:
            return self.policy(request)
        if self.script and (request.turn < len(self.script) or self.after == "repeat"):
            step = self.script[min(request.turn, len(self.script) - 1)]
            return step if isinstance(step, ModelTurn) else step(request)
        return default_policy(request, parallel_tool_calls=self.parallel_tool_calls)
