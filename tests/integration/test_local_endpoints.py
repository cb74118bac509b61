"""The local plane's SageMaker endpoints: served on loopback, InvokeEndpoint forwarded, errors as on AWS, stopped."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.endpoint_invoker.adapters import TypedErrors
from functions.endpoint_invoker.service import EndpointUnavailable, ModelError
from infra.local.sagemaker import LocalEndpoints

pytestmark = pytest.mark.integration

DOCUMENT = {
    "title": "memo",
    "claims": [
        {"claim_id": "c-001", "text": "Northwind Analytics employs 240 people.", "sentence_index": 0},
        {"claim_id": "c-002", "text": "Northwind Analytics was founded in 2012.", "sentence_index": 1},
    ],
}
JSON = {"content-type": "application/json"}


@pytest.fixture
def endpoints(tmp_path: Path) -> Iterator[LocalEndpoints]:
    (tmp_path / "logs").mkdir()
    local = LocalEndpoints(tmp_path)
    local.add_model("summarizer-model", "summarizer", {"AGENTPLANE_MAX_BATCH": "4", "AGENTPLANE_MAX_WAIT_MS": "1"})
    local.add_config("summarizer-config", "AllTraffic", "summarizer-model")
    local.start("summarizer-ep", "summarizer-config", "EndpointSummarizer")
    yield local
    local.stop()


def test_an_invocation_is_answered_by_the_container(endpoints: LocalEndpoints) -> None:
    headers = {**JSON, "x-amzn-sagemaker-custom-attributes": "trace_id=1-abc"}
    status, got, body = endpoints.forward("summarizer-ep", headers, json.dumps(DOCUMENT).encode())
    assert status == 200
    assert got["X-Amzn-Invoked-Production-Variant"] == "AllTraffic"
    assert got["X-Amzn-SageMaker-Custom-Attributes"] == "trace_id=1-abc"
    assert json.loads(body)["claims"] == DOCUMENT["claims"]
    assert endpoints.endpoints["summarizer-ep"].server.app.settings.max_batch == 4  # the model's environment


def test_container_errors_are_model_errors_with_the_original_status(endpoints: LocalEndpoints) -> None:
    status, got, body = endpoints.forward("summarizer-ep", {"content-type": "text/plain"}, b"hello")
    error = json.loads(body)
    assert (status, got["x-amzn-ErrorType"]) == (424, "ModelError")
    assert error["OriginalStatusCode"] == 415


def test_an_unknown_endpoint_is_a_validation_error(endpoints: LocalEndpoints) -> None:
    status, got, _ = endpoints.forward("nope", JSON, b"{}")
    assert (status, got["x-amzn-ErrorType"]) == (400, "ValidationError")


def test_stopping_closes_the_port(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    local = LocalEndpoints(tmp_path)
    local.add_model("m", "summarizer", {})
    local.add_config("c", "AllTraffic", "m")
    endpoint = local.start("ep", "c", "Endpoint")
    port = endpoint.server.port
    local.stop()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    assert local.endpoints == {}


@pytest.fixture
def routed(endpoints: LocalEndpoints, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """boto3's sagemaker-runtime client, through moto, reaching the endpoint's container."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        endpoints.install()
        try:
            yield boto3.client("sagemaker-runtime")
        finally:
            endpoints.uninstall()


def test_boto3_reaches_the_container_with_sessions_and_attributes(routed: Any) -> None:
    answer = routed.invoke_endpoint(
        EndpointName="summarizer-ep",
        Body=json.dumps(DOCUMENT).encode(),
        ContentType="application/json",
        CustomAttributes="trace_id=1-abc",
        SessionId="NEW_SESSION",
    )
    assert json.loads(answer["Body"].read())["claims"] == DOCUMENT["claims"]
    assert answer["CustomAttributes"] == "trace_id=1-abc"
    assert answer["InvokedProductionVariant"] == "AllTraffic"
    assert len(answer["NewSessionId"].split(";")[0]) == 32


def test_the_invokers_error_names_come_from_real_sagemaker_errors(routed: Any) -> None:
    typed = TypedErrors(routed)
    with pytest.raises(ModelError, match="400"):  # the container's 400 problem, as SageMaker's ModelError
        typed.invoke_endpoint(EndpointName="summarizer-ep", Body=b"{}", ContentType="application/json")
    with pytest.raises(EndpointUnavailable, match="ValidationError"):
        typed.invoke_endpoint(EndpointName="missing", Body=b"{}", ContentType="application/json")
