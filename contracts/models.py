"""Payload models: what agents take and return, and the public API bodies.

A capability contract names its input and output by model name (``io: {input: ClaimCheck, output: Verdict}``);
``MODELS`` is the registry those names resolve against.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

TRACEPARENT_PATTERN = r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"

Sha256Hex = Field(pattern=r"^[0-9a-f]{64}$")


class StrictModel(BaseModel):
    """Unknown fields are refused: a typo in a request is an error, not silently dropped data."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


# --- API bodies -------------------------------------------------------------------------------


class DocumentIn(StrictModel):
    title: str = Field(min_length=1, max_length=200, description="Human-readable title of the document.")
    text: str = Field(min_length=1, max_length=100_000, description="Plain-text body to review.")
    source: str | None = Field(default=None, max_length=500, description="Where the document came from.")


MAX_METADATA_VALUE_CHARS = 10_000
MetadataKey = Annotated[str, Field(max_length=64)]
MetadataValue = Annotated[str, Field(max_length=MAX_METADATA_VALUE_CHARS)]


class DocReviewRequest(StrictModel):
    """Body of ``POST /v1/workflows/doc-review/executions``.

    Limits, from what the plane can carry: the body never enters the run's state (the API stores it and the run
    carries its reference; intake keeps the claims within the state's 256 KiB), so the bound is the API function's
    request (6 MB): the largest body, every character a 12-byte JSON escape, is about 3.6 MB.
    """

    document: DocumentIn
    metadata: dict[MetadataKey, MetadataValue] = Field(
        default_factory=dict,
        max_length=20,
        description="Up to 20 keys of up to 64 characters, each a string of up to 10,000 characters.",
    )


# --- Agent payloads ---------------------------------------------------------------------------


class S3Ref(StrictModel):
    """Claim-check: large artefacts live in S3, envelopes carry this reference."""

    bucket: str = Field(min_length=3, max_length=63)
    key: str = Field(min_length=1, max_length=1024)
    sha256: str = Sha256Hex
    size_bytes: int = Field(ge=0)


class Claim(StrictModel):
    claim_id: str = Field(pattern=r"^c-[0-9]{3,}$")
    text: str = Field(min_length=1, max_length=1000)
    sentence_index: int = Field(ge=0)


class IntakeRequest(StrictModel):
    """Input of the intake step: the request by reference (a workflow's run: the API claim-checked the body, the
    run's state carries only this) or inline (a direct call with a small body); exactly one of the two."""

    request_ref: S3Ref | None = None
    request: DocReviewRequest | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> IntakeRequest:
        if (self.request_ref is None) == (self.request is None):
            raise ValueError("give exactly one of request_ref and request")
        return self


class IntakeResult(StrictModel):
    document_ref: S3Ref
    title: str
    claims: list[Claim] = Field(min_length=1, max_length=100)
    claims_left_out: int = Field(
        default=0,
        ge=0,
        description="Checkable claims past what a run's state can carry: not checked, so a person decides.",
    )


class QuickCheckRequest(StrictModel):
    """Body of ``POST /v1/workflows/quick-check/invoke``: one claim, checked synchronously."""

    claim: str = Field(min_length=1, max_length=1000, description="One factual statement to check.")


class ClaimCheck(StrictModel):
    """Input of a fact-check step: one claim and, when it came from a document, that document."""

    claim: Claim
    document_ref: S3Ref | None = None


class Evidence(StrictModel):
    passage_id: str
    source: str
    text: str
    score: float = Field(ge=0)


class Verdict(StrictModel):
    claim_id: str
    label: Literal["supported", "refuted", "not-enough-info"]
    confidence: float = Field(ge=0, le=1)
    evidence: list[Evidence] = Field(default_factory=list)
    rationale: str
    escalated: bool = Field(default=False, description="No automatic check could be made: a person decides.")
    degraded: str | None = Field(
        default=None,
        max_length=300,
        description="Set when a degraded or fallback implementation gave this verdict: which one, and why.",
    )


class SummarizeRequest(StrictModel):
    """Input of a summarization step: the document's title and the claims intake extracted from it."""

    title: str = Field(min_length=1, max_length=200)
    claims: list[Claim] = Field(min_length=1, max_length=100)


class Salience(StrictModel):
    claim_id: str
    score: float
    selected: bool = Field(description="Whether the sentence is part of the summary.")


class Summary(StrictModel):
    """An extractive summary and the claims, in document order, that the review then verifies."""

    summary: str
    claims: list[Claim] = Field(min_length=1)
    salience: list[Salience]
    model: str = Field(description="Which scorer produced it: file name and digest prefix.")


class RiskInput(StrictModel):
    claims: list[Claim] = Field(min_length=1)
    verdicts: list[Verdict] = Field(min_length=1)
    degraded: list[str] = Field(
        default_factory=list, description="Steps of the run a degraded or fallback implementation did, and why."
    )
    claims_left_out: int = Field(default=0, ge=0, description="Checkable claims intake could not carry: unchecked.")


class RiskAssessment(StrictModel):
    level: Literal["low", "medium", "high"]
    score: float = Field(ge=0, le=1)
    reasons: list[str]
    policy_version: str
    recommended_outcome: Literal["accept", "accept-with-notes", "escalate"]
    degraded: list[str] = Field(
        default_factory=list, description="What a degraded or fallback implementation decided in this assessment."
    )


class ApprovalOutcome(StrictModel):
    """What the approval gate settled: a person's decision, a timeout, or that no approval was needed."""

    decision: Literal["approve", "reject", "timeout", "not-required"]
    approval_id: str | None = None
    actor: str | None = None
    reason: str | None = None
    args_sha256: str | None = Field(default=None, description="The digest of what the person decided on.")


class ApprovalDecisionRequest(StrictModel):
    """Body of ``POST /v1/approvals/{approval_id}``."""

    decision: Literal["approve", "reject"]
    reason: str = Field(min_length=1, max_length=1000)
    args_sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="Digest of what the approver reviewed (the pending approval's args_sha256); a mismatch voids",
    )


class DecisionInput(StrictModel):
    """What the coordinator hands the decision recorder at the end of a successful run."""

    workflow: str
    title: str
    document_ref: S3Ref
    claims: list[Claim]
    verdicts: list[Verdict]
    risk: RiskAssessment
    approval: ApprovalOutcome = Field(default_factory=lambda: ApprovalOutcome(decision="not-required"))


class FailureInput(StrictModel):
    """What the coordinator's Catch path hands the decision recorder."""

    workflow: str
    error: str
    cause: str = ""


class Decision(StrictModel):
    decision_id: str
    workflow: str
    outcome: Literal["accept", "accept-with-notes", "escalate", "reject", "failed"]
    risk_level: Literal["low", "medium", "high"] | None = None
    summary: str
    decided_at: datetime
    approval: ApprovalOutcome | None = None
    degraded: list[str] = Field(
        default_factory=list, description="What a degraded or fallback implementation did in the run decided."
    )


class DecisionRecordedDetail(StrictModel):
    """Detail of the ``decision.recorded`` event on the bus."""

    execution_id: str
    trace_id: str
    decision: Decision
    claims: list[Claim] = Field(default_factory=list)
    traceparent: str | None = Field(
        default=None, pattern=TRACEPARENT_PATTERN, description="W3C trace context of the step that published it."
    )


class Entity(StrictModel):
    text: str
    kind: Literal["organization", "person", "place", "date", "quantity", "percent", "money", "term"]
    count: int = Field(ge=1)


class EntityTags(StrictModel):
    execution_id: str
    decision_id: str
    entities: list[Entity]


# --- Chat completions: what a standard LLM serving container speaks ----------------------------------


class _Served(BaseModel):
    """What a serving container answers: fields it adds beyond these (logprobs, reasoning...) are ignored, so a
    newer container version does not break the loop."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


class ChatFunctionCall(_Served):
    name: str = Field(min_length=1, max_length=64)
    arguments: str = Field(description="The call's arguments, as JSON text.")


class ChatToolCall(_Served):
    id: str = Field(min_length=1)
    type: Literal["function"] = "function"
    function: ChatFunctionCall


class ChatMessage(StrictModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: list[ChatToolCall] | None = Field(default=None, description="An assistant's calls.")
    tool_call_id: str | None = Field(default=None, description="Which call a tool message answers.")

    @model_validator(mode="after")
    def _fits_role(self) -> ChatMessage:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id")
        if self.role != "assistant" and self.tool_calls:
            raise ValueError(f"a {self.role} message cannot carry tool_calls")
        return self


class ChatFunction(StrictModel):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str = ""
    parameters: dict[str, Any] = Field(description="The arguments' JSON Schema.")


class ChatTool(StrictModel):
    type: Literal["function"] = "function"
    function: ChatFunction


class ChatRequest(StrictModel):
    """One turn asked of a self-hosted model: the OpenAI-compatible messages API that vLLM, LMI and TGI serve at
    ``/invocations``."""

    model: str = Field(min_length=1, description="The name the container serves the model under.")
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[ChatTool] = Field(default_factory=list)
    tool_choice: Literal["none", "auto", "required"] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: list[str] | None = None


class ChatAnswer(_Served):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: list[ChatToolCall] | None = None


class ChatChoice(_Served):
    index: int = 0
    message: ChatAnswer
    finish_reason: str | None = None


class ChatUsage(_Served):
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)


class ChatCompletion(_Served):
    """A self-hosted model's answer to a :class:`ChatRequest`."""

    id: str = ""
    model: str
    choices: list[ChatChoice] = Field(min_length=1)
    usage: ChatUsage
    agentplane: dict[str, Any] | None = Field(
        default=None, description="Only the local plane's stand-in sends it: that it is one, and which model it plays."
    )


MODELS: dict[str, type[BaseModel]] = {
    model.__name__: model
    for model in (
        DocReviewRequest,
        QuickCheckRequest,
        DocumentIn,
        S3Ref,
        Claim,
        IntakeRequest,
        IntakeResult,
        ClaimCheck,
        SummarizeRequest,
        Salience,
        Summary,
        Evidence,
        Verdict,
        RiskInput,
        RiskAssessment,
        DecisionInput,
        ApprovalOutcome,
        ApprovalDecisionRequest,
        FailureInput,
        Decision,
        DecisionRecordedDetail,
        Entity,
        EntityTags,
        ChatRequest,
        ChatCompletion,
    )
}
