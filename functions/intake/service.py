"""document-intake: keep the document by reference (claim-check) and pull out the claims worth checking."""

from __future__ import annotations

import json
import re
from collections import Counter

from contracts.models import Claim, DocReviewRequest, DocumentIn, IntakeResult, S3Ref
from functions.runtime.canonical import sha256_hex
from functions.runtime.documents import DocumentStore, InMemoryDocumentStore

__all__ = [
    "DocumentStore",
    "InMemoryDocumentStore",
    "NoClaimsFound",
    "extract_claims",
    "intake",
    "split_sentences",
]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


MIN_WORDS = 4
"""Shorter sentences are fragments, not checkable statements."""
MAX_CLAIM_CHARS = 1000
"""Longer "sentences" are unsplittable blobs (tables, lists run together), not one statement."""
MAX_CLAIMS = 40
MAX_CLAIMS_BYTES = 32 * 1024
"""What a run's state can carry (256 KiB): the claims are in it three times (intake, summary, the decision's input)
beside one verdict each (up to ~2 KiB with its evidence), so at most this many claims and this many bytes of them
(JSON, non-ASCII escaped as Step Functions' measure may count it). tests/unit/test_state_budget.py checks the sum."""

_BULLET = re.compile(r"^(?:[-*+\u2022\u2023\u25e6\u25aa\u2013\u2014]|\(?\d{1,3}[.)]|\(?[a-z][.)])\s+")
_HEADING_MARK = re.compile(r"^#{1,6}\s+")
_CLOSERS = "\"')]\u201d\u2019"
_CANDIDATE_END = re.compile(rf"[.!?]+[{re.escape(_CLOSERS)}]*\s+")
_NEXT_WORD = re.compile(r"[\"'(\[\u201c\u2018]*(\w+)")
_LAST_WORD = re.compile(r"(\S+)$")
_WORD_WINDOW = 64  # longer than any abbreviation the boundary rules know
_WORD = re.compile(r"[^\W_]+(?:['\u2019.\-/][^\W_]+)*")
_DOTTED_ACRONYM = re.compile(r"(?:[a-z]\.)+[a-z]")

# Abbreviations that never end a sentence: what follows them belongs to the same sentence.
_NEVER_FINAL = _words("approx ca cf dept dr e.g i.e jan feb mar apr jun jul aug sep sept oct nov dec mr mrs prof vs")
# Abbreviations that stand before a number ("No. 5", "Fig. 2"); before anything else the period ends a sentence.
_BEFORE_NUMBER = _words("fig figs no nos p pp ref vol")
# Abbreviations that may end one: a sentence ends after them only if a typical sentence opener follows.
_MAYBE_FINAL = _words("al co corp etc inc jr llc ltd ms mt plc sr st")
_OPENERS = _words(
    "a after all also an as at before both but each for he her his however in it its on our she since that the "
    "their there these they this those we"
)
_AUXILIARIES = _words(
    "am are be been being can could did do does had has have is may might must shall should was were will would"
)
_VERB_LEMMAS = _words(
    "acquire apply build comply contain cover delete employ encrypt exceed follow generate hire hold host include "
    "keep lead list maintain manage meet offer operate own perform plan process protect provide publish reach "
    "receive rely report require retain run sell serve store support use"
)
_IRREGULAR_PAST = _words("built grew held kept led made met paid ran sold won")


def _third_person(lemma: str) -> str:
    if lemma.endswith("y"):
        return lemma[:-1] + "ies"
    if lemma.endswith(("s", "sh", "ch", "x")):
        return lemma + "es"
    return lemma + "s"


_VERB_FORMS = frozenset(_third_person(lemma) for lemma in _VERB_LEMMAS) | _IRREGULAR_PAST


class NoClaimsFound(ValueError):
    """The document has nothing to fact-check; the message says what was found instead."""


def _ends_sentence(line: str) -> bool:
    return line.rstrip(_CLOSERS).endswith((".", "!", "?"))


def _looks_like_heading(line: str, following: str) -> bool:
    # Hard-wrapped prose also breaks lines without punctuation, but its lines are long.
    return not _ends_sentence(line) and len(_WORD.findall(line)) < 8 and following[:1].isupper()


def _blocks(text: str) -> list[str]:
    """Paragraphs, list items and heading lines, each with its wrapped lines joined."""
    blocks: list[list[str]] = [[]]
    lines = [line.strip() for line in text.splitlines()]
    for n, line in enumerate(lines):
        marker = _HEADING_MARK.match(line) or _BULLET.match(line)
        if not line or marker:
            blocks.append([])
        if not line:
            continue
        if marker:
            line = line[marker.end() :]
        blocks[-1].append(line)
        following = lines[n + 1] if n + 1 < len(lines) else ""
        if _HEADING_MARK.match(lines[n]) or _looks_like_heading(line, following):
            blocks.append([])
    return [" ".join(block) for block in blocks if block]


def _is_boundary(block: str, end: re.Match[str]) -> bool:
    """Whether a candidate end (terminator, closers, space) really ends a sentence."""
    following = _NEXT_WORD.match(block, end.end())
    if following is not None and following.group(1)[0].islower():
        return False
    terminator = end.group().strip().rstrip(_CLOSERS)
    if terminator != ".":
        return True
    # Only the word before the terminator matters; scanning from the block's start made long paragraphs quadratic.
    before = _LAST_WORD.search(block, max(0, end.start() - _WORD_WINDOW), end.start())
    word = before.group(1).lstrip(_CLOSERS + "(\u201c\u2018[").lower() if before else ""
    if word in _NEVER_FINAL or (len(word) == 1 and word.isalpha()):
        return False
    if word in _BEFORE_NUMBER:
        return following is None or not following.group(1)[0].isdigit()
    if word in _MAYBE_FINAL or _DOTTED_ACRONYM.fullmatch(word):
        return following is not None and following.group(1).lower() in _OPENERS
    return True


def split_sentences(text: str) -> list[str]:
    """Split plain text into sentences; headings, list items and paragraphs never share one.

    Decimals ("3.5"), initials ("J. Smith"), dotted acronyms ("U.S."), "e.g." and titles ("Dr.") do not end a
    sentence; "Inc." and its kind do when a typical opener ("The", "It", ...) follows.
    """
    sentences: list[str] = []
    for block in _blocks(text):
        start = 0
        for end in _CANDIDATE_END.finditer(block):
            if _is_boundary(block, end):
                sentences.append(block[start : end.end()].strip())
                start = end.end()
        if block[start:].strip():
            sentences.append(block[start:].strip())
    return [" ".join(sentence.split()) for sentence in sentences]


def _has_verb(words: list[str]) -> bool:
    return any(
        word in _AUXILIARIES or word in _VERB_FORMS or (len(word) > 4 and word.endswith("ed"))
        for word in words
        if word.islower()
    )


def _skip_reason(sentence: str) -> str | None:
    """Why a sentence is not a checkable claim, or ``None`` when it is one."""
    if sentence.rstrip(_CLOSERS).endswith("?"):
        return "question"
    words = _WORD.findall(sentence)
    if len(words) < MIN_WORDS:
        return "fragment"
    if not _ends_sentence(sentence) and not _has_verb(words):
        return "heading"
    if len(sentence) > MAX_CLAIM_CHARS:
        return "over-long"
    return None


def claim_bytes(claim: Claim) -> int:
    """A claim's size in a run's state: its JSON with every non-ASCII character escaped (the larger measure)."""
    return len(json.dumps(claim.model_dump(mode="json"), ensure_ascii=True)) + 1


def extract_claims(text: str, *, max_claims: int = 100) -> list[Claim]:
    """The checkable statements of a text, in order, as claims ``c-001``, ``c-002``...

    A statement is a sentence of at least :data:`MIN_WORDS` words that is not a question; a line without end
    punctuation (a heading or a terse list item) counts only if it has a verb. ``sentence_index`` is the
    sentence's position among all sentences of the text, skipped ones included.
    """
    if max_claims < 1:
        raise ValueError(f"max_claims must be at least 1, got {max_claims}")
    claims: list[Claim] = []
    for index, sentence in enumerate(split_sentences(text)):
        if _skip_reason(sentence) is None:
            claims.append(Claim(claim_id=f"c-{len(claims) + 1:03d}", text=sentence, sentence_index=index))
            if len(claims) == max_claims:
                break
    return claims


def _no_claims_message(document: DocumentIn) -> str:
    sentences = split_sentences(document.text)
    if not sentences:
        return f"no checkable claim in {document.title!r}: the text has no sentence"
    reasons = Counter(reason for sentence in sentences if (reason := _skip_reason(sentence)) is not None)
    found = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    return f"no checkable claim in {document.title!r}: its {len(sentences)} sentence(s) are {found}"


class BadRequestRef(ValueError):
    """The claim-checked request is missing, not what its reference says, or not a valid request."""


def load_request(ref: S3Ref, store: DocumentStore) -> DocReviewRequest:
    """The request the API stored, checked against its reference's digest and size."""
    try:
        body = store.get(ref.key)
    except KeyError:
        raise BadRequestRef(f"no stored request at {ref.key}") from None
    if len(body) != ref.size_bytes or sha256_hex(body) != ref.sha256:
        raise BadRequestRef(f"the request at {ref.key} is not the one referenced (size or digest differs)")
    try:
        return DocReviewRequest.model_validate_json(body)
    except ValueError as exc:
        raise BadRequestRef(f"the request at {ref.key} is not a DocReviewRequest: {str(exc).splitlines()[0]}") from None


def within_budget(claims: list[Claim]) -> tuple[list[Claim], int]:
    """The claims a run's state can carry (:data:`MAX_CLAIMS`, :data:`MAX_CLAIMS_BYTES`), and how many were left out."""
    kept: list[Claim] = []
    used = 0
    for claim in claims:
        size = claim_bytes(claim)
        if len(kept) == MAX_CLAIMS or used + size > MAX_CLAIMS_BYTES:
            break
        kept.append(claim)
        used += size
    return kept, len(claims) - len(kept)


def intake(request: DocReviewRequest, *, store: DocumentStore, bucket: str) -> IntakeResult:
    """Store the document under its content hash and return a reference to it with its claims.

    The stored body is canonical UTF-8 JSON (sorted keys, no spaces) of title, text, source and metadata, so
    the same request always lands on the same ``documents/<sha256>.json`` key. Raises
    :class:`NoClaimsFound` before storing anything when the text has no checkable claim.
    """
    document = request.document
    claims, left_out = within_budget(extract_claims(document.text, max_claims=len(document.text)))
    if not claims:
        raise NoClaimsFound(_no_claims_message(document))
    body = json.dumps(
        {"title": document.title, "text": document.text, "source": document.source, "metadata": request.metadata},
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    ).encode("utf-8")
    digest = sha256_hex(body)
    key = f"documents/{digest}.json"
    store.put(key, body)
    return IntakeResult(
        document_ref=S3Ref(bucket=bucket, key=key, sha256=digest, size_bytes=len(body)),
        title=document.title,
        claims=claims,
        claims_left_out=left_out,
    )
