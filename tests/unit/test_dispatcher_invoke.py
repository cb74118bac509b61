"""The dispatcher's Lambda adapter: every way a call can fail becomes the implementation's failure, typed."""

from __future__ import annotations

import io
import json
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.unit


class FakeLambda:
    def __init__(self, answer: dict[str, Any] | Exception) -> None:
        self.answer = answer
        self.sent: list[dict[str, Any]] = []

    def invoke(self, *, FunctionName: str, Payload: bytes) -> dict[str, Any]:  # noqa: N803 - boto3's names
        self.sent.append({"target": FunctionName, "event": json.loads(Payload)})
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def answered(payload: Any, *, error: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {"Payload": io.BytesIO(json.dumps(payload).encode())}
    if error:
        response["FunctionError"] = "Unhandled"
    return response


@pytest.fixture
def adapters(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("REGISTRY_TABLE", "registry")
    monkeypatch.setenv("DECISIONS_TABLE", "decisions")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # The module's own classes: a local plane in this process may have loaded the module from its asset.
    from functions.dispatcher import adapters as module

    return module


def use(adapters: ModuleType, monkeypatch: pytest.MonkeyPatch, fake: FakeLambda) -> None:
    monkeypatch.setattr(adapters, "client", lambda _service: fake)


def test_an_answer_is_returned_as_it_came(adapters: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeLambda(answered({"claim_id": "c-001"}))
    use(adapters, monkeypatch, fake)

    assert adapters.invoke("fn-verifier", {"payload": {}}) == {"claim_id": "c-001"}
    assert fake.sent == [{"target": "fn-verifier", "event": {"payload": {}}}]


def test_a_function_error_is_the_implementations_failure_with_its_type(
    adapters: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(adapters, monkeypatch, FakeLambda(answered({"errorType": "ModelError", "errorMessage": "down"}, error=True)))

    with pytest.raises(adapters.ImplementationFailed) as failed:
        adapters.invoke("fn-verifier", {})

    assert (failed.value.error_type, failed.value.message) == ("ModelError", "down")


def test_a_throttled_call_is_the_implementations_failure(adapters: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    throttled = ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "slow down"}}, "Invoke")
    use(adapters, monkeypatch, FakeLambda(throttled))

    with pytest.raises(adapters.ImplementationFailed) as failed:
        adapters.invoke("fn-verifier", {})

    assert failed.value.error_type == "TooManyRequestsException"


@pytest.mark.parametrize("payload", [None, ["a", "list"], "text"])
def test_an_answer_that_is_not_an_object_is_bad_output(
    adapters: ModuleType, monkeypatch: pytest.MonkeyPatch, payload: Any
) -> None:
    use(adapters, monkeypatch, FakeLambda(answered(payload)))

    with pytest.raises(adapters.ImplementationFailed) as failed:
        adapters.invoke("fn-verifier", {})

    assert failed.value.error_type == "BadOutput"
