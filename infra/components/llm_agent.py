"""What a ``kind: llm`` contract adds to an agent pool: the loop's code and configuration, and its model grants.

The loop runs in one Lambda function per contract (``functions/llm_agent``); why not one Step Functions state per
turn is in docs/llm-agents.md. :func:`loop_config` is the contract resolved for the loop (prompt, tools as the
plane dispatches them, output schema, limits, prices); :func:`model_statements` grants exactly the model's
ARNs (and the guardrail's), or the one endpoint serving a self-hosted model. Both take only contracts, not a
workflow: any workflow step can call the agent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import Aws, Stack, Token
from aws_cdk import aws_iam as iam
from constructs import Construct

from contracts.capability import CapabilityContract, LlmRuntime, LlmServing, SageMakerRuntime
from contracts.models import MODELS
from infra.components.errors import ContractInfraError
from infra.cost.model import CostError, load_pricing
from infra.cost.model import token_prices as priced_model
from infra.paths import FUNCTIONS_DIR, FUNCTIONS_PACKAGE, STAGING_DIR, package_folder, plane_handler

LOOP_FOLDER = "llm_agent"
LOOP_HANDLER = plane_handler(LOOP_FOLDER)
CONFIG_FILE = "agent.json"
MODEL_ID_ENV = "LLM_MODEL_ID"
SELF_HOSTED_PRICE = {"input_per_1k_tokens": 0.0, "output_per_1k_tokens": 0.0}
PRICING_REGION = "us-east-1"  # prices when the stack's region is unresolved at synth (an environment-agnostic stack)
# The regions a cross-region inference profile may send a request to (AWS's published destination regions for
# the geography); Converse through a profile needs the model's ARN in each. Refresh when AWS adds regions.
PROFILE_REGIONS: Mapping[str, tuple[str, ...]] = {
    "us": ("us-east-1", "us-east-2", "us-west-2"),
    "eu": ("eu-central-1", "eu-north-1", "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-3"),
    "apac": ("ap-northeast-1", "ap-northeast-2", "ap-south-1", "ap-southeast-1", "ap-southeast-2"),
}
SIDE_EFFECT_ORDER = ("read-only", "idempotent-write", "external-action")


class LlmConfigError(ContractInfraError):
    """A contract's llm runtime cannot be built; the message names contract and field."""


def runtime_of(contract: CapabilityContract) -> LlmRuntime:
    if not isinstance(contract.runtime, LlmRuntime):
        raise LlmConfigError(f"contract {contract.name}: runtime.kind: {contract.runtime.kind} is not llm")
    return contract.runtime


def tool_specs(contract: CapabilityContract, contracts: Mapping[str, CapabilityContract]) -> list[dict[str, Any]]:
    """Each tool as the model sees it (its implementers' input schema) and as dispatch reaches it."""
    specs: list[dict[str, Any]] = []
    for tool in runtime_of(contract).tools:
        offering = sorted(
            (c for c in contracts.values() if tool in c.capabilities and c.name != contract.name),
            key=lambda c: c.name,
        )
        if not offering:
            raise LlmConfigError(f"contract {contract.name}: runtime.tools: no contract offers {tool!r}")
        first = offering[0]
        specs.append(
            {
                "name": tool,
                "description": first.description,
                "input_schema": first.input_model.model_json_schema(mode="validation"),
                "accept": f"{first.major}.x",
                "capability_version": first.version,
                # The widest any implementer has: dispatch may pick any of them.
                "side_effects": max((c.side_effects for c in offering), key=SIDE_EFFECT_ORDER.index),
            }
        )
    return specs


def acting_tools(contract: CapabilityContract, contracts: Mapping[str, CapabilityContract]) -> list[str]:
    """The contracts implementing one of the loop's tools with external side effects (each call waits for a
    person), by name."""
    tools = set(runtime_of(contract).tools)
    return sorted(
        c.name for c in contracts.values() if c.side_effects == "external-action" and tools & set(c.capabilities)
    )


def token_prices(model_id: str, region: str) -> dict[str, float]:
    try:
        pricing = load_pricing(region)
    except CostError:
        pricing = load_pricing(PRICING_REGION)
    try:
        return priced_model(model_id, pricing).model_dump()
    except CostError:
        raise LlmConfigError(
            f"model {model_id!r} has no token price in infra/cost/pricing (budgets in USD need one): add it"
        ) from None


def serving_of(contract: CapabilityContract, contracts: Mapping[str, CapabilityContract]) -> LlmServing:
    """What a ``provider: sagemaker`` loop talks to: its endpoint contract's standard LLM image."""
    endpoint = runtime_of(contract).model.endpoint
    host = contracts.get(endpoint or "")
    if host is None or not isinstance(host.runtime, SageMakerRuntime) or host.runtime.serving is None:
        what = "no contract" if host is None else f"a {host.runtime.kind} contract without runtime.serving"
        raise LlmConfigError(
            f"contract {contract.name}: runtime.model.endpoint: {endpoint!r} names {what}; it must name a sagemaker "
            "contract with runtime.serving (a standard LLM image): see docs/llm-agents.md#self-hosted-models"
        )
    return host.runtime.serving


def model_id(contract: CapabilityContract, contracts: Mapping[str, CapabilityContract]) -> str:
    """What each turn names and records: the Bedrock id Converse is called with, or the served model's name."""
    model = runtime_of(contract).model
    return model.invoked_id if model.provider == "bedrock" else serving_of(contract, contracts).model_name


def loop_config(
    contract: CapabilityContract, contracts: Mapping[str, CapabilityContract], *, region: str
) -> dict[str, Any]:
    """The ``agent.json`` the loop reads (functions.llm_agent.loop.AgentConfig)."""
    runtime = runtime_of(contract)
    # A self-hosted model costs its endpoint's instance hours (priced as SageMaker), not tokens.
    price = token_prices(runtime.model.id, region) if runtime.model.id is not None else SELF_HOSTED_PRICE
    return {
        "name": contract.name,
        "version": contract.version,
        "provider": runtime.model.provider,
        "model_id": model_id(contract, contracts),
        "prompt": runtime.prompt_text,
        "prompt_sha256": runtime.prompt_sha256,
        "tools": tool_specs(contract, contracts),
        "input_model": contract.io.input,
        "output_model": contract.io.output,
        "output_schema": contract.output_model.model_json_schema(mode="validation"),
        "limits": runtime.limits.model_dump(mode="json"),
        "inference": runtime.inference.model_dump(mode="json"),
        "guardrail": None if runtime.guardrail is None else runtime.guardrail.model_dump(mode="json"),
        "price": price,
        # A project's own io types travel as their schemas: the loop's asset holds none of the project's code.
        "models": {
            name: model.model_json_schema(mode="validation")
            for name, model in ((contract.io.input, contract.input_model), (contract.io.output, contract.output_model))
            if name not in MODELS
        },
    }


def stage_config(contract: CapabilityContract, config: dict[str, Any], *, root: Path = STAGING_DIR) -> Path:
    """A folder holding ``agent.json``, content-addressed like every staged asset."""
    text = json.dumps(config, indent=1, sort_keys=True) + "\n"
    folder = root / f"llm-config-{contract.name}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    if not (folder / CONFIG_FILE).is_file():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_FILE).write_text(text, encoding="utf-8")
    return folder


def code_layout(config_dir: Path, functions_dir: Path = FUNCTIONS_DIR) -> list[tuple[Path, str]]:
    loop = f"{package_folder(FUNCTIONS_PACKAGE)}/{LOOP_FOLDER}"
    return [(functions_dir / LOOP_FOLDER, loop), (config_dir, loop)]


def _region(scope: Construct) -> str:
    region = Stack.of(scope).region
    return PRICING_REGION if Token.is_unresolved(region) else region


def model_arns(scope: Construct, runtime: LlmRuntime) -> list[str]:
    """The foundation model in this region, or the inference profile and the model in each region it serves."""
    model = runtime.model
    assert model.id is not None
    partition = Aws.PARTITION
    if model.inference_profile is None:
        return [f"arn:{partition}:bedrock:{Aws.REGION}::foundation-model/{model.id}"]
    profile = f"arn:{partition}:bedrock:{Aws.REGION}:{Aws.ACCOUNT_ID}:inference-profile/{model.invoked_id}"
    if model.inference_profile == "global":
        return [profile, f"arn:{partition}:bedrock:::foundation-model/{model.id}"]
    regions = PROFILE_REGIONS[model.inference_profile]
    return [profile, *(f"arn:{partition}:bedrock:{region}::foundation-model/{model.id}" for region in regions)]


def model_statements(
    scope: Construct, contract: CapabilityContract, endpoint_arn: str | None = None
) -> list[iam.PolicyStatement]:
    """What calling the model needs, on exactly its resources: Bedrock's model ARNs (and the guardrail), or
    ``sagemaker:InvokeEndpoint`` on the one endpoint that serves it."""
    if runtime_of(contract).model.provider == "sagemaker":
        if endpoint_arn is None:
            raise LlmConfigError(f"contract {contract.name}: runtime.model.endpoint: no endpoint was built for it")
        return [iam.PolicyStatement(actions=["sagemaker:InvokeEndpoint"], resources=[endpoint_arn])]
    return bedrock_statements(scope, contract)


def bedrock_statements(scope: Construct, contract: CapabilityContract) -> list[iam.PolicyStatement]:
    """``bedrock:InvokeModel`` (what Converse needs) on exactly the model's ARNs; the guardrail if one is set."""
    runtime = runtime_of(contract)
    statements = [iam.PolicyStatement(actions=["bedrock:InvokeModel"], resources=model_arns(scope, runtime))]
    if runtime.guardrail is not None:
        guardrail = f"arn:{Aws.PARTITION}:bedrock:{Aws.REGION}:{Aws.ACCOUNT_ID}:guardrail/{runtime.guardrail.id}"
        statements.append(iam.PolicyStatement(actions=["bedrock:ApplyGuardrail"], resources=[guardrail]))
    return statements


def loop_asset(
    scope: Construct,
    contract: CapabilityContract,
    contracts: Mapping[str, CapabilityContract],
    functions_dir: Path = FUNCTIONS_DIR,
) -> list[tuple[Path, str]]:
    """What the loop function's asset holds: the loop's code and this contract's ``agent.json``."""
    config = loop_config(contract, contracts, region=_region(scope))
    return code_layout(stage_config(contract, config), functions_dir)
