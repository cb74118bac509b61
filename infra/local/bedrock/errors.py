"""Bedrock Runtime's errors: the codes, HTTP statuses and default messages its service model and service use.

``BedrockError`` is a ``botocore`` ``ClientError``, so a caller in the plane's own process (``LocalBedrock.converse``)
handles it with the same ``except ClientError`` as a caller going through boto3 over HTTP.
"""

from __future__ import annotations

import functools
from typing import Any

import botocore.session
from botocore.exceptions import ClientError
from botocore.model import OperationModel

OPERATION = "Converse"

# What Bedrock says when it has nothing more specific to say.
DEFAULT_MESSAGES = {
    "AccessDeniedException": "You don't have access to the model with the specified model ID.",
    "ThrottlingException": "Too many requests, please wait before trying again.",
    "ResourceNotFoundException": "The requested resource could not be found.",
    "ModelTimeoutException": "Model has timed out in processing the request. Try your request again.",
    "InternalServerException": "The system encountered an unexpected error during processing. Try your request again.",
    "ServiceUnavailableException": "Bedrock is unable to process your request.",
    "ValidationException": "Malformed input request, please reformat your input and try again.",
    "ModelNotReadyException": "Model is not ready to serve inference requests. Try again later.",
    "ModelErrorException": "The model produced an error while processing the request.",
}


@functools.cache
def operation_model() -> OperationModel:
    """Converse as botocore's service model for ``bedrock-runtime`` describes it (shipped with botocore)."""
    return botocore.session.get_session().get_service_model("bedrock-runtime").operation_model(OPERATION)


@functools.cache
def error_statuses() -> dict[str, int]:
    """Each error Converse declares, and the HTTP status Bedrock answers it with."""
    return {
        shape.name: int(shape.metadata.get("error", {}).get("httpStatusCode", 400))
        for shape in operation_model().error_shapes
    }


class BedrockError(ClientError):
    """An error as Bedrock answers it: ``code`` (the error shape's name), ``status`` and ``message``."""

    def __init__(self, code: str, message: str | None = None, *, injected: bool = False) -> None:
        statuses = error_statuses()
        if code not in statuses:
            raise ValueError(
                f"{code!r} is not an error Bedrock's Converse answers (one of {', '.join(sorted(statuses))})"
            )
        self.code = code
        self.status = statuses[code]
        self.message = message or DEFAULT_MESSAGES[code]
        self.injected = injected  # a fault the caller asked for, not something the request did
        metadata: Any = {"HTTPStatusCode": self.status, "HTTPHeaders": self.headers()}  # what a local answer has
        super().__init__({"Error": {"Code": code, "Message": self.message}, "ResponseMetadata": metadata}, OPERATION)

    def headers(self) -> dict[str, str]:
        headers = {"x-amzn-errortype": self.code}
        if self.injected:
            headers["x-agentplane-fault"] = "injected by the local plane"
        return headers

    def body(self) -> dict[str, Any]:
        return {"message": self.message}


def validation(message: str) -> BedrockError:
    return BedrockError("ValidationException", message)
