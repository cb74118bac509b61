"""risk-scorer: apply a written, versioned policy to a document's verdicts."""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contracts.models import RiskAssessment, RiskInput, Verdict
from contracts.validation import read_text

DEFAULT_POLICY_PATH = Path(__file__).parent / "policy.yaml"

Label = Literal["supported", "refuted", "not-enough-info"]
Level = Literal["low", "medium", "high"]
Outcome = Literal["accept", "accept-with-notes", "escalate"]
_RANK: dict[Level, int] = {"low": 0, "medium": 1, "high": 2}


class PolicyError(ValueError):
    """The policy cannot be loaded, or the input cannot be scored under it."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Weights(_Strict):
    """What one claim with each label adds to the score."""

    supported: float = Field(ge=0, le=1)
    refuted: float = Field(ge=0, le=1)
    not_enough_info: float = Field(ge=0, le=1, alias="not-enough-info")

    def of(self, label: Label) -> float:
        return {"supported": self.supported, "refuted": self.refuted, "not-enough-info": self.not_enough_info}[label]


class Levels(_Strict):
    """Score thresholds: from ``medium`` the level is medium, from ``high`` it is high."""

    medium: float = Field(gt=0, le=1)
    high: float = Field(gt=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> Levels:
        if self.medium >= self.high:
            raise ValueError(f"medium ({self.medium}) must be below high ({self.high})")
        return self

    def of(self, score: float) -> Level:
        return "high" if score >= self.high else "medium" if score >= self.medium else "low"


class Rule(_Strict):
    """Raise the level to at least ``at_least`` when enough claims carry ``label`` confidently enough."""

    name: str = Field(min_length=1)
    label: Label
    min_confidence: float = Field(default=0.0, ge=0, le=1)
    min_count: int | None = Field(default=None, ge=1)
    min_share: float | None = Field(default=None, gt=0, le=1)
    at_least: Level

    @model_validator(mode="after")
    def _one_threshold(self) -> Rule:
        if (self.min_count is None) == (self.min_share is None):
            raise ValueError(f"rule {self.name!r} needs exactly one of min_count and min_share")
        return self

    def fires(self, matched: int, total: int) -> bool:
        if self.min_count is not None:
            return matched >= self.min_count
        return self.min_share is not None and matched / total >= self.min_share


class Outcomes(_Strict):
    low: Outcome
    medium: Outcome
    high: Outcome

    def of(self, level: Level) -> Outcome:
        return {"low": self.low, "medium": self.medium, "high": self.high}[level]


class Policy(_Strict):
    """The risk policy file (``policy.yaml``)."""

    version: str = Field(min_length=1, max_length=64)
    min_confidence: float = Field(ge=0, le=1)
    weights: Weights
    levels: Levels
    rules: list[Rule] = Field(default_factory=list)
    escalated_at_least: Level = Field(
        default="high", description="The level a run is raised to when any claim was escalated to a person."
    )
    degraded_at_least: Level = Field(
        default="high",
        description="The level a run is raised to when a degraded or fallback implementation did any of its steps "
        "(low: degraded evidence does not raise it).",
    )
    outcomes: Outcomes

    @model_validator(mode="after")
    def _unique_rule_names(self) -> Policy:
        names = Counter(rule.name for rule in self.rules)
        repeated = sorted(name for name, count in names.items() if count > 1)
        if repeated:
            raise ValueError(f"rule names must be unique: {', '.join(repeated)}")
        return self


def load_policy(path: Path) -> Policy:
    """Read and validate a policy file; every problem is a :class:`PolicyError` naming the file."""
    text = read_text(path, PolicyError, "policy")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise PolicyError(f"{path}: a policy is a mapping, got {type(document).__name__}")
    try:
        return Policy.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc']) or 'policy'}: {err['msg']}" for err in exc.errors()
        )
        raise PolicyError(f"{path}: {problems}") from None


@lru_cache(maxsize=1)
def default_policy() -> Policy:
    """The policy shipped next to this module, loaded once per process."""
    return load_policy(DEFAULT_POLICY_PATH)


def _effective_labels(risk_input: RiskInput, policy: Policy) -> tuple[dict[str, tuple[Label, float]], list[str]]:
    """Each claim's label as the policy counts it, and why any differs from its verdict."""
    claim_ids = [claim.claim_id for claim in risk_input.claims]
    if len(set(claim_ids)) != len(claim_ids):
        repeated = sorted(cid for cid, count in Counter(claim_ids).items() if count > 1)
        raise PolicyError(f"claim ids must be unique: {', '.join(repeated)}")
    verdicts: dict[str, Verdict] = {}
    for verdict in risk_input.verdicts:
        if verdict.claim_id not in claim_ids:
            raise PolicyError(f"verdict for unknown claim {verdict.claim_id!r}; claims are {', '.join(claim_ids)}")
        if verdict.claim_id in verdicts:
            raise PolicyError(f"more than one verdict for claim {verdict.claim_id!r}")
        verdicts[verdict.claim_id] = verdict
    effective: dict[str, tuple[Label, float]] = {}
    notes: list[str] = []
    for claim_id in claim_ids:
        found = verdicts.get(claim_id)
        if found is None:
            effective[claim_id] = ("not-enough-info", 0.0)
            notes.append(f"{claim_id} has no verdict: counted as not-enough-info")
        elif found.label != "not-enough-info" and found.confidence < policy.min_confidence:
            effective[claim_id] = ("not-enough-info", found.confidence)
            notes.append(
                f"{claim_id} is {found.label} at confidence {found.confidence:.2f}, "
                f"below {policy.min_confidence:.2f}: counted as not-enough-info"
            )
        else:
            effective[claim_id] = (found.label, found.confidence)
    return effective, notes


def score(risk_input: RiskInput, policy: Policy) -> RiskAssessment:
    """Score the verdicts under the policy: a weighted mean, a level from thresholds, raised by hard rules.

    Every verdict must belong to a claim of the input (:class:`PolicyError` otherwise); a claim without a
    verdict counts as not-enough-info. ``reasons`` says how the score was made and which rules fired on
    which claims.
    """
    effective, notes = _effective_labels(risk_input, policy)
    total = len(effective)
    value = round(min(1.0, sum(policy.weights.of(label) for label, _ in effective.values()) / total), 4)
    level = policy.levels.of(value)
    counts = Counter(label for label, _ in effective.values())
    reasons = [
        f"score {value:.2f} from {counts['refuted']} refuted, {counts['not-enough-info']} not-enough-info and "
        f"{counts['supported']} supported of {total} claim(s): {level} "
        f"(medium from {policy.levels.medium:.2f}, high from {policy.levels.high:.2f})",
        *notes,
    ]
    for rule in policy.rules:
        matched = [
            cid
            for cid, (label, confidence) in effective.items()
            if label == rule.label and confidence >= rule.min_confidence
        ]
        if not rule.fires(len(matched), total):
            continue
        confident = f" at confidence >= {rule.min_confidence:.2f}" if rule.min_confidence > 0 else ""
        level = _at_least(
            level, rule.at_least, f"rule {rule.name}: {', '.join(matched)} {rule.label}{confident}", reasons
        )
    escalated = [v.claim_id for v in risk_input.verdicts if v.escalated]
    if escalated:
        why = f"{', '.join(escalated)} could not be checked automatically and went to a person"
        level = _at_least(level, policy.escalated_at_least, why, reasons)
    degraded = [*risk_input.degraded, *(f"{v.claim_id}: {v.degraded}" for v in risk_input.verdicts if v.degraded)]
    if risk_input.claims_left_out:
        degraded.insert(
            0, f"Intake: {risk_input.claims_left_out} claim(s) past what the run can carry were not checked"
        )
    if degraded:
        why = f"{len(degraded)} step(s) were done by a degraded or fallback implementation"
        level = _at_least(level, policy.degraded_at_least, why, reasons)
    return RiskAssessment(
        level=level,
        score=value,
        reasons=reasons,
        policy_version=policy.version,
        recommended_outcome=policy.outcomes.of(level),
        degraded=degraded,
    )


def _at_least(level: Level, floor: Level, why: str, reasons: list[str]) -> Level:
    """Raise ``level`` to ``floor`` if it is lower, saying why (and from what) in ``reasons``."""
    raised = _RANK[floor] > _RANK[level]
    reasons.append(f"{why}, so at least {floor}" + (f" (raised from {level})" if raised else ""))
    return floor if raised else level
