"""evidence-verifier: check one claim against a small knowledge base, transparently and deterministically.

Retrieval is BM25 over normalised tokens. The verdict comes from how much of the claim the retrieved
passages cover, and whether an on-topic passage disagrees with it on a figure, on negation, or on the
name that fills the same slot. No model and no I/O beyond reading the knowledge-base file it is given.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rank_bm25 import BM25Okapi

from contracts.models import ClaimCheck, Evidence, Verdict
from contracts.validation import first_error, read_text


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# In the repo; deployed functions get the knowledge-base layer and KNOWLEDGE_BASE_PATH (permission read:kb).
DEFAULT_KB_PATH = Path(__file__).parents[1] / "knowledge_base" / "passages.jsonl"

ON_TOPIC = 0.6
"""Coverage from which a passage is about the claim's fact: enough to refute it on a figure."""
SUPPORTS = 0.75
"""Coverage from which a passage states the claim: needed to support it, or to refute it on negation."""
CANDIDATES = 5
"""Passages read per claim."""
EVIDENCE = 3
"""Passages returned in a verdict."""

# Function words, plus generic ways a document refers to the vendor it describes ("the company").
_STOPWORDS = _words(
    """a about after also am an and any are as at be been before being both but by can company could did do does
    during each every firm for from had has have having he her here his how i if in into is it its itself may
    might more most must of on only or organisation organization other our out over own per shall she should so
    some such than that the their them then there these they this those through to too under until up upon us
    vendor very via was we were what when where which while who whom why will with would you your"""
)
# Irregular past forms that prefix truncation cannot bring back to their base form.
_IRREGULAR = {
    "became": "become", "began": "begin", "begun": "begin", "bought": "buy", "brought": "bring", "built": "build",
    "chose": "choose", "chosen": "choose", "grew": "grow", "grown": "grow", "held": "hold", "kept": "keep",
    "led": "lead", "left": "leave", "made": "make", "met": "meet", "paid": "pay", "ran": "run", "sold": "sell",
    "spent": "spend", "taken": "take", "took": "take", "won": "win",
}  # fmt: skip
_NEGATIONS = frozenset({"not", "no", "never", "none", "nor", "neither", "without", "cannot"})
_TOKEN = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|[^\W\d_]+(?:'[^\W\d_]+)*")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")
# Prefix truncation is a crude but transparent stemmer: certified/certification, headquarters/headquartered.
_STEM_LENGTH = 6


class KnowledgeBaseError(ValueError):
    """The knowledge-base file cannot be used; the message names the file and line."""


class PassageEntity(BaseModel):
    """A name a passage mentions, for the entity tagger's gazetteer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(min_length=1, max_length=200)
    kind: Literal["organization", "person", "place", "term"]


class Passage(BaseModel):
    """One line of the knowledge-base file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    passage_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)
    source: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=2000)
    entities: list[PassageEntity] = Field(default_factory=list)


@dataclass(frozen=True)
class _Name:
    """A run of capitalised words, and the content word before it: the slot the name fills."""

    stems: frozenset[str]
    surface: str
    anchor: str | None


@dataclass(frozen=True)
class _Terms:
    """What the verifier reads in a piece of text."""

    tokens: tuple[str, ...]
    words: frozenset[str]
    numbers: frozenset[str]
    names: tuple[_Name, ...]
    negated: bool


@dataclass(frozen=True)
class _IndexedPassage:
    passage: Passage
    terms: _Terms
    sentences: tuple[_Terms, ...]

    def mentions(self, name: _Name) -> bool:
        return name.stems <= self.terms.words


@dataclass(frozen=True)
class _Reading:
    """What one retrieved passage says about the claim."""

    indexed: _IndexedPassage
    score: float
    coverage: float
    stance: Literal["supports", "refutes", "silent"]
    why: str


def _stem(word: str) -> str:
    word = _IRREGULAR.get(word, word)
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    return word[:_STEM_LENGTH]


def _is_capitalised(token: str) -> bool:
    # Title case only: acronyms (CEO, ISO, EUR) name kinds of things, not the thing in a slot.
    return token[0].isupper() and not token.isupper()


def _analyse(text: str) -> _Terms:
    """Tokens for retrieval, and the words, figures, names and polarity used to judge a passage."""
    tokens: list[str] = []
    numbers: set[str] = set()
    names: list[_Name] = []
    negated = False
    for sentence in _SENTENCE_BREAK.split(text.replace("\u2019", "'")):
        raw = _TOKEN.findall(sentence)
        anchor: str | None = None
        run: list[tuple[str, str]] = []
        run_anchor: str | None = None
        for position, token in enumerate(raw):
            lower = token.lower().removesuffix("'s")
            negation = lower in _NEGATIONS or lower.endswith("n't")
            stem = None if token[0].isdigit() or negation or lower in _STOPWORDS else _stem(lower)
            # A capitalised first word is a name only when another capitalised word follows it.
            is_name = (
                stem is not None
                and _is_capitalised(token)
                and (position > 0 or (len(raw) > 1 and _is_capitalised(raw[1])))
            )
            if run and not is_name:
                names.append(_Name(frozenset(s for s, _ in run), " ".join(t for _, t in run), run_anchor))
                run = []
            if token[0].isdigit():
                number = token.replace(",", "")
                tokens.append(number)
                numbers.add(number)
            elif negation:
                negated = True
            elif stem is not None:
                tokens.append(stem)
                if is_name:
                    run_anchor = anchor if not run else run_anchor
                    run.append((stem, token))
                else:
                    anchor = stem
        if run:
            names.append(_Name(frozenset(s for s, _ in run), " ".join(t for _, t in run), run_anchor))
    words = frozenset(t for t in tokens if not t[0].isdigit())
    return _Terms(tuple(tokens), words, frozenset(numbers), tuple(names), negated)


def _idf(document_frequency: int, corpus_size: int) -> float:
    # Always positive, unlike BM25's own idf: a word in every passage still counts a little.
    return math.log(1 + (corpus_size - document_frequency + 0.5) / (document_frequency + 0.5))


class KnowledgeBase:
    """Passages indexed for BM25 retrieval, with the term statistics the verdict uses."""

    def __init__(self, passages: Sequence[Passage]) -> None:
        if not passages:
            raise KnowledgeBaseError("a knowledge base needs at least one passage")
        self.passages: tuple[Passage, ...] = tuple(passages)
        self._indexed = tuple(
            _IndexedPassage(p, _analyse(p.text), tuple(_analyse(s) for s in _SENTENCE_BREAK.split(p.text)))
            for p in self.passages
        )
        for indexed in self._indexed:
            if not indexed.terms.tokens:
                raise KnowledgeBaseError(f"passage {indexed.passage.passage_id} has no searchable word")
        self._bm25 = BM25Okapi([list(i.terms.tokens) for i in self._indexed])
        frequencies = Counter(word for i in self._indexed for word in i.terms.words)
        size = len(self._indexed)
        self._idf = {word: _idf(count, size) for word, count in frequencies.items()}
        self._unseen_idf = _idf(0, size)

    @classmethod
    def load(cls, path: Path) -> KnowledgeBase:
        """Read a JSON-lines file of passages; blank lines are skipped, anything else wrong is an error."""
        lines = read_text(path, KnowledgeBaseError, "knowledge base").splitlines()
        passages: list[Passage] = []
        first_seen: dict[str, int] = {}
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                passage = Passage.model_validate_json(line)
            except ValidationError as exc:
                raise KnowledgeBaseError(f"{path}:{number}: {first_error(exc, root='line')}") from None
            if passage.passage_id in first_seen:
                raise KnowledgeBaseError(
                    f"{path}:{number}: duplicate passage_id {passage.passage_id!r} "
                    f"(first on line {first_seen[passage.passage_id]})"
                )
            first_seen[passage.passage_id] = number
            passages.append(passage)
        if not passages:
            raise KnowledgeBaseError(f"{path}: no passages")
        return cls(passages)

    def search(self, query: str, k: int = 3) -> list[Evidence]:
        """The ``k`` passages that share a term with the query, best BM25 score first."""
        return [_evidence(indexed, score) for indexed, score in self._retrieve(_analyse(query).tokens, k)]

    def _retrieve(self, tokens: Iterable[str], k: int) -> list[tuple[_IndexedPassage, float]]:
        query = list(dict.fromkeys(tokens))
        if not query:
            return []
        scores = self._bm25.get_scores(query)
        wanted = set(query)
        # BM25 scores can tie or dip below zero on tiny corpora; sharing a term is what makes a candidate.
        hits = [
            (indexed, max(0.0, float(scores[n])))
            for n, indexed in enumerate(self._indexed)
            if wanted & set(indexed.terms.tokens)
        ]
        hits.sort(key=lambda hit: -hit[1])
        return hits[:k]

    def coverage(self, words: Iterable[str], found: frozenset[str]) -> float:
        """Share of the words' idf mass that is in ``found``: rare words count most, "Northwind" least."""
        weights = [(self._idf.get(word, self._unseen_idf), word in found) for word in set(words)]
        total = sum(weight for weight, _ in weights)
        return 0.0 if total == 0 else sum(weight for weight, hit in weights if hit) / total


def _evidence(indexed: _IndexedPassage, score: float) -> Evidence:
    return Evidence(
        passage_id=indexed.passage.passage_id,
        source=indexed.passage.source,
        text=indexed.passage.text,
        score=round(score, 4),
    )


def _is_year(number: str) -> bool:
    return len(number) == 4 and number.isdigit() and 1900 <= int(number) <= 2099


def _same_kind(a: str, b: str) -> bool:
    return _is_year(a) == _is_year(b)


def _figure_conflict(claim: _Terms, indexed: _IndexedPassage) -> str | None:
    """The claim gives a figure the passage lacks, and the passage gives another of the same kind."""
    missing = sorted(claim.numbers - indexed.terms.numbers)
    rivals = sorted(n for n in indexed.terms.numbers - claim.numbers if any(_same_kind(n, m) for m in missing))
    if not rivals:
        return None
    return f"gives {', '.join(rivals)} where the claim says {', '.join(missing)}"


def _name_conflict(claim: _Terms, indexed: _IndexedPassage, kb: KnowledgeBase) -> str | None:
    """The passage states the rest of the claim, its other names included, but puts another name in the slot."""
    absent = [name for name in claim.names if not (name.stems & indexed.terms.words)]
    if len(absent) != 1 or len(claim.names) < 2 or absent[0].anchor is None:
        return None
    disputed = absent[0]
    if kb.coverage(claim.words - disputed.stems, indexed.terms.words) < SUPPORTS:
        return None
    for sentence in indexed.sentences:
        for rival in sentence.names:
            if rival.anchor == disputed.anchor and not (rival.stems & claim.words):
                return f"names {rival.surface} where the claim names {disputed.surface}"
    return None


def _read(claim: _Terms, indexed: _IndexedPassage, score: float, kb: KnowledgeBase) -> _Reading:
    coverage = kb.coverage(claim.words, indexed.terms.words)
    same_subject = all(indexed.mentions(name) for name in claim.names)

    def reading(stance: Literal["supports", "refutes", "silent"], why: str) -> _Reading:
        return _Reading(indexed, score, coverage, stance, why)

    figures = _figure_conflict(claim, indexed)
    if figures and same_subject and coverage >= ON_TOPIC:
        return reading("refutes", figures)
    closest = max(indexed.sentences, key=lambda s: kb.coverage(claim.words, s.words))
    if same_subject and coverage >= SUPPORTS and closest.negated != claim.negated:
        flip = "negates what the claim affirms" if closest.negated else "affirms what the claim negates"
        return reading("refutes", flip)
    names = _name_conflict(claim, indexed, kb)
    if names:
        return reading("refutes", names)
    missing = sorted(claim.numbers - indexed.terms.numbers)
    if same_subject and coverage >= SUPPORTS and not missing:
        return reading("supports", "")
    gaps = [name.surface for name in claim.names if not indexed.mentions(name)] + missing
    return reading("silent", f"lacks {', '.join(gaps)}" if coverage >= SUPPORTS and gaps else "")


def _confidence(share: float) -> float:
    return round(0.5 + 0.45 * share, 3)


def verify(check: ClaimCheck, kb: KnowledgeBase) -> Verdict:
    """Label one claim ``supported``, ``refuted`` or ``not-enough-info`` against the knowledge base.

    The :data:`CANDIDATES` best BM25 passages are each read for the claim. *Coverage* is the idf-weighted
    share of the claim's content words (stopwords, figures and negations aside) that a passage contains.
    A passage *supports* the claim when it mentions every name in it, covers at least :data:`SUPPORTS`,
    contains all its figures and agrees on negation. It *refutes* the claim when it mentions the claim's names
    and (a) covers at least :data:`ON_TOPIC` but gives a different figure of the same kind (year or amount)
    where the claim's is missing, or (b) covers at least :data:`SUPPORTS` with the opposite negation; or when
    (c) it lacks exactly one of the claim's names, mentions the others, covers :data:`SUPPORTS` of the rest of
    the claim, and puts another name after the same content word ("headquartered in Rotterdam" against
    "headquartered in Lisbon": one value per slot is assumed).

    Any supporting passage makes the claim ``supported``; otherwise any refuting one makes it ``refuted``;
    otherwise it is ``not-enough-info``. Among passages of the deciding kind the one with the highest
    coverage decides (ties: higher BM25 score). Confidence is ``0.5 + 0.45 * c``: ``c`` is the deciding
    passage's coverage for ``supported`` and ``refuted``, and one minus the best coverage seen for
    ``not-enough-info`` (no passage at all: ``c = 1``). It stays within [0.5, 0.95]: this is a
    term-overlap reader, never certain.
    """
    claim = _analyse(check.claim.text)
    readings = [_read(claim, indexed, score, kb) for indexed, score in kb._retrieve(claim.tokens, CANDIDATES)]
    deciding = [r for r in readings if r.stance == "supports"] or [r for r in readings if r.stance == "refutes"]
    label: Literal["supported", "refuted", "not-enough-info"]
    if deciding:
        best = max(deciding, key=lambda r: r.coverage)
        label = "supported" if best.stance == "supports" else "refuted"
        confidence = _confidence(best.coverage)
        passage, covered = best.indexed.passage.passage_id, f"{best.coverage:.0%}"
        rationale = (
            f"{passage} states the claim, covering {covered} of its content words."
            if label == "supported"
            else f"{passage} covers {covered} of the claim's content words but {best.why}."
        )
    elif readings:
        best = max(readings, key=lambda r: r.coverage)
        label = "not-enough-info"
        confidence = _confidence(1 - best.coverage)
        lacks = f" and {best.why}" if best.why else ""
        rationale = (
            f"No passage states the claim: the closest, {best.indexed.passage.passage_id}, "
            f"covers {best.coverage:.0%} of its content words{lacks}."
        )
    else:
        return Verdict(
            claim_id=check.claim.claim_id,
            label="not-enough-info",
            confidence=_confidence(1.0),
            evidence=[],
            rationale="No passage in the knowledge base shares a term with the claim.",
        )
    others = [_evidence(r.indexed, r.score) for r in readings if r is not best]
    return Verdict(
        claim_id=check.claim.claim_id,
        label=label,
        confidence=confidence,
        evidence=[_evidence(best.indexed, best.score), *others][:EVIDENCE],
        rationale=rationale,
    )


APPROXIMATE_CONFIDENCE = 0.3  # below any policy's trust: an approximate verdict informs, it never decides


def approximate(check: ClaimCheck, kb: KnowledgeBase) -> Verdict:
    """The declared degraded answer (contract fallback ``approximate``) when the full reader is unavailable.

    Retrieval only: the best passages are attached as evidence, nothing is read for names, figures or
    negation, so the label is always ``not-enough-info`` at a low, fixed confidence. A person or the full
    verifier confirms later; the run goes on meanwhile.
    """
    evidence = kb.search(check.claim.text, k=EVIDENCE)
    closest = f"closest passage {evidence[0].passage_id}" if evidence else "no passage shares a term with the claim"
    return Verdict(
        claim_id=check.claim.claim_id,
        label="not-enough-info",
        confidence=APPROXIMATE_CONFIDENCE,
        evidence=evidence,
        rationale=f"Approximate check (retrieval only, the full reader was unavailable): {closest}.",
    )


@lru_cache(maxsize=1)
def default_kb() -> KnowledgeBase:
    """The knowledge base shipped next to this module, loaded and indexed once per process."""
    return KnowledgeBase.load(DEFAULT_KB_PATH)
