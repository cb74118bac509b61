"""The summarizer core shared by the container and the CPU Lambda: the model file, encoding, summaries."""

from __future__ import annotations

import onnx
import pytest

from containers.summarizer.build_model import DAMPING, ITERATIONS, TOLERANCE, build, projection_table
from contracts.models import Claim, SummarizeRequest
from functions.summarizer.core import (
    MODEL_PATH,
    OnnxScorer,
    encode,
    preferred_providers,
    summarize,
    summarize_batch,
    summary_length,
    token_ids,
)

pytestmark = pytest.mark.unit


def request(*texts: str, title: str = "memo") -> SummarizeRequest:
    return SummarizeRequest(
        title=title,
        claims=[Claim(claim_id=f"c-{n:03d}", text=t, sentence_index=n) for n, t in enumerate(texts, start=1)],
    )


@pytest.fixture(scope="module")
def scorer() -> OnnxScorer:
    return OnnxScorer(MODEL_PATH)


def test_the_committed_model_is_what_the_build_script_makes() -> None:
    assert build().SerializeToString() == MODEL_PATH.read_bytes()
    assert 50_000 < MODEL_PATH.stat().st_size < 500_000  # ships in the repo: small
    onnx.checker.check_model(onnx.load(str(MODEL_PATH)), full_check=True)


def test_lexrank_runs_enough_iterations_to_converge() -> None:
    assert DAMPING**ITERATIONS < TOLERANCE <= DAMPING ** (ITERATIONS - 1)


def test_projection_table_is_fixed_and_padding_is_zero() -> None:
    table = projection_table()
    assert not table[0].any()
    assert table[1:].std() == pytest.approx((1 / table.shape[1]) ** 0.5, rel=0.05)


def test_encoding_pads_documents_and_marks_real_sentences() -> None:
    encoded = encode([["Alpha beta gamma.", "Delta 42."], ["Only one sentence here."]])
    assert encoded.token_ids.shape[:2] == (2, 2)
    assert encoded.mask.tolist() == [[1.0, 1.0], [1.0, 0.0]]
    assert encoded.features[0, 1, 1] == 1.0  # "Delta 42." has a figure
    assert token_ids("The audit, the AUDIT!") == token_ids("audit audit")  # case and stopwords folded


def test_central_sentences_with_figures_make_the_summary(scorer: OnnxScorer) -> None:
    summary = summarize(
        request(
            "Northwind Analytics reported revenue of 48 million euros in 2024.",
            "The weather in the harbour was pleasant that week.",
            "Northwind Analytics revenue grew because Northwind Analytics won new contracts.",
            "Lunch was served at noon.",
            "Analysts expect Northwind Analytics revenue to keep growing.",
            "Parking is available behind the building.",
        ),
        scorer,
    )
    chosen = [s.claim_id for s in summary.salience if s.selected]
    assert len(chosen) == summary_length(6) == 2
    assert "c-001" in chosen  # the lead, with figures, on the document's topic
    assert not {"c-002", "c-004", "c-006"} & set(chosen)  # off-topic sentences are left out
    assert summary.claims[0].claim_id == "c-001"
    assert len(summary.claims) == 6


def test_a_batch_gives_each_document_the_answer_it_gets_alone(scorer: OnnxScorer) -> None:
    documents = [
        request("One short sentence about ships."),
        request(
            "Rotterdam is a port.",
            "Ships dock in Rotterdam daily.",
            "Cheese is sold in Gouda.",
            "The port handles 400 million tonnes.",
        ),
        request(*(f"Sentence {n} mentions item {n * 7}." for n in range(12))),
    ]
    batched = summarize_batch(documents, scorer)
    for document, answer in zip(documents, batched, strict=True):
        alone = summarize(document, scorer)
        assert answer.summary == alone.summary
        assert [s.score for s in answer.salience] == pytest.approx([s.score for s in alone.salience], abs=1e-3)


@pytest.mark.parametrize(("sentences", "length"), [(1, 1), (3, 1), (4, 2), (9, 3), (100, 3)])
def test_summary_length_is_a_third_between_one_and_three(sentences: int, length: int) -> None:
    assert summary_length(sentences) == length


def test_cuda_is_preferred_when_this_runtime_has_it() -> None:
    assert preferred_providers(["CPUExecutionProvider", "CUDAExecutionProvider"]) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert preferred_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def test_the_cpu_session_serves_here(scorer: OnnxScorer) -> None:
    assert scorer.providers[-1] == "CPUExecutionProvider"
    assert scorer.model_id.startswith("lexrank.onnx@")
