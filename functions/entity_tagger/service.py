"""entity-tagger: the names, dates and figures a recorded decision's claims mention, counted."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.models import DecisionRecordedDetail, Entity, EntityTags
from contracts.validation import first_error, read_text

# The verifier's knowledge base names the entities of the domain; the tagger reads that file, not the verifier.
# In the repo; deployed functions get the knowledge-base layer and KNOWLEDGE_BASE_PATH (permission read:kb).
DEFAULT_GAZETTEER_PATH = Path(__file__).parents[1] / "knowledge_base" / "passages.jsonl"

NameKind = Literal["organization", "person", "place", "term"]
EntityKind = Literal["organization", "person", "place", "date", "quantity", "percent", "money", "term"]

_MONTH = r"(?:January|February|March|April|May|June|July|August|September|October|November|December)"
_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_SCALE = r"(?:\s?(?:thousand|million|billion|bn|m|k)\b)?"
_CURRENCY = r"(?:EUR|USD|GBP|CHF|€|\$|£)"
# Tried in order; a later pattern never re-tags text an earlier one (or the gazetteer) already tagged.
_PATTERNS: tuple[tuple[EntityKind, re.Pattern[str]], ...] = (
    (
        "money",
        re.compile(
            rf"{_CURRENCY}\s?(?:{_NUMBER}){_SCALE}"
            rf"|\b(?:{_NUMBER})(?:\s(?:thousand|million|billion))?\s?(?:EUR|USD|GBP|CHF|euros?|dollars?|pounds?)\b"
        ),
    ),
    ("percent", re.compile(rf"\b(?:{_NUMBER})\s?(?:%|per\s?cent\b)")),
    (
        "date",
        re.compile(
            rf"\b\d{{1,2}} {_MONTH} \d{{4}}\b|\b{_MONTH} \d{{1,2}}, \d{{4}}\b|\b{_MONTH} \d{{4}}\b"
            r"|\b\d{4}-\d{2}-\d{2}\b|\b(?:19|20)\d{2}\b"
        ),
    ),
    # A figure with the word that says what it counts: "640 people", "6 hours", "2 billion events".
    (
        "quantity",
        re.compile(
            rf"\b(?:{_NUMBER})(?:\s(?:thousand|million|billion))?[\s-]"
            r"(?!(?:and|or|of|in|to|for|at|on|by|from|the|a|an)\b)[a-z]{2,}\b"
        ),
    ),
)


class GazetteerError(ValueError):
    """The gazetteer source cannot be used; the message names the file and line."""


class _Name(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(min_length=1, max_length=200)
    kind: NameKind


class _Line(BaseModel):
    # Knowledge-base lines carry more than names; only ``entities`` matters here.
    model_config = ConfigDict(extra="ignore", frozen=True)

    entities: list[_Name] = Field(default_factory=list)


class Gazetteer:
    """Known names and their kinds, matched whole-word and case-insensitively, longest first."""

    def __init__(self, names: Mapping[str, NameKind]) -> None:
        self.names = dict(names)
        self._canonical = {text.casefold(): text for text in self.names}
        if len(self._canonical) != len(self.names):
            raise GazetteerError("names must differ by more than letter case")
        alternatives = "|".join(re.escape(text) for text in sorted(self.names, key=lambda t: (-len(t), t)))
        self._pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE) if self.names else None

    @classmethod
    def load(cls, path: Path) -> Gazetteer:
        """Collect the ``entities`` of a JSON-lines file (the verifier's knowledge base); one kind per name."""
        lines = read_text(path, GazetteerError, "gazetteer source").splitlines()
        first: dict[str, tuple[str, NameKind, int]] = {}  # casefolded name -> (name, kind, line)
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entities = _Line.model_validate(json.loads(line)).entities
            except (json.JSONDecodeError, ValidationError) as exc:
                raise GazetteerError(f"{path}:{number}: {_first_problem(exc)}") from None
            for entity in entities:
                _, kind, seen_on = first.setdefault(entity.text.casefold(), (entity.text, entity.kind, number))
                if kind != entity.kind:
                    raise GazetteerError(
                        f"{path}:{number}: {entity.text!r} is a {entity.kind} here but a {kind} on line {seen_on}"
                    )
        names = {text: kind for text, kind, _ in first.values()}
        return cls(names)

    def find(self, text: str) -> Iterator[tuple[int, int, str, NameKind]]:
        """``(start, end, canonical name, kind)`` for every known name in the text."""
        if self._pattern is None:
            return
        for match in self._pattern.finditer(text):
            canonical = self._canonical[match.group().casefold()]
            yield match.start(), match.end(), canonical, self.names[canonical]


def _first_problem(exc: json.JSONDecodeError | ValidationError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg}"
    return first_error(exc, root="line")


@lru_cache(maxsize=1)
def default_gazetteer() -> Gazetteer:
    """The gazetteer built from the shipped knowledge base, loaded once per process."""
    return Gazetteer.load(DEFAULT_GAZETTEER_PATH)


def _mentions(text: str, gazetteer: Gazetteer) -> Iterator[tuple[str, EntityKind]]:
    taken: list[tuple[int, int]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e in taken)

    for start, end, name, kind in gazetteer.find(text):
        taken.append((start, end))
        yield name, kind
    for pattern_kind, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            if free(match.start(), match.end()):
                taken.append((match.start(), match.end()))
                yield " ".join(match.group().split()), pattern_kind


def tag(detail: DecisionRecordedDetail, *, gazetteer: Gazetteer) -> EntityTags:
    """Entities in the decision's claims: gazetteer names, plus dates, percentages, money and quantities.

    Each distinct (text, kind) is counted over all claims; the list is sorted by count (most first), then
    kind, then text, so the same decision always yields the same tags.
    """
    counts = Counter(mention for claim in detail.claims for mention in _mentions(claim.text, gazetteer))
    entities = [
        Entity(text=text, kind=kind, count=count)
        for (text, kind), count in sorted(
            counts.items(), key=lambda item: (-item[1], item[0][1], item[0][0].casefold(), item[0][0])
        )
    ]
    return EntityTags(execution_id=detail.execution_id, decision_id=detail.decision.decision_id, entities=entities)
