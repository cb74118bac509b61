"""Capability contract: what an agent is, what it takes and returns, and what it may touch.

One YAML file per agent under ``contracts/agents/`` is validated by :class:`CapabilityContract`;
infra derives the pool, IAM grants, registry entry, telemetry schema and SLO alarms from it.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from contracts import payloads
from contracts.envelope import SEMVER_PATTERN

KEBAB_PATTERN = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"
# "1.x", "1.2.x" or an exact "1.2.3".
VERSION_RANGE_PATTERN = r"^(0|[1-9][0-9]*)\.(x|(0|[1-9][0-9]*)\.(x|0|[1-9][0-9]*))$"
# ``package.module.lambda_handler``: any importable package under the project's source folder.
HANDLER_PATTERN = r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)+\.lambda_handler$"
PERMISSION_PATTERN = r"^(read|write|publish|invoke):[a-z][a-z0-9_-]*$"
METRIC_PATTERN = r"^[a-z][a-z0-9_]*$"
ERROR_PATTERN = r"^[A-Z][A-Za-z0-9]*$"
# A bus event's detail-type, e.g. "decision.recorded".
DETAIL_TYPE_PATTERN = r"^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)+$"

LAMBDA_MAX_TIMEOUT_S = 900
IDEMPOTENCY_PERMISSION = "write:idempotency"

Kebab = Annotated[str, Field(pattern=KEBAB_PATTERN)]


def _unique(values: list[str]) -> list[str]:
    duplicates = sorted({value for value in values if values.count(value) > 1})
    if duplicates:
        raise ValueError(f"duplicate entries: {', '.join(duplicates)}")
    return values


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IO(_Strict):
    """Input and output payloads, by name: the plane's own (``contracts.models``) or a project's (registered by
    :mod:`contracts.payloads` when its contract is loaded)."""

    input: str
    output: str

    @field_validator("input", "output")
    @classmethod
    def _known_model(cls, name: str) -> str:
        if not payloads.known(name):
            raise ValueError(payloads.unknown(name))
        return name


class SLO(_Strict):
    p95_ms: int = Field(gt=0)
    availability: float = Field(gt=0, lt=100, description="Percent, e.g. 99.9.")
    error_budget_pct: float = Field(gt=0, le=100)


def _effective_timeout_s(timeout_s: int | None, slo: SLO) -> int:
    if timeout_s is not None:
        return timeout_s
    return min(LAMBDA_MAX_TIMEOUT_S, max(3, math.ceil(3 * slo.p95_ms / 1000)))


class LambdaRuntime(_Strict):
    kind: Literal["lambda"]
    handler: str = Field(pattern=HANDLER_PATTERN, description="Dotted path to the handler function.")
    memory_mb: int = Field(default=256, ge=128, le=10240)
    timeout_s: int | None = Field(default=None, ge=1, le=LAMBDA_MAX_TIMEOUT_S)
    reserved_concurrency: int | None = Field(default=None, ge=1)
    provisioned_concurrency: int | None = Field(default=None, ge=1)
    snapstart: bool = Field(
        default=False,
        description="Lambda SnapStart on published versions: instances resume from a snapshot taken after init "
        "(exclusive with provisioned_concurrency, as Lambda has it).",
    )
    bursty: bool = False
    approximate_handler: str | None = Field(
        default=None,
        pattern=r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)+\.[a-z_][a-z0-9_]*_handler$",
        description="The degraded handler behind the fallback entry `approximate` (same code, its own function).",
    )

    @field_validator("provisioned_concurrency")
    @classmethod
    def _within_reserved(cls, provisioned: int | None, info: ValidationInfo) -> int | None:
        reserved = info.data.get("reserved_concurrency")
        if provisioned is not None and reserved is not None and provisioned > reserved:
            raise ValueError(f"{provisioned} exceeds reserved_concurrency {reserved}")
        return provisioned

    @model_validator(mode="after")
    def _snapstart_or_provisioned(self) -> LambdaRuntime:
        if self.snapstart and self.provisioned_concurrency is not None:
            raise ValueError("snapstart and provisioned_concurrency cannot both be set: Lambda refuses the pair")
        return self

    def effective_timeout_s(self, slo: SLO) -> int:
        """The configured timeout, else three times the p95 budget (at least 3 s, at most Lambda's 900 s)."""
        return _effective_timeout_s(self.timeout_s, slo)


# The standard LLM serving containers (AWS Deep Learning Containers) a sagemaker contract may name, and what
# the SageMaker Python SDK calls each when it resolves the image for a region (infra/llm_images.py).
SERVING_IMAGES: dict[str, str] = {"djl-lmi": "djl-lmi", "vllm": "vllm", "tgi": "huggingface-llm"}
SERVING_IO = ("ChatRequest", "ChatCompletion")  # what every serving container speaks (contracts.models)


class LlmServing(_Strict):
    """Open weights from S3 served by a standard LLM serving container (vLLM, LMI or TGI), instead of an image
    built from ``containers/``; ``kind: llm`` agents reach it with ``model: {provider: sagemaker, endpoint: ...}``."""

    image: Literal["djl-lmi", "vllm", "tgi"]
    version: str = Field(
        pattern=r"^[0-9]+\.[0-9]+(\.[0-9]+)?$",
        description="The image version as the SageMaker Python SDK names it, e.g. 0.33.0 (djl-lmi), 0.30.0 (vllm).",
    )
    model_data: str = Field(
        pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/([^/]+/)*$",
        description="The uncompressed weights: an S3 prefix (ending in /), mounted at /opt/ml/model.",
    )
    model_data_key: str | None = Field(
        default=None,
        pattern=r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]{36}$",
        description="The customer-managed KMS key the weights' bucket encrypts them with (the endpoint may decrypt).",
    )
    model_name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$",
        description="The name the container serves the model under: what each request names, what each turn records.",
    )
    tool_parser: str = Field(
        default="hermes",
        pattern=r"^[a-z0-9_]+$",
        description="vLLM's tool-call parser for the model family (djl-lmi, vllm): hermes, llama3_json, mistral...",
    )
    max_model_len: int | None = Field(default=None, ge=256, description="Context length the container allows.")
    environment: dict[Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")], str] = Field(
        default_factory=dict, description="More container settings (OPTION_*, SM_VLLM_*...); they win over the derived."
    )


class SageMakerRuntime(_Strict):
    kind: Literal["sagemaker"]
    instance_type: str = Field(pattern=r"^ml\.")
    min_instances: int = Field(default=1, ge=1, description="Warm minimum.")
    max_instances: int = Field(ge=1)
    container: str | None = Field(
        default=None, pattern=r"^[a-z0-9][a-z0-9_-]*$", description="Folder under containers/ (bring your own)."
    )
    serving: LlmServing | None = Field(default=None, description="A standard LLM serving container instead.")
    stateful: bool = Field(default=False, description="Sticky sessions.")
    target_invocations_per_minute: int = Field(
        default=1000, ge=1, description="Per instance: what target-tracking autoscaling holds the endpoint at."
    )

    @field_validator("max_instances")
    @classmethod
    def _at_least_min(cls, maximum: int, info: ValidationInfo) -> int:
        minimum = info.data.get("min_instances")
        if minimum is not None and maximum < minimum:
            raise ValueError(f"{maximum} is below min_instances {minimum}")
        return maximum

    @model_validator(mode="after")
    def _one_image(self) -> SageMakerRuntime:
        if (self.container is None) == (self.serving is None):
            raise ValueError("name exactly one of container (a folder under containers/) and serving (an LLM image)")
        return self


# Bedrock's cross-region inference profiles are named by geography (``us.<model id>``).
INFERENCE_PROFILES = ("us", "eu", "apac", "global")
# Bedrock tool names: ``[a-zA-Z0-9_-]{1,64}``; the loop adds ``final_answer`` itself.
FINAL_ANSWER_TOOL = "final_answer"
# Where llm agents keep each turn's content, and a paused conversation (documents bucket, by the sha256).
CONVERSATIONS_PREFIX = "conversations/"


def conversation_key(sha256: str) -> str:
    """Where content with this sha256 lies in the documents bucket (what the loop writes, the auditor reads)."""
    return f"{CONVERSATIONS_PREFIX}{sha256}.json"


# Where a ``provider: sagemaker`` loop finds the endpoint it invokes (set by synth, read by the loop function).
MODEL_ENDPOINT_ENV = "LLM_ENDPOINT_NAME"
# What an llm agent counts when its model's quota refused a step (the plane's own metric, declared or not).
THROTTLE_METRIC = "throttle_count"
PROMPT_PATTERN = r"^prompts/[a-z0-9][a-z0-9_-]*(/[a-z0-9][a-z0-9_-]*)*\.(md|txt)$"


class LlmModel(_Strict):
    """Which model answers: a Bedrock foundation model (optionally through an inference profile), or a
    self-hosted model behind a SageMaker contract's endpoint."""

    provider: Literal["bedrock", "sagemaker"]
    id: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9-]+\.[a-zA-Z0-9.:_-]+$",
        description="Bedrock model id, e.g. anthropic.claude-sonnet-4-5-20250929-v1:0 (provider bedrock).",
    )
    inference_profile: Literal["us", "eu", "apac", "global"] | None = Field(
        default=None, description="Cross-region inference profile geography (provider bedrock)."
    )
    endpoint: Kebab | None = Field(default=None, description="The SageMaker contract serving the model (sagemaker).")

    @model_validator(mode="after")
    def _fits_provider(self) -> LlmModel:
        if self.provider == "bedrock" and (self.id is None or self.endpoint is not None):
            raise ValueError("provider bedrock needs id (and no endpoint)")
        if self.provider == "sagemaker" and (self.endpoint is None or self.id or self.inference_profile):
            raise ValueError("provider sagemaker needs endpoint (and no id or inference_profile)")
        return self

    @property
    def invoked_id(self) -> str:
        """What Converse is called with: the inference profile id when there is one, else the model id."""
        if self.provider != "bedrock" or self.id is None:
            raise ValueError(f"provider {self.provider} is not called through Bedrock Converse")
        return f"{self.inference_profile}.{self.id}" if self.inference_profile else self.id


class LlmLimits(_Strict):
    """Per run of the agent; crossing one ends the loop with ``BudgetExceeded``."""

    max_turns: int = Field(ge=1, le=50)
    max_input_tokens: int = Field(ge=1, description="Input tokens summed over every turn of one run.")
    max_output_tokens: int = Field(ge=1, description="Output tokens summed over every turn of one run.")
    max_cost_usd: float = Field(gt=0, le=100)
    answer_retries: int = Field(
        default=1, ge=0, le=5, description="Invalid final answers sent back to the model before ModelError."
    )


class Guardrail(_Strict):
    id: str = Field(pattern=r"^[a-z0-9]{1,64}$")
    version: str = Field(pattern=r"^([1-9][0-9]{0,7}|DRAFT)$")


class Inference(_Strict):
    temperature: float = Field(default=0, ge=0, le=1)
    top_p: float = Field(default=1, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1, description="Per turn; default: limits.max_output_tokens.")
    cache_prompt: bool = Field(
        default=False,
        description="Mark the prefix every turn repeats (system prompt, tools) as a Bedrock prompt-cache point, "
        "so later turns read it from the cache (models that support prompt caching).",
    )


class LlmRuntime(_Strict):
    """A model-driven tool-use loop: each turn a Converse call; tools are other contracts' capabilities."""

    kind: Literal["llm"]
    model: LlmModel
    prompt: str = Field(pattern=PROMPT_PATTERN, description="System prompt, relative to the contracts folder.")
    prompt_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="Filled in by the loader from the prompt file; when written in the contract it must match.",
    )
    tools: list[Annotated[str, Field(pattern=KEBAB_PATTERN, max_length=64)]] = Field(default_factory=list)
    limits: LlmLimits
    guardrail: Guardrail | None = None
    inference: Inference = Field(default_factory=Inference)
    memory_mb: int = Field(default=256, ge=128, le=10240, description="The loop's own function.")
    timeout_s: int | None = Field(default=None, ge=1, le=LAMBDA_MAX_TIMEOUT_S)
    reserved_concurrency: int | None = Field(default=None, ge=1)
    # The prompt's text, read by the loader beside prompt_sha256 (not part of the contract document).
    _prompt_text: str | None = PrivateAttr(default=None)

    @field_validator("tools")
    @classmethod
    def _tools_unique(cls, tools: list[str]) -> list[str]:
        return _unique(tools)

    @property
    def prompt_text(self) -> str:
        if self._prompt_text is None:
            raise ValueError(f"prompt {self.prompt} was not loaded: load the contract with contracts.loader")
        return self._prompt_text

    def with_prompt(self, text: str, sha256: str) -> LlmRuntime:
        loaded = self.model_copy(update={"prompt_sha256": sha256})
        loaded._prompt_text = text
        return loaded

    def effective_timeout_s(self, slo: SLO) -> int:
        """As for Lambda agents: the configured timeout, else three times the p95 budget (3 s to 900 s)."""
        return _effective_timeout_s(self.timeout_s, slo)


Runtime = Annotated[LambdaRuntime | SageMakerRuntime | LlmRuntime, Field(discriminator="kind")]


class Batching(_Strict):
    max_batch: int = Field(ge=1, le=1024)
    max_wait_ms: int = Field(ge=0, le=10_000)


class FallbackCapability(_Strict):
    """Another implementation of a capability, up to a version range."""

    capability: Kebab
    max_version: str = Field(pattern=VERSION_RANGE_PATTERN)


class Rollout(_Strict):
    """How a new version takes traffic: a canary slice then the rest, equal linear steps, or all at once."""

    strategy: Literal["canary", "linear", "all-at-once"]
    percent: int | None = Field(
        default=None, ge=1, le=99, description="Canary: the first slice; linear: each step (percent of traffic)."
    )
    interval_minutes: int | None = Field(
        default=None, ge=1, le=60, description="Minutes between shifts; the SLO alarms can roll back meanwhile."
    )

    @model_validator(mode="after")
    def _shape_fits_strategy(self) -> Rollout:
        shifting = self.strategy != "all-at-once"
        if shifting and (self.percent is None or self.interval_minutes is None):
            raise ValueError(f"{self.strategy} needs percent (1..99) and interval_minutes (1..60)")
        if not shifting and (self.percent is not None or self.interval_minutes is not None):
            raise ValueError("all-at-once shifts every request at once: leave out percent and interval_minutes")
        return self


# The plane's policy when a contract states none: 10 % of traffic, then the rest after 5 minutes.
DEFAULT_ROLLOUT = Rollout(strategy="canary", percent=10, interval_minutes=5)


def _fallback_tag(value: Any) -> str:
    return "builtin" if isinstance(value, str) else "capability"


# Tagged so a bad entry gets one error from the member it meant, not one from every member.
FallbackEntry = Annotated[
    Annotated[FallbackCapability, Tag("capability")] | Annotated[Literal["approximate", "human"], Tag("builtin")],
    Discriminator(_fallback_tag),
]


class Telemetry(_Strict):
    metrics: list[Annotated[str, Field(pattern=METRIC_PATTERN)]]
    errors: list[Annotated[str, Field(pattern=ERROR_PATTERN)]]

    @field_validator("metrics", "errors")
    @classmethod
    def _no_duplicates(cls, values: list[str]) -> list[str]:
        return _unique(values)


class CapabilityContract(_Strict):
    """One agent's contract: its pool, IAM, registry entry, telemetry and SLO derive from it."""

    name: Kebab
    version: str = Field(pattern=SEMVER_PATTERN)
    description: str = Field(min_length=1, max_length=500)
    capabilities: list[Kebab] = Field(min_length=1)
    io: IO
    runtime: Runtime
    permissions: list[Annotated[str, Field(pattern=PERMISSION_PATTERN)]] = Field(default_factory=list)
    side_effects: Literal["read-only", "idempotent-write", "external-action"]
    slo: SLO
    batching: Batching | None = None
    fallback: list[FallbackEntry] = Field(default_factory=list)
    telemetry: Telemetry
    subscribes: list[Annotated[str, Field(pattern=DETAIL_TYPE_PATTERN)]] = Field(
        default_factory=list,
        description="Bus events (detail-type) that run this agent (choreography); empty for workflow-called agents.",
    )
    rollout: Rollout | None = Field(
        default=None,
        description="How a new version takes traffic (Lambda agents); unset: canary 10 %, the rest after 5 minutes.",
    )

    @field_validator("capabilities", "permissions", "subscribes")
    @classmethod
    def _no_duplicates(cls, values: list[str]) -> list[str]:
        return _unique(values)

    @model_validator(mode="before")
    @classmethod
    def _bedrock_kind_replaced(cls, data: Any) -> Any:
        runtime = data.get("runtime") if isinstance(data, dict) else None
        if isinstance(runtime, dict) and runtime.get("kind") == "bedrock":
            raise ValueError(
                "runtime.kind 'bedrock' was replaced by 'llm' (runtime: {kind: llm, model: {provider: bedrock, "
                "id: ...}, prompt: prompts/<name>.md, limits: {...}}): see docs/llm-agents.md"
            )
        return data

    @model_validator(mode="after")
    def _tools_are_other_capabilities(self) -> CapabilityContract:
        if isinstance(self.runtime, LlmRuntime):
            own = sorted(set(self.runtime.tools) & set(self.capabilities))
            if own:
                raise ValueError(f"runtime.tools: {', '.join(own)} is this agent's own capability (a loop)")
            if self.batching is not None or self.subscribes:
                raise ValueError("an llm agent is called through dispatch: no batching, no subscribes")
            if self.runtime.guardrail is not None and self.runtime.model.provider != "bedrock":
                raise ValueError("runtime.guardrail: Bedrock applies guardrails to Converse; provider bedrock only")
        return self

    @model_validator(mode="after")
    def _serving_speaks_chat(self) -> CapabilityContract:
        if isinstance(self.runtime, SageMakerRuntime) and self.runtime.serving is not None:
            if (self.io.input, self.io.output) != SERVING_IO:
                raise ValueError(f"runtime.serving: io must be {{input: {SERVING_IO[0]}, output: {SERVING_IO[1]}}}")
            if self.batching is not None:
                raise ValueError("runtime.serving: the serving container batches on its own (continuous batching)")
        return self

    @field_validator("side_effects")
    @classmethod
    def _idempotent_side_effects(cls, side_effects: str, info: ValidationInfo) -> str:
        # Redelivery must not repeat a side effect: the runtime keeps its idempotency records there.
        permissions = info.data.get("permissions")
        if side_effects != "read-only" and permissions is not None and IDEMPOTENCY_PERMISSION not in permissions:
            raise ValueError(f"{side_effects} needs the {IDEMPOTENCY_PERMISSION!r} permission (redelivery guard)")
        return side_effects

    @field_validator("slo")
    @classmethod
    def _p95_within_timeout(cls, slo: SLO, info: ValidationInfo) -> SLO:
        runtime = info.data.get("runtime")
        if (
            isinstance(runtime, LambdaRuntime | LlmRuntime)
            and runtime.timeout_s is not None
            and slo.p95_ms > runtime.timeout_s * 1000
        ):
            raise ValueError(f"p95_ms {slo.p95_ms} exceeds runtime.timeout_s ({runtime.timeout_s} s)")
        return slo

    @field_validator("batching")
    @classmethod
    def _sagemaker_only(cls, batching: Batching | None, info: ValidationInfo) -> Batching | None:
        runtime = info.data.get("runtime")
        if batching is not None and runtime is not None and runtime.kind != "sagemaker":
            raise ValueError(f"only allowed with a sagemaker runtime, not {runtime.kind}")
        return batching

    @field_validator("fallback")
    @classmethod
    def _human_last(
        cls, entries: list[FallbackCapability | str], info: ValidationInfo
    ) -> list[FallbackCapability | str]:
        if "human" in entries[:-1]:
            raise ValueError('"human" must be the last fallback')
        if len(set(entries)) != len(entries):
            raise ValueError("duplicate entries")
        runtime = info.data.get("runtime")
        if "approximate" in entries and isinstance(runtime, LambdaRuntime) and not runtime.approximate_handler:
            raise ValueError('"approximate" needs runtime.approximate_handler (the degraded handler to fall back to)')
        return entries

    @property
    def effective_rollout(self) -> Rollout:
        return self.rollout or DEFAULT_ROLLOUT

    @property
    def major(self) -> int:
        return int(self.version.split(".", 1)[0])

    @property
    def input_model(self) -> type[BaseModel]:
        return payloads.payload_model(self.io.input)

    @property
    def output_model(self) -> type[BaseModel]:
        return payloads.payload_model(self.io.output)
