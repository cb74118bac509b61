"""The tool-use loop of a ``kind: llm`` agent: Converse turns, tool calls through the plane, budgets, ledger.

Pure: the model call, the tool call, the approval gate and the ledger are passed in. Each step of the loop is
a function of the conversation (:func:`request_for`, :func:`read_turn`, :func:`tool_results`), so the same
steps can be emitted as states of a workflow; :func:`run_loop` strings them together in one process.

Structured output: the model is offered the contract's tools plus ``final_answer``, whose input schema is the
contract's output model, and must call a tool every turn (``toolChoice: any``). A ``final_answer`` that does not
validate is sent back as a tool error up to ``limits.answer_retries`` times, then it is a :class:`ModelError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.capability import FINAL_ANSWER_TOOL, Guardrail, Inference, LlmLimits
from contracts.models import MODELS
from contracts.payloads import schema_model
from functions.runtime.canonical import canonical_bytes, canonical_json, sha256_hex
from functions.runtime.errors import AgentError, StepPaused

STOPPED_BY_FILTER = frozenset({"guardrail_intervened", "content_filtered"})
MAX_TOOL_ERROR_CHARS = 500


class BudgetExceeded(AgentError):
    """The run crossed one of its contract's limits (turns, input or output tokens, cost)."""


class ModelError(AgentError):
    """The model answered outside the contract (no final answer, an invalid one, a filtered one) or failed."""


class ThrottlingException(AgentError):
    """The model's quota refused the call: another implementation should take the step."""


class ApprovalRequired(StepPaused):
    """The model asked for a tool with external side effects; it runs only once a person approved it.

    The loop stops here: :attr:`paused` is where it stands, so a workflow's agent step can resume it after a person
    decided (the loop's function stores the conversation and hands the step a checkpoint).
    """

    def __init__(self, spec: ToolSpec, call: ToolCall) -> None:
        super().__init__(
            f"{spec.name} has external side effects: a person must approve it (arguments sha256 {call.input_sha256})"
        )
        self.tool = spec.name
        self.call = call
        self.paused: Paused | None = None


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToolSpec(_Config):
    """A capability the model may call, as the plane dispatches it."""

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str
    input_schema: dict[str, Any]
    accept: str = Field(description="The version range dispatch accepts, e.g. 1.x.")
    capability_version: str
    side_effects: Literal["read-only", "idempotent-write", "external-action"]


class TokenPrice(_Config):
    input_per_1k_tokens: float = Field(ge=0)
    output_per_1k_tokens: float = Field(ge=0)
    cache_write_per_1k_tokens: float | None = Field(default=None, ge=0, description="Unset: the input price.")
    cache_read_per_1k_tokens: float | None = Field(default=None, ge=0, description="Unset: the input price.")

    def cost(self, input_tokens: int, output_tokens: int, cache_read: int = 0, cache_write: int = 0) -> float:
        write = self.input_per_1k_tokens if self.cache_write_per_1k_tokens is None else self.cache_write_per_1k_tokens
        read = self.input_per_1k_tokens if self.cache_read_per_1k_tokens is None else self.cache_read_per_1k_tokens
        return (
            input_tokens / 1000 * self.input_per_1k_tokens
            + output_tokens / 1000 * self.output_per_1k_tokens
            + cache_write / 1000 * write
            + cache_read / 1000 * read
        )


class AgentConfig(_Config):
    """What synth stages beside the loop's code (``agent.json``): the contract's llm runtime, resolved."""

    name: str
    version: str
    provider: Literal["bedrock", "sagemaker"] = "bedrock"
    model_id: str = Field(
        description="What each turn names: the Bedrock inference profile or model id, or the served model's name."
    )
    prompt: str
    prompt_sha256: str
    tools: list[ToolSpec]
    input_model: str
    output_model: str
    output_schema: dict[str, Any]
    limits: LlmLimits
    inference: Inference
    guardrail: Guardrail | None = None
    price: TokenPrice
    models: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="The JSON Schema of each of the project's own io types (by name)."
    )

    def payload_model(self, name: str) -> type[BaseModel]:
        """An io type: the project's from its schema here, else the plane's own."""
        if name in self.models:
            return schema_model(self.models[name], name=name, where=f"{self.name} agent.json")
        return MODELS[name]


@dataclass(frozen=True)
class ToolCall:
    tool_use_id: str
    name: str
    input: dict[str, Any]

    @property
    def input_sha256(self) -> str:
        return sha256_hex(canonical_bytes(self.input))


@dataclass(frozen=True)
class Turn:
    """One model turn, as the ledger records it: what was asked (hashed), what came back, what it cost."""

    number: int
    model_id: str
    prompt_sha256: str
    request_sha256: str
    content_sha256: str
    stop_reason: str
    input_tokens: int
    output_tokens: int
    latency_ms: float
    model_latency_ms: float | None
    cost_usd: float
    tool_calls: tuple[ToolCall, ...]
    served_by: str | None = None  # who answered, when the endpoint says (a local stand-in says so)
    cache_read_tokens: int = 0  # input read from the prompt cache (priced apart; counted in the input budget)
    cache_write_tokens: int = 0  # input written to it
    provider: str = "bedrock"  # sagemaker: a self-hosted model, its tokens unpriced (its endpoint's hours are)
    # What was sent (the request's messages) and answered (the message's content): the ledger keeps their sha256
    # (request_sha256, content_sha256), the documents bucket the content under those digests.
    sent: list[Any] = field(default_factory=list, repr=False, compare=False)
    answered: list[Any] = field(default_factory=list, repr=False, compare=False)

    def summary(self) -> dict[str, Any]:
        return {
            "turn": self.number,
            "model_id": self.model_id,
            "prompt_sha256": self.prompt_sha256,
            "request_sha256": self.request_sha256,
            "content_sha256": self.content_sha256,
            "stop_reason": self.stop_reason,
            "usage": {
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                **({"cache_read_tokens": self.cache_read_tokens} if self.cache_read_tokens else {}),
                **({"cache_write_tokens": self.cache_write_tokens} if self.cache_write_tokens else {}),
            },
            "latency_ms": round(self.latency_ms, 3),
            "model_latency_ms": self.model_latency_ms,
            "cost_usd": round(self.cost_usd, 8),
            "tool_calls": [{"name": c.name, "input_sha256": c.input_sha256} for c in self.tool_calls],
            **({"served_by": self.served_by} if self.served_by else {}),
            **({"provider": self.provider} if self.provider != "bedrock" else {}),
        }


class Totals(_Config):
    turns: int = Field(ge=0)
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cost_usd: float = Field(ge=0)
    tool_calls: int = Field(ge=0)
    cache_read_tokens: int = Field(default=0, ge=0)
    cache_write_tokens: int = Field(default=0, ge=0)


@dataclass
class Usage:
    """Totals over the run's turns, checked against the limits after every turn."""

    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    tool_calls: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    turn_log: list[Turn] = field(default_factory=list)

    def add(self, turn: Turn) -> None:
        self.turns += 1
        self.input_tokens += turn.input_tokens
        self.output_tokens += turn.output_tokens
        self.cache_read_tokens += turn.cache_read_tokens
        self.cache_write_tokens += turn.cache_write_tokens
        self.cost_usd += turn.cost_usd
        self.tool_calls += sum(1 for c in turn.tool_calls if c.name != FINAL_ANSWER_TOOL)
        self.turn_log.append(turn)

    def crossed(self, limits: LlmLimits) -> str | None:
        read = self.input_tokens + self.cache_read_tokens + self.cache_write_tokens  # cached input is input too
        if read > limits.max_input_tokens:
            return f"input tokens {read} > max_input_tokens {limits.max_input_tokens}"
        if self.output_tokens > limits.max_output_tokens:
            return f"output tokens {self.output_tokens} > max_output_tokens {limits.max_output_tokens}"
        if self.cost_usd > limits.max_cost_usd:
            return f"cost ${self.cost_usd:.6f} > max_cost_usd ${limits.max_cost_usd}"
        return None

    @classmethod
    def carried(cls, totals: Totals) -> Usage:
        """What a paused loop had spent, to go on counting from (its turns are on the ledger already)."""
        return cls(**totals.model_dump())

    def metrics(self) -> dict[str, float]:
        return {
            "turns": self.turns,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost_usd, 8),
            "tool_calls": self.tool_calls,
            # only a loop that used the prompt cache reports it (a contract declares these metrics to emit them)
            **({"cache_read_tokens": self.cache_read_tokens} if self.cache_read_tokens else {}),
            **({"cache_write_tokens": self.cache_write_tokens} if self.cache_write_tokens else {}),
        }


Converse = Callable[[dict[str, Any]], dict[str, Any]]
CallTool = Callable[[ToolSpec, dict[str, Any], str], dict[str, Any]]  # spec, input, call id -> tool output
RecordTurn = Callable[[Turn], object]


def tool_config(config: AgentConfig) -> dict[str, Any]:
    tools = [
        {"toolSpec": {"name": t.name, "description": t.description, "inputSchema": {"json": t.input_schema}}}
        for t in config.tools
    ]
    final = {
        "name": FINAL_ANSWER_TOOL,
        "description": f"Your answer: a {config.output_model} object. Call it once, when you are done.",
        "inputSchema": {"json": config.output_schema},
    }
    return {"tools": [*tools, {"toolSpec": final}], "toolChoice": {"any": {}}}


def request_for(config: AgentConfig, messages: list[dict[str, Any]], usage: Usage) -> dict[str, Any]:
    """The next Converse request; a turn never asks for more output than the run's budget has left."""
    per_turn = config.inference.max_tokens or config.limits.max_output_tokens
    left = max(1, config.limits.max_output_tokens - usage.output_tokens)
    cached = [{"cachePoint": {"type": "default"}}] if config.inference.cache_prompt else []
    tools = tool_config(config)
    request: dict[str, Any] = {
        "modelId": config.model_id,
        "system": [{"text": config.prompt}, *cached],  # the prefix every turn repeats: prompt, then tools
        "messages": list(messages),  # a snapshot: the conversation goes on after this request
        "inferenceConfig": {
            "maxTokens": min(per_turn, left),
            "temperature": config.inference.temperature,
            "topP": config.inference.top_p,
        },
        "toolConfig": {**tools, "tools": [*tools["tools"], *cached]},
    }
    if config.guardrail is not None:
        request["guardrailConfig"] = {
            "guardrailIdentifier": config.guardrail.id,
            "guardrailVersion": config.guardrail.version,
        }
    return request


def read_turn(
    config: AgentConfig, number: int, request: dict[str, Any], response: dict[str, Any], latency_ms: float
) -> Turn:
    """The turn's record from the Converse response (usage, stop reason, tool calls)."""
    try:
        message = response["output"]["message"]
        usage = response["usage"]
        stop_reason = str(response["stopReason"])
        content = list(message.get("content", []))
        input_tokens, output_tokens = int(usage["inputTokens"]), int(usage["outputTokens"])
        cache_read, cache_write = int(usage.get("cacheReadInputTokens", 0)), int(usage.get("cacheWriteInputTokens", 0))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"turn {number}: the Converse response lacks {exc}") from None
    calls = _tool_calls(content)
    metrics = response.get("metrics") or {}
    return Turn(
        number=number,
        model_id=config.model_id,
        prompt_sha256=config.prompt_sha256,
        request_sha256=sha256_hex(canonical_bytes(request["messages"])),
        content_sha256=sha256_hex(canonical_bytes(content)),
        stop_reason=stop_reason,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        latency_ms=latency_ms,
        model_latency_ms=float(metrics["latencyMs"]) if "latencyMs" in metrics else None,
        cost_usd=config.price.cost(input_tokens, output_tokens, cache_read, cache_write),
        tool_calls=calls,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        served_by=_served_by(response),
        provider=config.provider,
        sent=list(request["messages"]),
        answered=content,
    )


def _tool_calls(content: Sequence[Any]) -> tuple[ToolCall, ...]:
    return tuple(
        ToolCall(str(b["toolUse"]["toolUseId"]), str(b["toolUse"]["name"]), _as_object(b["toolUse"].get("input")))
        for b in content
        if isinstance(b, dict) and "toolUse" in b
    )


def _served_by(response: dict[str, Any]) -> str | None:
    """Who answered, when the endpoint says so: the local plane's stand-in names itself here."""
    fields = response.get("additionalModelResponseFields")
    marker = fields.get("agentplane") if isinstance(fields, dict) else None
    if isinstance(marker, dict) and marker.get("localStandIn"):
        return f"local stand-in {marker.get('model', '?')}"
    return None


def _as_object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {"value": value}


def _error_result(call: ToolCall, message: str) -> dict[str, Any]:
    return {
        "toolResult": {
            "toolUseId": call.tool_use_id,
            "content": [{"text": message[:MAX_TOOL_ERROR_CHARS]}],
            "status": "error",
        }
    }


class ToolDecision(_Config):
    """A person's decision on one external-action call: the tool and the sha256 of its exact arguments."""

    tool: str
    args_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    decision: Literal["approve", "reject", "timeout"]
    reason: str | None = Field(default=None, max_length=1000)


# An approval check: None lets the call run; a text refuses it (the model reads it as the tool's error).
Approve = Callable[[ToolSpec, ToolCall], str | None]


def approve_listed(decisions: Sequence[ToolDecision], *, may_ask: bool = True) -> Approve:
    """The calls people decided on (each exact call: tool and arguments); any other external action pauses the
    loop for a person (:class:`ApprovalRequired`), or is refused when the step may ask for no more approvals."""
    decided = {(d.tool, d.args_sha256): d for d in decisions}

    def approve(spec: ToolSpec, call: ToolCall) -> str | None:
        found = decided.get((spec.name, call.input_sha256))
        if found is None:
            if may_ask:
                raise ApprovalRequired(spec, call)
            return f"{spec.name} has external side effects and this step may ask for no more approvals: not run"
        if found.decision == "approve":
            return None
        why = f": {found.reason}" if found.reason else ""
        return f"a person did not approve this call of {spec.name} ({found.decision}{why}): not run"

    return approve


def tool_results(
    config: AgentConfig,
    number: int,
    calls: Sequence[ToolCall],
    *,
    call_tool: CallTool,
    approve: Approve,
) -> dict[str, Any]:
    """The user message answering every tool call of turn ``number``: each call dispatched, in order."""
    specs = {t.name: t for t in config.tools}
    results: list[dict[str, Any]] = []
    for index, call in enumerate(calls):
        spec = specs.get(call.name)
        if spec is None:
            offered = ", ".join([*specs, FINAL_ANSWER_TOOL])
            results.append(_error_result(call, f"unknown tool {call.name!r}; offered: {offered}"))
            continue
        if spec.side_effects == "external-action":
            refused = approve(spec, call)  # raises ApprovalRequired while a person has yet to decide
            if refused is not None:
                results.append(_error_result(call, refused))
                continue
        try:
            output = call_tool(spec, call.input, f"{number}.{index}")
        except ToolFailed as failed:
            results.append(_error_result(call, str(failed)))
            continue
        results.append({"toolResult": {"toolUseId": call.tool_use_id, "content": [{"json": output}]}})
    return {"role": "user", "content": results}


class ToolFailed(Exception):
    """A tool call that failed: the model is told (a tool error), the loop goes on."""


def final_answer(config: AgentConfig, output_model: type[BaseModel], turn: Turn) -> tuple[BaseModel | None, str | None]:
    """The turn's validated answer, or why there is none (None, None: the turn asked for tools)."""
    for call in turn.tool_calls:
        if call.name == FINAL_ANSWER_TOOL:
            try:
                return output_model.model_validate(call.input), None
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "<root>"
                return None, f"final_answer does not match {config.output_model}: {where}: {first['msg']}"
    if turn.stop_reason in STOPPED_BY_FILTER:
        raise ModelError(f"turn {turn.number}: stopped by {turn.stop_reason}")
    if turn.tool_calls:
        return None, None
    return None, f"turn {turn.number} ended ({turn.stop_reason}) without calling {FINAL_ANSWER_TOOL}"


@dataclass
class Paused:
    """A loop stopped for a person: the conversation through the turn whose tool calls wait, and what it spent."""

    messages: list[dict[str, Any]]
    usage: Usage
    turn: int
    invalid: int

    @property
    def calls(self) -> tuple[ToolCall, ...]:
        """The waiting turn's tool calls, read back from its assistant message."""
        return _tool_calls(self.messages[-1].get("content", []))


class Checkpoint(_Config):
    """A paused loop as the run's state carries it; the conversation itself is stored apart, by its sha256."""

    turn: int = Field(ge=1, description="The turn whose tool calls wait.")
    invalid: int = Field(ge=0)
    usage: Totals
    decisions: list[ToolDecision] = Field(default_factory=list, description="People's decisions so far.")
    asked: int = Field(ge=1, description="Approvals the step has asked for, this one included.")
    conversation_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @classmethod
    def of(cls, paused: Paused, decisions: Sequence[ToolDecision], asked: int, conversation_sha256: str) -> Checkpoint:
        return cls(
            turn=paused.turn,
            invalid=paused.invalid,
            usage=Totals.model_validate(paused.usage.metrics()),
            decisions=list(decisions),
            asked=asked,
            conversation_sha256=conversation_sha256,
        )

    def resumed(self, messages: list[dict[str, Any]]) -> Paused:
        return Paused(messages=messages, usage=Usage.carried(self.usage), turn=self.turn, invalid=self.invalid)


def run_loop(
    config: AgentConfig,
    output_model: type[BaseModel],
    payload: dict[str, Any],
    *,
    converse: Converse,
    call_tool: CallTool,
    record_turn: RecordTurn,
    approve: Approve,
    resume: Paused | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[BaseModel, Usage]:
    """Turns until a valid final answer; every turn is recorded before its budget is checked.

    ``resume``: a loop that paused for an approval goes on from there, answering the waiting turn's calls first.
    """
    if resume is None:
        usage, invalid, first = Usage(), 0, 1
        messages: list[dict[str, Any]] = [{"role": "user", "content": [{"text": canonical_json(payload)}]}]
    else:
        usage, invalid, first = resume.usage, resume.invalid, resume.turn + 1
        messages = list(resume.messages)
        _answer(config, resume.turn, resume.calls, messages, usage, invalid, call_tool=call_tool, approve=approve)
    for number in range(first, config.limits.max_turns + 1):
        request = request_for(config, messages, usage)
        started = clock()
        response = converse(request)
        turn = read_turn(config, number, request, response, (clock() - started) * 1000)
        usage.add(turn)
        record_turn(turn)
        crossed = usage.crossed(config.limits)
        if crossed is not None:
            raise BudgetExceeded(f"{config.name}: {crossed} after turn {number}")
        answer, problem = final_answer(config, output_model, turn)
        if answer is not None:
            return answer, usage
        messages.append({"role": "assistant", "content": response["output"]["message"]["content"]})
        if problem is None:
            _answer(config, number, turn.tool_calls, messages, usage, invalid, call_tool=call_tool, approve=approve)
            continue
        invalid += 1
        if invalid > config.limits.answer_retries:
            raise ModelError(f"{config.name}: {problem} (after {invalid} invalid answer(s))")
        if turn.tool_calls:  # every tool call gets a result, the invalid answer a tool error
            messages.append({"role": "user", "content": [_error_result(c, problem) for c in turn.tool_calls]})
        else:
            messages.append({"role": "user", "content": [{"text": f"{problem}. Call {FINAL_ANSWER_TOOL}."}]})
    raise BudgetExceeded(f"{config.name}: max_turns {config.limits.max_turns} reached without a final answer")


def _answer(
    config: AgentConfig,
    number: int,
    calls: Sequence[ToolCall],
    messages: list[dict[str, Any]],
    usage: Usage,
    invalid: int,
    *,
    call_tool: CallTool,
    approve: Approve,
) -> None:
    """Answer turn ``number``'s calls; a call waiting for a person stops the loop where it stands."""
    try:
        messages.append(tool_results(config, number, calls, call_tool=call_tool, approve=approve))
    except ApprovalRequired as pause:
        pause.paused = Paused(messages=list(messages), usage=usage, turn=number, invalid=invalid)
        raise
