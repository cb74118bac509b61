"""The summarizer container's app over real HTTP on 127.0.0.1: SageMaker's contract, bad input, batching."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from containers.base.serve import BackgroundServer
from containers.base.settings import ServingSettings
from containers.summarizer.app import SummarizerPredictor, create_app
from functions.summarizer.core import FEATURE_WEIGHTS, MODEL_FILE, MODEL_PATH, OnnxScorer

pytestmark = pytest.mark.container
GUARD_S = 10.0


def claims(*texts: str) -> list[dict[str, Any]]:
    return [{"claim_id": f"c-{n:03d}", "text": text, "sentence_index": n} for n, text in enumerate(texts, start=1)]


DOCUMENT = {
    "title": "Vendor memo",
    "claims": claims(
        "Northwind Analytics was founded in 2012 and is headquartered in Rotterdam.",
        "Northwind Analytics employs 240 people across three offices.",
        "The audit of Northwind Analytics found no material weaknesses.",
        "Quillstone Audit Partners performs the SOC 2 Type II audit every year.",
    ),
}


def call(
    url: str, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=GUARD_S)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        connection.close()


def invoke(url: str, document: dict[str, Any], **headers: str) -> tuple[int, dict[str, str], Any]:
    status, got, raw = call(
        url, "POST", "/invocations", json.dumps(document).encode(), {"Content-Type": "application/json", **headers}
    )
    return status, got, json.loads(raw)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[BackgroundServer]:
    settings = ServingSettings(model_dir=tmp_path / "model", max_batch=8, max_wait_ms=5)
    with BackgroundServer(create_app(settings)) as server:
        yield server


def test_ping_loads_the_model_lazily_and_answers_healthy(served: BackgroundServer) -> None:
    assert served.app.loaded is False  # nothing loaded at start
    status, _, body = call(served.url, "GET", "/ping")
    assert status == 200
    assert json.loads(body) == {"status": "healthy"}
    assert served.app.loaded is True
    # no model in the model directory: the bundled scorer serves
    assert served.app.predictor.model_path == MODEL_PATH


def test_invocations_return_a_summary_and_the_claims(served: BackgroundServer) -> None:
    status, headers, summary = invoke(served.url, DOCUMENT, **{"X-Amzn-SageMaker-Custom-Attributes": "trace_id=t1"})
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert headers["x-amzn-sagemaker-custom-attributes"] == "trace_id=t1"  # trace ids come back
    assert summary["claims"] == DOCUMENT["claims"]
    selected = [s["claim_id"] for s in summary["salience"] if s["selected"]]
    assert len(selected) == 2  # a third of four sentences, rounded up
    assert summary["summary"] == " ".join(c["text"] for c in DOCUMENT["claims"] if c["claim_id"] in selected)
    assert summary["model"].startswith("lexrank.onnx@")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_an_unsupported_content_type_is_415(served: BackgroundServer, content_type: str) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    status, got, body = call(served.url, "POST", "/invocations", json.dumps(DOCUMENT).encode(), headers)
    assert status == 415
    assert got["content-type"] == "application/problem+json"
    assert "application/json" in json.loads(body)["detail"]


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (b"{not json", "<root>"),
        (json.dumps({"title": "t"}).encode(), "claims"),
        (json.dumps({"title": "t", "claims": []}).encode(), "claims"),
        (json.dumps({**DOCUMENT, "extra": 1}).encode(), "extra"),
        ("\udcff".encode("utf-8", "surrogatepass"), "<root>"),
    ],
)
def test_a_bad_body_is_a_400_problem_naming_the_field(served: BackgroundServer, body: bytes, names: str) -> None:
    status, got, raw = call(served.url, "POST", "/invocations", body, {"Content-Type": "application/json"})
    problem = json.loads(raw)
    assert status == 400
    assert got["content-type"] == "application/problem+json"
    assert problem["status"] == 400
    assert problem["title"] == "Bad Request"
    assert problem["detail"].startswith(names) or names in problem["detail"]


@pytest.mark.parametrize(("method", "path", "status"), [("GET", "/invocations", 405), ("GET", "/nope", 404)])
def test_other_routes_are_problems(served: BackgroundServer, method: str, path: str, status: int) -> None:
    got_status, headers, _ = call(served.url, method, path)
    assert (got_status, headers["content-type"]) == (status, "application/problem+json")


def test_a_deadline_that_passed_is_refused(served: BackgroundServer) -> None:
    past_ms = int((time.time() - 1) * 1000)
    status, headers, problem = invoke(
        served.url, DOCUMENT, **{"X-Amzn-SageMaker-Custom-Attributes": f"deadline={past_ms}"}
    )
    assert status == 504
    assert headers["content-type"] == "application/problem+json"
    assert "deadline" in problem["detail"]


def test_sticky_sessions_get_a_session_id(served: BackgroundServer) -> None:
    _, headers, _ = invoke(served.url, DOCUMENT, **{"X-Amzn-SageMaker-Session-Id": "NEW_SESSION"})
    session = headers["x-amzn-sagemaker-new-session-id"].split(";")[0]
    assert len(session) == 32
    _, headers, _ = invoke(served.url, DOCUMENT, **{"X-Amzn-SageMaker-Session-Id": session})
    assert headers["x-amzn-sagemaker-session-id"] == session


def test_under_concurrency_every_response_matches_its_request(tmp_path: Path) -> None:
    # GIVEN batches of up to 8 that wait (up to 5 s) while requests are on their way, and 32 distinct documents
    settings = ServingSettings(model_dir=tmp_path, max_batch=8, max_wait_ms=5000)
    documents = [
        {
            "title": f"doc {n}",
            "claims": claims(
                *(f"Company {n} reports revenue of {n * k} million in {2000 + k}." for k in range(1, 2 + n % 5))
            ),
        }
        for n in range(32)
    ]
    with BackgroundServer(create_app(settings)) as server, ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(lambda d: invoke(server.url, d), documents))
        snapshot = server.app.metrics.snapshot()
    # THEN each caller got the summary of its own document
    for document, (status, _, summary) in zip(documents, answers, strict=True):
        assert status == 200
        assert summary["claims"] == document["claims"]
    # AND they ran in batches of at most 8, every request in exactly one (how many per batch depends on how the
    # 32 arrivals interleave with the batches: the wait is adaptive)
    assert max(snapshot.batch_sizes) <= 8
    assert sum(size * count for size, count in snapshot.batch_sizes.items()) == 32
    # AND batching did not change any answer: each equals the same document summarized alone
    scorer = OnnxScorer(MODEL_PATH)
    from contracts.models import SummarizeRequest
    from functions.summarizer.core import summarize

    for document, (_, _, summary) in zip(documents, answers, strict=True):
        alone = summarize(SummarizeRequest.model_validate(document), scorer).model_dump(mode="json")
        assert [s["selected"] for s in summary["salience"]] == [s["selected"] for s in alone["salience"]]
        assert np.allclose(
            [s["score"] for s in summary["salience"]], [s["score"] for s in alone["salience"]], atol=1e-3
        )


def test_a_full_queue_is_429(tmp_path: Path) -> None:
    gate, entered = threading.Event(), threading.Event()

    class Blocking(SummarizerPredictor):
        def predict(self, items: list[Any]) -> Any:
            entered.set()
            gate.wait(GUARD_S)
            return super().predict(items)

    settings = ServingSettings(model_dir=tmp_path, max_batch=1, max_wait_ms=0, max_queue=1)
    app = create_app(settings, predictor=Blocking())
    with BackgroundServer(app) as server, ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(invoke, server.url, DOCUMENT)
        assert entered.wait(GUARD_S)
        second = pool.submit(invoke, server.url, DOCUMENT)
        deadline = time.monotonic() + GUARD_S
        while app.batcher.depth < 1 and time.monotonic() < deadline:
            time.sleep(0.001)
        status, headers, _problem = invoke(server.url, DOCUMENT)
        gate.set()
        assert (status, headers["content-type"]) == (429, "application/problem+json")
        assert first.result(GUARD_S)[0] == 200
        assert second.result(GUARD_S)[0] == 200


def tiny_figures_model(path: Path) -> Path:
    """A scorer with the production signature that only values figures: score = features[..., 1] * mask."""
    node = helper.make_node
    graph = helper.make_graph(
        [
            node("Gather", ["features", "figure_index"], ["figure"], axis=2),
            node("Mul", ["figure", "mask"], ["scores"]),
        ],
        "tiny-figures",
        inputs=[
            helper.make_tensor_value_info("token_ids", TensorProto.INT64, ["b", "s", "t"]),
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["b", "s", len(FEATURE_WEIGHTS)]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["b", "s"]),
        ],
        outputs=[helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["b", "s"])],
        initializer=[numpy_helper.from_array(np.asarray(1, dtype=np.int64), "figure_index")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.mkdir(parents=True, exist_ok=True)
    (path / MODEL_FILE).write_bytes(model.SerializeToString())
    return path / MODEL_FILE


def test_the_production_path_loads_the_model_from_the_model_directory(tmp_path: Path) -> None:
    # GIVEN /opt/ml/model (here a temporary directory) holding a model the test built
    model_file = tiny_figures_model(tmp_path / "opt-ml-model")
    settings = ServingSettings.from_environment({"SM_MODEL_DIR": str(model_file.parent), "AGENTPLANE_MAX_BATCH": "4"})
    document = {
        "title": "t",
        "claims": claims(
            "No figure in this one at all.", "This one has 42 in it, a figure.", "Neither does this sentence here."
        ),
    }
    with BackgroundServer(create_app(settings)) as server:
        assert server.app.loaded is False
        status, _, summary = invoke(server.url, document)
    # THEN that model scored the sentences: only the one with a figure is chosen
    assert status == 200
    assert server.app.predictor.model_path == model_file
    assert [s["selected"] for s in summary["salience"]] == [False, True, False]
    assert [s["score"] for s in summary["salience"]] == [0.0, 1.0, 0.0]
