"""A local Bedrock Runtime for the local plane: Converse over HTTP and in-process, answered by local models.

``LocalBedrock`` validates requests against botocore's service model, keeps Bedrock's tool-use protocol, stop
reasons, token usage, quotas and errors, and lets tests inject faults; ``ScriptedModel`` is the deterministic
model behind it unless another ``Model`` is registered. Importing this package starts nothing.
"""

from infra.local.bedrock.authorizer import Authorizer, MotoAuthorizer, Principal
from infra.local.bedrock.errors import BedrockError
from infra.local.bedrock.model import (
    FINAL_ANSWER,
    ConverseRequest,
    Model,
    ModelTurn,
    ToolResult,
    ToolSpec,
    count_tokens,
)
from infra.local.bedrock.scripted import Policy, ScriptedModel, default_policy
from infra.local.bedrock.service import DEFAULT_MAX_TOKENS, LocalBedrock, ModelRef, ModelUsage, Quota, resolve_model_id

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "FINAL_ANSWER",
    "Authorizer",
    "BedrockError",
    "ConverseRequest",
    "LocalBedrock",
    "Model",
    "ModelRef",
    "ModelTurn",
    "ModelUsage",
    "MotoAuthorizer",
    "Policy",
    "Principal",
    "Quota",
    "ScriptedModel",
    "ToolResult",
    "ToolSpec",
    "count_tokens",
    "default_policy",
    "resolve_model_id",
]
