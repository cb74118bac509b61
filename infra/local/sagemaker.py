"""SageMaker endpoints on the local plane: each endpoint in the template is served by its container's app on
127.0.0.1 (an ephemeral port, started and stopped with the plane), and ``sagemaker-runtime`` InvokeEndpoint
calls are forwarded to it over HTTP, so invokers run the same code and see the same errors as on AWS.

An endpoint whose model names a standard LLM serving image (``runtime.serving``) is served by the stand-in in
``llm_serving.py`` instead, with the local model registered for the served model's name (a ``ScriptedModel``
unless ``add_serving_model`` put another there).

moto answers InvokeEndpoint with canned bodies; its one response method is replaced here (as
``stepfunctions.py`` adds StartSyncExecution). A container's non-2xx answer becomes SageMaker's ``ModelError``
(status 424, ``OriginalStatusCode``), an unknown endpoint a ``ValidationError``, as on AWS; ``inject`` makes an
endpoint answer one of SageMaker's own errors (throttling...) before its container sees the request.
"""

from __future__ import annotations

import http.client
import importlib
import json
import random
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

from containers.base.serve import BackgroundServer
from containers.base.settings import MODEL_DIR_ENV, ServingSettings
from infra.local import moto_seam
from infra.local.bedrock import Model, ScriptedModel
from infra.local.llm_serving import ServingStandIn
from infra.paths import CONTAINERS_PACKAGE

INVOKE_TIMEOUT_S = 60.0  # SageMaker's real-time invocation limit
FORWARDED = {
    "content-type": "Content-Type",
    "accept": "Accept",
    "x-amzn-sagemaker-custom-attributes": "X-Amzn-SageMaker-Custom-Attributes",
    "x-amzn-sagemaker-session-id": "X-Amzn-SageMaker-Session-Id",
}
RETURNED = ("content-type", "x-amzn-sagemaker-custom-attributes", "x-amzn-sagemaker-new-session-id")
# SageMaker's own InvokeEndpoint errors (not the container's): code -> HTTP status.
ERRORS = {
    "ThrottlingException": 400,
    "ServiceUnavailable": 503,
    "ModelNotReadyException": 429,
    "InternalFailure": 500,
    "ModelError": 424,
    "ValidationError": 400,
}


@dataclass(frozen=True)
class LocalModel:
    container: str | None  # a folder under containers/, or None for a standard LLM image
    environment: dict[str, str]
    serving: dict[str, str] | None = None  # {image, version, model_name}


@dataclass
class LocalEndpoint:
    name: str
    variant: str
    server: BackgroundServer
    log: IO[str]


class LocalEndpoints:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.models: dict[str, LocalModel] = {}
        self.configs: dict[str, tuple[str, str]] = {}  # config name -> (variant name, model name)
        self.endpoints: dict[str, LocalEndpoint] = {}
        self.serving_models: dict[str, Model] = {}  # served model name -> the local model playing it
        self._faults: dict[str, tuple[str, float]] = {}  # endpoint name -> (SageMaker error, rate)
        self._random = random.Random(0)  # noqa: S311 - fault rates, not secrets
        self._lock = threading.Lock()
        self._patches = moto_seam.Patches()

    # --- resources, as the provisioner meets them ------------------------------------------------

    def add_model(
        self, name: str, container: str | None, environment: dict[str, str], serving: dict[str, str] | None = None
    ) -> None:
        self.models[name] = LocalModel(container, environment, serving)

    def add_serving_model(self, model: Model) -> None:
        """Play the served model named ``model.id`` with ``model`` (before the endpoint starts, or after: the
        stand-in asks for its model on every request)."""
        with self._lock:
            self.serving_models[model.id] = model

    def serving_model(self, model_name: str) -> Model:
        with self._lock:
            model = self.serving_models.get(model_name)
            if model is None:
                model = self.serving_models[model_name] = ScriptedModel(model_name)
            return model

    def inject(self, name: str, error_code: str, *, rate: float = 1.0) -> None:
        """Endpoint ``name`` answers SageMaker's ``error_code`` for ``rate`` of its requests."""
        if error_code not in ERRORS:
            raise ValueError(f"{error_code!r} is not a SageMaker InvokeEndpoint error ({', '.join(ERRORS)})")
        with self._lock:
            self._faults[name] = (error_code, rate)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def add_config(self, name: str, variant: str, model: str) -> None:
        self.configs[name] = (variant, model)

    def start(self, name: str, config: str, logical_id: str) -> LocalEndpoint:
        """Serve the endpoint's model with its container's app (``containers.<name>.app.create_app``), or with
        the stand-in for its standard LLM image."""
        variant, model_name = self.configs[config]
        model = self.models[model_name]
        log = (self.state_dir / "logs" / f"{logical_id}.log").open("a", buffering=1)
        app = self._app(name, model, emit=lambda line: log.write(line + "\n"))
        endpoint = LocalEndpoint(name, variant, BackgroundServer(app).start(), log)
        status = _ping(endpoint.server)
        if status != 200:  # SageMaker puts an endpoint in service only once its container answers the ping
            endpoint.server.stop()
            log.close()
            what = model.container or (model.serving or {}).get("image")
            raise RuntimeError(f"endpoint {name}: the {what} container answered /ping with {status}")
        with self._lock:
            self.endpoints[name] = endpoint
        return endpoint

    def _app(self, name: str, model: LocalModel, *, emit: Any) -> Any:
        if model.serving is not None:
            served = model.serving["model_name"]
            return ServingStandIn(model.serving["image"], lambda: self.serving_model(served), emit=emit)
        model_dir = self.state_dir / "models" / name  # empty: the image's bundled model serves, as in the image
        model_dir.mkdir(parents=True, exist_ok=True)
        settings = ServingSettings.from_environment({**model.environment, MODEL_DIR_ENV: str(model_dir)})
        app_module = importlib.import_module(f"{CONTAINERS_PACKAGE}.{model.container}.app")
        return app_module.create_app(settings, emit=emit)

    # --- the InvokeEndpoint route ------------------------------------------------------------------

    def install(self) -> None:
        endpoints = self

        def invoke_endpoint(response: SageMakerRuntimeResponse) -> tuple[int, dict[str, str], bytes | str]:
            return endpoints.forward(
                str(response._get_param("EndpointName") or response.path.split("/")[2]),
                {key.lower(): value for key, value in response.headers.items()},
                response.body if isinstance(response.body, bytes) else str(response.body).encode(),
            )

        self._patches.apply("sagemaker.invoke_endpoint", invoke_endpoint)

    def uninstall(self) -> None:
        self._patches.restore()

    def forward(self, name: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes | str]:
        with self._lock:
            endpoint = self.endpoints.get(name)
            fault = self._faults.get(name)
            failing = fault is not None and self._random.random() < fault[1]
        if endpoint is None:
            return _error(400, "ValidationError", f"Endpoint {name} not found.")
        if fault is not None and failing:
            return _error(ERRORS[fault[0]], fault[0], f"injected fault: {fault[0]} (local plane)")
        sent = {FORWARDED[key]: value for key, value in headers.items() if key in FORWARDED}
        connection = http.client.HTTPConnection(endpoint.server.host, endpoint.server.port, timeout=INVOKE_TIMEOUT_S)
        try:
            connection.request("POST", "/invocations", body=body, headers=sent)
            answer = connection.getresponse()
            status, raw = answer.status, answer.read()
            got = {key.lower(): value for key, value in answer.getheaders()}
        except OSError as exc:
            return _error(424, "ModelError", f"the container did not answer: {exc}", original_status=500)
        finally:
            connection.close()
        if status != 200:
            return _error(
                424,
                "ModelError",
                f'Received client error ({status}) from primary with message "{raw.decode(errors="replace")}"',
                original_status=status,
            )
        returned = {_title(key): got[key] for key in RETURNED if key in got}
        returned["X-Amzn-Invoked-Production-Variant"] = endpoint.variant
        return 200, returned, raw

    def stop(self) -> None:
        with self._lock:
            endpoints, self.endpoints = list(self.endpoints.values()), {}
        for endpoint in endpoints:
            endpoint.server.stop()
            endpoint.log.close()


def _ping(server: BackgroundServer) -> int:
    connection = http.client.HTTPConnection(server.host, server.port, timeout=INVOKE_TIMEOUT_S)
    try:
        connection.request("GET", "/ping")
        answer = connection.getresponse()
        answer.read()
        return answer.status
    finally:
        connection.close()


def _title(header: str) -> str:
    return "-".join(part.capitalize() if part != "sagemaker" else "SageMaker" for part in header.split("-"))


def _error(
    status: int, code: str, message: str, *, original_status: int | None = None
) -> tuple[int, dict[str, str], str]:
    body: dict[str, Any] = {"__type": code, "message": message}
    if original_status is not None:
        body |= {"OriginalStatusCode": original_status, "OriginalMessage": message}
    # moto takes the status from a "status" header, not from the tuple
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": code, "status": str(status)}
    return status, headers, json.dumps(body)
