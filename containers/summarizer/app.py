"""The summarizer's serving app: the shared core behind the SageMaker contract, batched.

The model comes from the model directory (``/opt/ml/model/model.onnx``, what SageMaker extracts from the
model's artefact) when one is there, else from the small scorer that ships in the image: the same file the
CPU Lambda uses, so both implementations of the capability give the same answer.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_json

from containers.base import BadRequest, BatchMetrics, ServingApp, ServingSettings
from contracts.models import SummarizeRequest
from functions.summarizer.core import MODEL_FILE, MODEL_PATH, OnnxScorer, Scorer, score_requests, summary_document

SERVICE = "summarizer"


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "<root>"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {err['msg']}{more}"


class SummarizerPredictor:
    content_types: tuple[str, ...] = ("application/json",)

    def __init__(self, scorer_factory: Callable[[Path, int], Scorer] | None = None, bundled: Path = MODEL_PATH) -> None:
        self._factory = scorer_factory or (lambda path, threads: OnnxScorer(path, threads=threads))
        self._bundled = bundled
        self.scorer: Scorer | None = None
        self.model_path: Path | None = None

    def load(self, model_dir: Path, threads: int = 1) -> None:
        candidate = model_dir / MODEL_FILE
        self.model_path = candidate if candidate.is_file() else self._bundled
        self.scorer = self._factory(self.model_path, threads)

    def parse(self, body: bytes) -> SummarizeRequest:
        """Validation only: the request's sentences are tokenised with its batch, on the model thread."""
        try:
            return SummarizeRequest.model_validate_json(body)
        except ValidationError as exc:
            raise BadRequest(_first_error(exc)) from None

    def predict(self, items: list[SummarizeRequest]) -> Sequence[dict[str, Any] | Exception]:
        """Tokenise the batch and score it in one model call; the JSON-ready Summary of each item, in order."""
        if self.scorer is None:
            raise RuntimeError("predict before load")
        rows = score_requests(items, self.scorer)
        model = self.scorer.model_id
        return [summary_document(request, row, model) for request, row in zip(items, rows, strict=True)]

    def render(self, result: dict[str, Any]) -> bytes:
        return to_json(result)  # pydantic-core's serializer: a third of json.dumps' time on the hot path


def create_app(
    settings: ServingSettings,
    *,
    predictor: SummarizerPredictor | None = None,
    emit: Callable[[str], None] | None = None,
) -> ServingApp[SummarizeRequest, dict[str, Any]]:
    metrics = BatchMetrics(service=SERVICE, emit=emit)
    return ServingApp(predictor or SummarizerPredictor(), settings, metrics=metrics)


def main(argv: list[str] | None = None) -> None:
    """``serve [--host H] [--port P]``: SageMaker starts containers with ``serve`` (all interfaces, port 8080)."""
    import argparse

    from containers.base.serve import serve_forever

    parser = argparse.ArgumentParser(prog="serve", description="the summarizer's SageMaker serving app")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - inside the container, SageMaker connects from outside
    parser.add_argument("--port", type=int, default=None, help="default: SAGEMAKER_BIND_TO_PORT or 8080")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    settings = ServingSettings.from_environment(os.environ)
    port = settings.port if args.port is None else args.port
    serve_forever("containers.summarizer.app:from_environment", args.host, port, workers=settings.workers)


def from_environment() -> ServingApp[SummarizeRequest, dict[str, Any]]:
    """The app each serving worker builds for itself, from the container's environment."""
    return create_app(ServingSettings.from_environment(os.environ), emit=print)


if __name__ == "__main__":
    main()
