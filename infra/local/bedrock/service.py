"""A local Bedrock Runtime: Converse over HTTP on 127.0.0.1 and in-process, answered by pluggable local models.

A request goes through what Bedrock does to it, in this order: its model id (``ValidationException`` for one
that names no model), the caller's IAM (``AccessDeniedException``), the request's shape against botocore's service
model and the conversation's rules (``ValidationException``), injected faults, the model's quotas
(``ThrottlingException``), then the model. The model's turn is cut at the first stop sequence
(``stop_sequence``) and at ``maxTokens`` (``max_tokens``), given ids for its tool calls, counted, and answered with
``usage`` and ``metrics``. Every answer says it comes from a local stand-in: ``additionalModelResponseFields``
holds ``{"agentplane": {"localStandIn": true, "model": ..., "description": ...}}`` and, over HTTP, the
``X-Agentplane-Local-Model`` header names the model.
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import IO, Any

from infra.local.bedrock.authorizer import ACTION, Authorizer, Principal
from infra.local.bedrock.conversation import check_conversation
from infra.local.bedrock.errors import BedrockError, validation
from infra.local.bedrock.model import (
    CHARS_PER_TOKEN,
    ConverseRequest,
    Model,
    ModelTurn,
    StopReason,
    block_tokens,
    compact,
)
from infra.local.bedrock.scripted import ScriptedModel
from infra.local.bedrock.shapes import check_request, response_problems
from infra.local.template import ACCOUNT_ID, REGION

DEFAULT_MAX_TOKENS = 4096  # what a request without inferenceConfig.maxTokens may produce
WINDOW_S = 60.0  # quotas are per minute
# Cross-Region inference profiles put a geography before the model id: us.anthropic.claude-...
PROFILE_PREFIXES = ("us", "us-gov", "eu", "apac", "jp", "au", "ca", "global")
_FOUNDATION_ID = re.compile(r"^[a-z0-9-]{1,63}\.[a-z0-9-]{1,63}([.:]?[a-z0-9-]{1,63})*$")
_ARN = re.compile(r"^arn:aws(-[^:]+)?:bedrock:(?P<region>[a-z0-9-]+):(?P<account>[0-9]*):(?P<kind>[a-z-]+)/(?P<id>.+)$")
Clock = Callable[[], float]


@dataclass(frozen=True)
class Quota:
    """A model's per-minute quotas, as Bedrock's service quotas set them; ``None`` is unlimited."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


@dataclass
class ModelUsage:
    """What one model id (as callers named it) answered: requests, tokens, and the errors it refused with."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    errors: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelRef:
    """A request's ``modelId`` and what it names: a foundation model, possibly through an inference profile."""

    requested: str
    foundation: str
    profile: str | None = None

    def resources(self, region: str, account_id: str) -> list[str]:
        """The ARNs IAM checks ``bedrock:InvokeModel`` on for this model id."""
        arns = [f"arn:aws:bedrock:{region}::foundation-model/{self.foundation}"]
        if self.profile is not None:
            arns.insert(0, f"arn:aws:bedrock:{region}:{account_id}:inference-profile/{self.profile}")
        return arns

    def ids(self) -> tuple[str, ...]:
        """The ids a model, quota or fault may be registered under for this request, the most specific first."""
        return tuple(dict.fromkeys(key for key in (self.requested, self.profile, self.foundation) if key))


def resolve_model_id(model_id: str) -> ModelRef | None:
    """What a ``modelId`` names, or ``None`` for one no foundation model or inference profile answers to."""
    match = _ARN.match(model_id)
    if match:
        if match["kind"] == "foundation-model" and _FOUNDATION_ID.match(match["id"]):
            return ModelRef(model_id, match["id"])
        if match["kind"] == "inference-profile":
            ref = resolve_model_id(match["id"])
            return ModelRef(model_id, ref.foundation, match["id"]) if ref and ref.profile else None
        return None  # provisioned, custom, imported models, prompts, routers: not emulated
    if not _FOUNDATION_ID.match(model_id):
        return None
    prefix, _, rest = model_id.partition(".")
    if prefix in PROFILE_PREFIXES and rest.count(".") >= 1:
        return ModelRef(model_id, rest, model_id)
    return ModelRef(model_id, model_id)


@dataclass
class _Fault:
    error_code: str
    remaining: int | None
    rate: float


class LocalBedrock:
    """Bedrock Runtime's Converse, answered by local models.

    ``models`` are served by their ids (a foundation model id also answers for its inference profiles); any other
    foundation model or inference profile id is answered by ``default_model(foundation_model_id)`` (a
    ``ScriptedModel`` with the default policy) unless that is ``None``, when it is an invalid model identifier.
    ``authorizer`` decides the caller's IAM (``MotoAuthorizer`` on the local plane); without one nothing is
    evaluated. ``log`` gets one line per refusal by IAM.
    """

    def __init__(
        self,
        models: Iterable[Model] = (),
        *,
        default_model: Callable[[str], Model] | None = ScriptedModel,
        quotas: Mapping[str, Quota] | None = None,
        authorizer: Authorizer | None = None,
        region: str = REGION,
        account_id: str = ACCOUNT_ID,
        clock: Clock = time.monotonic,
        seed: int = 0,
        log: IO[str] | None = None,
    ) -> None:
        self.models: dict[str, Model] = {model.id: model for model in models}
        self.default_model = default_model
        self.quotas: dict[str, Quota] = dict(quotas or {})
        self.authorizer = authorizer
        self.region = region
        self.account_id = account_id
        self.clock = clock
        self.log = log
        self.denied: list[tuple[str, str]] = []  # (caller, resource) IAM refused
        self._random = random.Random(seed)  # noqa: S311 - fault rates, not secrets
        self._defaults: dict[str, Model] = {}
        self._faults: dict[str, list[_Fault]] = {}
        self._windows: dict[str, deque[list[float]]] = {}  # per quota: [when, tokens] of each admitted request
        self._usage: dict[str, ModelUsage] = {}
        self._lock = threading.Lock()
        self._server: Any = None

    # --- configuration -----------------------------------------------------------------------------------

    def add_model(self, model: Model) -> None:
        """Serve ``model`` for its id (replacing any model there), e.g. a ``ScriptedModel`` with a script."""
        with self._lock:
            self.models[model.id] = model

    def remove_model(self, model_id: str) -> None:
        with self._lock:
            self.models.pop(model_id, None)

    def set_quota(self, model_id: str, quota: Quota | None) -> None:
        with self._lock:
            if quota is None:
                self.quotas.pop(model_id, None)
            else:
                self.quotas[model_id] = quota
            self._windows.pop(model_id, None)

    def inject(self, model_id: str, error_code: str, *, times: int | None = None, rate: float = 1.0) -> None:
        """Answer calls to ``model_id`` (``*``: every model) with Bedrock's ``error_code``.

        ``times`` calls (``None``: until ``clear_faults``), each hit with probability ``rate`` (seeded).
        """
        BedrockError(error_code)  # refuses a code Converse does not answer with
        if times is not None and times < 1:
            raise ValueError("times must be at least 1")
        if not 0 < rate <= 1:
            raise ValueError("rate must be in (0, 1]")
        with self._lock:
            self._faults.setdefault(model_id, []).append(_Fault(error_code, times, rate))

    def clear_faults(self, model_id: str | None = None) -> None:
        with self._lock:
            if model_id is None:
                self._faults.clear()
            else:
                self._faults.pop(model_id, None)

    def usage(self) -> dict[str, ModelUsage]:
        """Totals per model id as callers named it."""
        with self._lock:
            return {key: replace(value, errors=dict(value.errors)) for key, value in self._usage.items()}

    # --- serving -----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Serve Converse over HTTP on 127.0.0.1 (an ephemeral port) until ``stop``."""
        from infra.local.bedrock.server import BedrockServer

        if self._server is None:
            self._server = BedrockServer(self).start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    @property
    def endpoint_url(self) -> str:
        """Where ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` points boto3's ``bedrock-runtime`` clients."""
        if self._server is None:
            raise RuntimeError("the local Bedrock is not started")
        return str(self._server.url)

    def __enter__(self) -> LocalBedrock:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- Converse ----------------------------------------------------------------------------------------

    def converse(self, request: dict[str, Any], *, caller_arn: str | None = None) -> dict[str, Any]:
        """Converse in-process: ``request`` as boto3 takes it (``modelId`` included), the response as boto3 gives
        it (without ``ResponseMetadata``). ``caller_arn`` (a role, or a session of one) is decided by IAM; errors
        raise ``BedrockError``, a botocore ``ClientError``."""
        principal = None
        if caller_arn is not None and self.authorizer is not None:
            principal = self.authorizer.from_arn(caller_arn)
            if principal is None:
                principal = Principal(caller_arn, [])  # a caller IAM does not know is allowed nothing
        return self.answer(request, principal)

    def answer(self, request: Any, principal: Principal | None) -> dict[str, Any]:
        """One Converse request from a caller already identified (``None``: not evaluated)."""
        started = time.perf_counter()
        model_id = request.get("modelId") if isinstance(request, dict) else None
        if not isinstance(model_id, str) or not model_id:
            check_request(request)  # names what is missing
            raise validation("Malformed input request, please reformat your input and try again.")
        ref = resolve_model_id(model_id)
        model = self._model(ref) if ref is not None else None
        if ref is None or model is None:
            raise validation("The provided model identifier is invalid.")
        try:
            self._authorize(principal, ref)
            check_request(request)
            check_conversation(request)
            self._fault(ref)
            parsed = ConverseRequest.parse(request, ref.foundation)
            input_tokens = parsed.input_tokens()
            admitted = self._admit(ref, input_tokens)
            turn = self._respond(model, parsed)
            response = self._response(model, parsed, turn, input_tokens, started)
        except BedrockError as error:
            self._count(ref, error=error.code)
            raise
        usage = response["usage"]
        with self._lock:
            if admitted is not None:  # the window that admitted the request also counts what it produced
                admitted[1] += usage["outputTokens"]
        self._count(ref, input_tokens=usage["inputTokens"], output_tokens=usage["outputTokens"])
        return response

    def _model(self, ref: ModelRef) -> Model | None:
        with self._lock:
            for key in ref.ids():
                if key in self.models:
                    return self.models[key]
            if self.default_model is None:
                return None
            model = self._defaults.get(ref.foundation)
            if model is None:
                model = self._defaults[ref.foundation] = self.default_model(ref.foundation)
            return model

    def _authorize(self, principal: Principal | None, ref: ModelRef) -> None:
        if principal is None or self.authorizer is None:
            return
        for resource in ref.resources(self.region, self.account_id):
            if not self.authorizer.allows(principal, ACTION, resource):
                self.denied.append((principal.arn, resource))
                if self.log is not None:
                    self.log.write(f"AccessDenied {principal.arn} {ACTION} {resource}\n")
                raise BedrockError(
                    "AccessDeniedException",
                    f"User: {principal.arn} is not authorized to perform: {ACTION} on resource: {resource} "
                    f"because no identity-based policy allows the {ACTION} action",
                )

    def _fault(self, ref: ModelRef) -> None:
        with self._lock:
            for key in (*ref.ids(), "*"):
                for fault in self._faults.get(key, []):
                    if fault.remaining == 0 or self._random.random() >= fault.rate:
                        continue
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    raise BedrockError(fault.error_code, injected=True)

    def _admit(self, ref: ModelRef, input_tokens: int) -> list[float] | None:
        """Take the request into its model's per-minute window, or refuse it as Bedrock throttles."""
        with self._lock:
            key = next((key for key in ref.ids() if key in self.quotas), None)
            if key is None:
                return None
            quota = self.quotas[key]
            window = self._windows.setdefault(key, deque())
            now = self.clock()
            while window and window[0][0] <= now - WINDOW_S:
                window.popleft()
            if quota.requests_per_minute is not None and len(window) >= quota.requests_per_minute:
                raise BedrockError("ThrottlingException", "Too many requests, please wait before trying again.")
            used = sum(tokens for _, tokens in window)
            if quota.tokens_per_minute is not None and used + input_tokens > quota.tokens_per_minute:
                raise BedrockError("ThrottlingException", "Too many tokens, please wait before trying again.")
            entry = [now, float(input_tokens)]
            window.append(entry)
            return entry

    def _respond(self, model: Model, request: ConverseRequest) -> ModelTurn:
        try:
            turn = model.respond(request)
        except BedrockError:
            raise
        except Exception as exc:  # a local model's bug, answered as Bedrock answers a failing model
            raise BedrockError(
                "ModelErrorException", f"The model {model.id} failed: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(turn, ModelTurn):
            raise BedrockError(
                "ModelErrorException", f"The model {model.id} answered {type(turn).__name__}, not a turn"
            )
        return turn

    def _response(
        self, model: Model, request: ConverseRequest, turn: ModelTurn, input_tokens: int, started: float
    ) -> dict[str, Any]:
        content, reason, output_tokens = finish_turn(turn, request)
        response = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": reason,
            "usage": {
                "inputTokens": input_tokens,
                "outputTokens": output_tokens,
                "totalTokens": input_tokens + output_tokens,
            },
            "metrics": {"latencyMs": max(0, round((time.perf_counter() - started) * 1000))},
            "additionalModelResponseFields": {
                "agentplane": {"localStandIn": True, "model": model.id, "description": model.description}
            },
        }
        found = response_problems(response)
        if found:
            raise BedrockError(
                "ModelErrorException", f"The model {model.id} answered a malformed turn: {'; '.join(found[:3])}"
            )
        return response

    def _count(self, ref: ModelRef, *, input_tokens: int = 0, output_tokens: int = 0, error: str | None = None) -> None:
        with self._lock:
            usage = self._usage.setdefault(ref.requested, ModelUsage())
            if error is not None:
                usage.errors[error] = usage.errors.get(error, 0) + 1
                return
            usage.requests += 1
            usage.input_tokens += input_tokens
            usage.output_tokens += output_tokens
            usage.total_tokens += input_tokens + output_tokens


def finish_turn(turn: ModelTurn, request: ConverseRequest) -> tuple[list[dict[str, Any]], StopReason, int]:
    """The turn as Bedrock sends it: cut at a stop sequence and at ``maxTokens``, tool calls given ids."""
    blocks = [_with_id(block, index, request) for index, block in enumerate(turn.content)]
    reason: StopReason = turn.reason
    blocks, cut = _cut_at_stop_sequence(blocks, request.stop_sequences)
    if cut:
        reason = "stop_sequence"
    budget = request.max_tokens or DEFAULT_MAX_TOKENS
    kept: list[dict[str, Any]] = []
    used = 0
    for block in blocks:
        tokens = block_tokens(block)
        if used + tokens <= budget:
            kept.append(block)
            used += tokens
            continue
        room = budget - used
        if "text" in block and room > 0:
            kept.append({"text": block["text"][: room * CHARS_PER_TOKEN]})
        return kept, "max_tokens", budget  # the model spent its budget on what was cut off
    return kept, reason, used


def _cut_at_stop_sequence(blocks: list[dict[str, Any]], stops: list[str]) -> tuple[list[dict[str, Any]], bool]:
    if not stops:
        return blocks, False
    for index, block in enumerate(blocks):
        text = block.get("text")
        if text is None:
            continue
        at = min((position for stop in stops if (position := text.find(stop)) >= 0), default=-1)
        if at >= 0:
            head = [{"text": text[:at]}] if text[:at] else []
            return blocks[:index] + head, True
    return blocks, False


def _with_id(block: dict[str, Any], index: int, request: ConverseRequest) -> dict[str, Any]:
    """A toolUse without an id gets one derived from the conversation, the turn, its place and its call."""
    use = block.get("toolUse")
    if use is None or use.get("toolUseId"):
        return block
    seed = compact(
        [request.foundation_model_id, request.messages, request.turn, index, use.get("name"), use.get("input")]
    )
    digest = base64.urlsafe_b64encode(hashlib.sha256(seed.encode()).digest()).decode()[:22]
    return {"toolUse": {"toolUseId": f"tooluse_{digest}", **use}}
