"""Builds the summarizer's sentence scorer, an ONNX graph: hashed bag-of-words random projection + LexRank.

Run ``python -m containers.summarizer.build_model`` to rewrite ``functions/summarizer/model/lexrank.onnx``;
a test rebuilds it and compares bytes, so the committed file is always what this script makes.

The graph (inputs ``token_ids`` int64 [B, S, T], ``features`` float [B, S, F], ``mask`` float [B, S]; output
``scores`` float [B, S]):

1. each sentence is the mean of its tokens' rows in a fixed random projection table (the hashing trick:
   cosine similarity of two sentences approximates the overlap of their words);
2. LexRank (Erkan and Radev, 2004): cosine similarities form a graph, a damped power iteration
   (unrolled, :data:`ITERATIONS` steps, error below :data:`TOLERANCE`) gives each sentence its centrality,
   scaled so the mean is 1;
3. a fixed linear prior over the per-sentence features (lead position, figures, length, names) is added.
Padding sentences (mask 0) score -1e4. The weights are derived from a SHAKE-256 stream, not a seeded RNG,
so the bytes do not depend on the numpy version.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from functions.summarizer.core import EMBEDDING_DIM, FEATURE_WEIGHTS, MODEL_PATH, VOCABULARY

OPSET = 17
IR_VERSION = 8  # readable by every ONNX Runtime a CUDA image is likely to carry
DAMPING = 0.85
TOLERANCE = 1e-3
# Power iteration error shrinks by the damping factor per step: enough steps to get below TOLERANCE.
ITERATIONS = math.ceil(math.log(TOLERANCE) / math.log(DAMPING))
SEED = b"agentplane-summarizer-lexrank-v1"


def projection_table(vocabulary: int = VOCABULARY, dim: int = EMBEDDING_DIM) -> np.ndarray:
    """Rows of uniform values with unit variance per component over sqrt(dim); row 0 (padding) is zero."""
    words = np.frombuffer(hashlib.shake_256(SEED).digest(vocabulary * dim * 4), dtype="<u4")
    uniform = words.astype(np.float64) / 2**32 * 2 - 1  # [-1, 1)
    table: np.ndarray = (uniform * np.sqrt(3.0 / dim)).astype(np.float32).reshape(vocabulary, dim)
    table[0] = 0.0
    return table


def _const(name: str, value: float | list[int] | list[float], dtype: type = np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def build() -> onnx.ModelProto:
    node = helper.make_node
    initializers = [
        numpy_helper.from_array(projection_table(), "projection"),
        _const("feature_weights", list(FEATURE_WEIGHTS)),
        _const("eps", 1e-6),
        _const("one", 1.0),
        _const("damping", DAMPING),
        _const("teleport_share", 1.0 - DAMPING),
        _const("padding_score", 1e4),
        _const("zero_i64", 0, np.int64),
        _const("axis_last", [-1], np.int64),
        _const("axis_2", [2], np.int64),
        _const("axis_1", [1], np.int64),
    ]
    nodes = [
        # 1. sentence vectors: mean of the tokens' projections, then unit length
        node("Gather", ["projection", "token_ids"], ["token_vectors"]),
        node("Greater", ["token_ids", "zero_i64"], ["token_present_bool"]),
        node("Cast", ["token_present_bool"], ["token_present"], to=TensorProto.FLOAT),
        node("Unsqueeze", ["token_present", "axis_last"], ["token_weight"]),
        node("Mul", ["token_vectors", "token_weight"], ["masked_vectors"]),
        node("ReduceSum", ["masked_vectors", "axis_2"], ["sentence_sum"], keepdims=0),
        node("Mul", ["sentence_sum", "sentence_sum"], ["sentence_sq"]),
        node("ReduceSum", ["sentence_sq", "axis_last"], ["sentence_sq_norm"], keepdims=1),
        node("Sqrt", ["sentence_sq_norm"], ["sentence_norm"]),
        node("Max", ["sentence_norm", "eps"], ["sentence_norm_safe"]),
        node("Div", ["sentence_sum", "sentence_norm_safe"], ["unit"]),
        # 2. LexRank over cosine similarities between real sentences
        node("Transpose", ["unit"], ["unit_t"], perm=[0, 2, 1]),
        node("MatMul", ["unit", "unit_t"], ["cosine"]),
        node("Relu", ["cosine"], ["affinity_raw"]),
        node("Unsqueeze", ["mask", "axis_last"], ["mask_col"]),
        node("Unsqueeze", ["mask", "axis_1"], ["mask_row"]),
        node("Mul", ["mask_col", "mask_row"], ["pair_mask"]),
        node("Mul", ["affinity_raw", "pair_mask"], ["affinity"]),
        node("ReduceSum", ["affinity", "axis_last"], ["affinity_rows"], keepdims=1),
        node("Max", ["affinity_rows", "eps"], ["affinity_rows_safe"]),
        node("Div", ["affinity", "affinity_rows_safe"], ["transition"]),
        node("ReduceSum", ["mask", "axis_last"], ["count"], keepdims=1),
        node("Max", ["count", "one"], ["count_safe"]),
        node("Div", ["mask", "count_safe"], ["uniform"]),
        node("Mul", ["uniform", "teleport_share"], ["teleport"]),
        node("Unsqueeze", ["teleport", "axis_1"], ["teleport_row"]),
        node("Unsqueeze", ["uniform", "axis_1"], ["rank_0"]),
    ]
    for step in range(ITERATIONS):
        nodes += [
            node("MatMul", [f"rank_{step}", "transition"], [f"walk_{step}"]),
            node("Mul", [f"walk_{step}", "damping"], [f"damped_{step}"]),
            node("Add", [f"damped_{step}", "teleport_row"], [f"rank_{step + 1}"]),
        ]
    nodes += [
        node("Squeeze", [f"rank_{ITERATIONS}", "axis_1"], ["rank"]),
        node("Mul", ["rank", "count_safe"], ["centrality"]),
        # 3. the feature prior, and padding pushed out of reach
        node("Mul", ["features", "feature_weights"], ["weighted_features"]),
        node("ReduceSum", ["weighted_features", "axis_last"], ["prior"], keepdims=0),
        node("Add", ["centrality", "prior"], ["raw_score"]),
        node("Mul", ["raw_score", "mask"], ["real_score"]),
        node("Sub", ["mask", "one"], ["padding"]),
        node("Mul", ["padding", "padding_score"], ["padding_penalty"]),
        node("Add", ["real_score", "padding_penalty"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes,
        "lexrank-summarizer",
        inputs=[
            helper.make_tensor_value_info("token_ids", TensorProto.INT64, ["batch", "sentences", "tokens"]),
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", "sentences", len(FEATURE_WEIGHTS)]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", "sentences"]),
        ],
        outputs=[helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", "sentences"])],
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="agentplane",
        producer_version="1",
        doc_string="Extractive summarizer sentence scorer: hashed random projection + LexRank + feature prior.",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def write(path: Path = MODEL_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(build().SerializeToString())
    return path


if __name__ == "__main__":
    print(write())  # noqa: T201
