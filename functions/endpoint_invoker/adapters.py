"""The invoker's AWS side: boto3's ``sagemaker-runtime`` client, one per timeout budget, its errors typed."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from functions.endpoint_invoker.service import RuntimeClient, classify, client_timeout_bucket


class TypedErrors:
    """boto3's client with its errors mapped to the names the workflow's Catch matches."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def invoke_endpoint(self, **params: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self._client.invoke_endpoint(**params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("OriginalStatusCode")  # ModelError: the container's own status
            code, message = str(error.get("Code", "")), str(error.get("Message", ""))
            raise classify(code, message, status if isinstance(status, int) else None) from exc
        except BotoCoreError as exc:  # timeouts, connection failures
            raise classify(type(exc).__name__, str(exc)) from exc


@lru_cache(maxsize=8)
def _client(seconds: int) -> RuntimeClient:
    import boto3
    from botocore.config import Config

    # No SDK retries: a throttled or failed call goes to the contract's fallback, not round again.
    config = Config(read_timeout=seconds, connect_timeout=2, retries={"total_max_attempts": 1})
    return TypedErrors(boto3.client("sagemaker-runtime", config=config))


def client_for(seconds: float) -> RuntimeClient:
    return _client(client_timeout_bucket(seconds))
