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
_NAME = re.compile(r"(?<!^)\b[A-Z][a-z]+")
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
    return (1.0 / (1 + index), has_figure, min(tokens, 40) / 40, min(len(_NAME.findall(text)), 3) / 3)


@dataclass(frozen=True)
class EncodedDocument:
    """One document's sentences before padding into a batch: ``token_ids`` [S, T] int64 (T: its longest
    sentence, zero-padded), ``features`` [S, F] float32. Built once per request, outside the batch."""

    token_ids: Array
    features: Array

    @property
    def sentences(self) -> int:
        return int(self.token_ids.shape[0])


def encode_document(sentences: Sequence[str]) -> EncodedDocument:
    ids = [token_ids(sentence) for sentence in sentences]
    width = max((len(row) for row in ids), default=0)
    table = np.zeros((len(ids), width), dtype=np.int64)
    for row, sentence_ids in zip(table, ids, strict=True):
        row[: len(sentence_ids)] = sentence_ids
    feats = np.array(
        [features(i, text, len(t)) for i, (text, t) in enumerate(zip(sentences, ids, strict=True))], dtype=np.float32
    ).reshape(len(ids), len(FEATURE_WEIGHTS))
    return EncodedDocument(table, feats)


def pad(documents: Sequence[EncodedDocument]) -> Encoded:
    """Pad a batch to its longest document and longest sentence: array copies, no per-token Python work."""
    sentences = max((doc.sentences for doc in documents), default=0) or 1
    tokens = max((int(doc.token_ids.shape[1]) for doc in documents), default=0) or 1
    ids = np.zeros((len(documents), sentences, tokens), dtype=np.int64)
    feats = np.zeros((len(documents), sentences, len(FEATURE_WEIGHTS)), dtype=np.float32)
    mask = np.zeros((len(documents), sentences), dtype=np.float32)
    for b, doc in enumerate(documents):
        n, width = doc.token_ids.shape
        ids[b, :n, :width] = doc.token_ids
        feats[b, :n] = doc.features
        mask[b, :n] = 1.0
    return Encoded(ids, feats, mask)


def encode(documents: Sequence[Sequence[str]]) -> Encoded:
    """Encode and pad a batch of documents, each a list of sentences."""
    return pad([encode_document(doc) for doc in documents])


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


def score_documents(documents: Sequence[EncodedDocument], scorer: Scorer) -> list[list[float]]:
    """One scorer run for the whole batch; each document's scores, padding dropped."""
    if not documents:
        return []
    scores = scorer.score(pad(documents))
    return [scores[b, : doc.sentences].tolist() for b, doc in enumerate(documents)]


def summarize_encoded(
    requests: Sequence[SummarizeRequest], documents: Sequence[EncodedDocument], scorer: Scorer
) -> list[Summary]:
    """One scorer run for the whole batch; each request gets its own summary, in order."""
    rows = score_documents(documents, scorer)
    return [build_summary(request, row, scorer.model_id) for request, row in zip(requests, rows, strict=True)]


def summarize_batch(requests: Sequence[SummarizeRequest], scorer: Scorer) -> list[Summary]:
    return summarize_encoded(requests, [encode_document([c.text for c in r.claims]) for r in requests], scorer)


def summarize(request: SummarizeRequest, scorer: Scorer) -> Summary:
    return summarize_batch([request], scorer)[0]
