"""The summarizer's core, shared by the serving container (batched, GPU when present) and the CPU Lambda.

Sentences (the claims intake extracted) are encoded as hashed token ids plus a few features, scored by an
ONNX graph (random-projection LexRank, see ``containers/summarizer/build_model.py``) and the best
:func:`summary_length` of them, in document order, are the summary. No I/O beyond reading the model file.
"""

from __future__ import annotations

import hashlib
import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from contracts.models import SummarizeRequest, Summary

VOCABULARY = 2048
"""Hash buckets for tokens; bucket 0 is padding."""
EMBEDDING_DIM = 32
MAX_TOKENS = 48
"""Tokens per sentence the scorer reads; longer sentences are cut (their start carries the subject)."""
FEATURE_WEIGHTS = (0.35, 0.25, 0.15, 0.10)
"""Prior per feature: lead position, has a figure, length, names (see :func:`features`)."""
MODEL_PATH = Path(__file__).parent / "model" / "lexrank.onnx"
MODEL_FILE = "model.onnx"
"""The file a serving container looks for in its model directory (``/opt/ml/model``)."""

_TOKEN = re.compile(r"[a-z0-9]+")
_NAME = re.compile(r"\b[A-Z][a-z]")  # a capitalised word; searched from index 1, so not the first
_DIGIT = re.compile(r"[0-9]")
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "their",
        "this",
        "to",
        "was",
        "were",
        "will",
        "with",
    ]
)

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class Encoded:
    """A padded batch: ``token_ids`` [B, S, T] int64, ``features`` [B, S, F] and ``mask`` [B, S] float32."""

    token_ids: Array
    features: Array
    mask: Array


class Scorer(Protocol):
    model_id: str

    def score(self, encoded: Encoded) -> Array: ...


_WORD_IDS: dict[str, int] = dict.fromkeys(_STOPWORDS, 0)
"""Word -> token id (0: a stopword, left out). Hashing a word costs more than finding it again: words repeat."""
_WORD_IDS_LIMIT = 1 << 16  # words remembered; past it the table starts over (a bound, not an eviction policy)


def _word_id(word: str) -> int:
    if len(_WORD_IDS) >= _WORD_IDS_LIMIT:
        _WORD_IDS.clear()
        _WORD_IDS.update(dict.fromkeys(_STOPWORDS, 0))
    found = _WORD_IDS[word] = zlib.crc32(word.encode()) % (VOCABULARY - 1) + 1
    return found


def token_ids(text: str) -> list[int]:
    ids: list[int] = []
    for word in _TOKEN.findall(text.lower()):
        found = _WORD_IDS.get(word)
        if found is None:
            found = _word_id(word)
        if found:
            ids.append(found)
            if len(ids) == MAX_TOKENS:
                break
    return ids


def features(index: int, text: str, tokens: int) -> tuple[float, float, float, float]:
    """Lead position (1, 1/2, 1/3...), has a figure, length (saturating at 40 tokens), names (at 3)."""
    has_figure = 1.0 if _DIGIT.search(text) else 0.0
    return (1.0 / (1 + index), has_figure, min(tokens, 40) / 40, min(len(_NAME.findall(text, 1)), 3) / 3)


def encode(documents: Sequence[Sequence[str]]) -> Encoded:
    """Encode a batch of documents, each a list of sentences, padded to its longest document and sentence.

    Built for the whole batch in one pass: every sentence's token ids and features are gathered as Python
    lists and scattered into the padded arrays by one indexed assignment each, so a batch costs a handful of
    numpy calls however many documents and sentences it holds (per-document arrays cost more than the model).
    """
    token_rows = [[token_ids(sentence) for sentence in document] for document in documents]
    sentences = max((len(document) for document in documents), default=0) or 1
    tokens = max((len(row) for rows in token_rows for row in rows), default=0) or 1
    positions: list[int] = []
    values: list[int] = []
    slots: list[int] = []  # sentence slots in the flattened [B * S] layout
    feature_rows: list[tuple[float, float, float, float]] = []
    for b, (document, rows) in enumerate(zip(documents, token_rows, strict=True)):
        for s, (text, row) in enumerate(zip(document, rows, strict=True)):
            slot = b * sentences + s
            positions.extend(range(slot * tokens, slot * tokens + len(row)))
            values.extend(row)
            slots.append(slot)
            feature_rows.append(features(s, text, len(row)))
    batch = len(documents)
    ids = np.zeros(batch * sentences * tokens, dtype=np.int64)
    ids[positions] = values
    feats = np.zeros((batch * sentences, len(FEATURE_WEIGHTS)), dtype=np.float32)
    mask = np.zeros(batch * sentences, dtype=np.float32)
    if slots:
        feats[slots] = feature_rows
        mask[slots] = 1.0
    return Encoded(
        ids.reshape(batch, sentences, tokens),
        feats.reshape(batch, sentences, len(FEATURE_WEIGHTS)),
        mask.reshape(batch, sentences),
    )


def model_id(path: Path) -> str:
    return f"{path.name}@{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"


def preferred_providers(available: Sequence[str]) -> list[str]:
    """CUDA first when this ONNX Runtime build has it (the GPU image), the CPU always."""
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


class OnnxScorer:
    """An ONNX Runtime session over a scorer graph with the inputs :class:`Encoded` carries."""

    def __init__(self, path: Path, *, providers: Sequence[str] | None = None, threads: int | None = None) -> None:
        import onnxruntime as ort  # the Lambda imports it once per warm instance, at its first step

        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        chosen = list(providers) if providers is not None else preferred_providers(ort.get_available_providers())
        self._session = ort.InferenceSession(str(path), sess_options=options, providers=chosen)
        self.providers: list[str] = list(self._session.get_providers())
        self.model_id = model_id(path)

    def score(self, encoded: Encoded) -> Array:
        outputs = self._session.run(
            ["scores"], {"token_ids": encoded.token_ids, "features": encoded.features, "mask": encoded.mask}
        )
        scores: Array = np.asarray(outputs[0], dtype=np.float32)
        return scores


def summary_length(sentences: int) -> int:
    """A third of the sentences, at least one, at most three."""
    return max(1, min(3, math.ceil(sentences / 3)))


def summary_document(request: SummarizeRequest, scores: Sequence[float], model: str) -> dict[str, Any]:
    """The :class:`~contracts.models.Summary` as JSON-ready data: what the container sends as is (building
    pydantic models per sentence would cost more than the model call on the batch's hot path)."""
    claims = request.claims
    ranked = sorted(range(len(claims)), key=lambda i: (-scores[i], i))
    chosen = set(ranked[: summary_length(len(claims))])
    return {
        "summary": " ".join(claims[i].text for i in sorted(chosen)),
        "claims": request.model_dump(mode="json")["claims"],
        "salience": [
            {"claim_id": claim.claim_id, "score": round(float(scores[i]), 4), "selected": i in chosen}
            for i, claim in enumerate(claims)
        ],
        "model": model,
    }


def build_summary(request: SummarizeRequest, scores: Sequence[float], model: str) -> Summary:
    return Summary.model_validate(summary_document(request, scores, model))


def score_requests(requests: Sequence[SummarizeRequest], scorer: Scorer) -> list[list[float]]:
    """One scorer run for the whole batch (each request's claims are its sentences); each one's scores, in order."""
    if not requests:
        return []
    documents = [[claim.text for claim in request.claims] for request in requests]
    scores = scorer.score(encode(documents))
    return [scores[b, : len(document)].tolist() for b, document in enumerate(documents)]


def summarize_batch(requests: Sequence[SummarizeRequest], scorer: Scorer) -> list[Summary]:
    """One scorer run for the whole batch; each request gets its own summary, in order."""
    rows = score_requests(requests, scorer)
    return [build_summary(request, row, scorer.model_id) for request, row in zip(requests, rows, strict=True)]


def summarize(request: SummarizeRequest, scorer: Scorer) -> Summary:
    return summarize_batch([request], scorer)[0]
