"""A kind: llm contract in the template: its loop function, exactly its model's ARNs, its tools' dispatcher."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from contracts.loader import CONTRACTS_DIR, load_contracts
from functions.llm_agent.loop import AgentConfig
from tests.generated_contracts import contracts_dir
from tests.infra.assembly import Synthesized, synthesize

pytestmark = pytest.mark.infra

AGENT = "fact-checker-llm"
MODEL = "anthropic.claude-haiku-4-5-20251001-v1:0"
US_REGIONS = ("us-east-1", "us-east-2", "us-west-2")
CONTRACTS = load_contracts(CONTRACTS_DIR)  # the shipped set, which holds the llm agent these tests are about


@pytest.fixture(scope="module")
def shipped(synthesized: Synthesized, tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The plane from the shipped contracts: the session's assembly, unless the generated contract tests point
    that at another set (then one of its own)."""
    if contracts_dir() == CONTRACTS_DIR:
        return synthesized
    return synthesize(tmp_path_factory.mktemp("cdk-llm"))


def joined(value: Any) -> str:
    """An ``Fn::Join`` of strings and pseudo-parameter Refs, as text (``${AWS::Region}``)."""
    if isinstance(value, str):
        return value
    parts = value["Fn::Join"][1]
    return "".join(p if isinstance(p, str) else "${" + p["Ref"] + "}" for p in parts)


def loop_function(synthesized: Synthesized) -> dict[str, Any]:
    props: dict[str, Any] = synthesized.resources[synthesized.agent_functions()[AGENT]]["Properties"]
    return props


def staged_config(synthesized: Synthesized) -> AgentConfig:
    lid = synthesized.agent_functions()[AGENT]
    asset = synthesized.resources[lid]["Metadata"]["aws:asset:path"]
    return AgentConfig.model_validate_json(
        (synthesized.outdir / asset / "functions" / "llm_agent" / "agent.json").read_text()
    )


def test_the_loop_function_runs_the_contracts_loop(shipped: Synthesized) -> None:
    props = loop_function(shipped)
    assert props["Handler"] == "functions.llm_agent.handler.lambda_handler"
    assert props["Timeout"] == 30
    assert props["ReservedConcurrentExecutions"] == 20
    assert props["TracingConfig"] == {"Mode": "Active"}


def test_the_staged_config_is_the_contract_resolved(shipped: Synthesized) -> None:
    contract = CONTRACTS[AGENT]
    config = staged_config(shipped)
    prompt = (Path("contracts") / "prompts" / "fact-checker.md").read_text(encoding="utf-8")

    assert config.model_id == f"us.{MODEL}"
    assert config.prompt == prompt
    assert config.prompt_sha256 == contract.runtime.prompt_sha256  # type: ignore[union-attr]
    assert config.output_schema == contract.output_model.model_json_schema(mode="validation")
    (tool,) = config.tools
    assert (tool.name, tool.accept, tool.side_effects) == ("confidence-scoring", "1.x", "read-only")
    assert tool.input_schema == CONTRACTS["evidence-verifier"].input_model.model_json_schema(mode="validation")
    assert config.price.input_per_1k_tokens > 0
    assert config.price.output_per_1k_tokens > 0


def test_bedrock_is_granted_on_exactly_the_profile_and_its_models(shipped: Synthesized) -> None:
    role = shipped.role_of(shipped.agent_functions()[AGENT])
    statements = shipped.role_statements(role)
    bedrock = [s for s in statements if any(a.startswith("bedrock:") for a in _actions(s))]

    (statement,) = bedrock
    assert statement["Action"] == "bedrock:InvokeModel"
    assert sorted(joined(r) for r in statement["Resource"]) == sorted(
        [f"arn:${{AWS::Partition}}:bedrock:${{AWS::Region}}:${{AWS::AccountId}}:inference-profile/us.{MODEL}"]
        + [
            f"arn:${{AWS::Partition}}:bedrock:{r}::foundation-model/{MODEL}"
            for r in ("us-east-1", "us-east-2", "us-west-2")
        ]
    )
    assert not any("*" in joined(r) for r in statement["Resource"])
    # it keeps each turn's content by digest, and (its tools only read, it never pauses) never reads it back
    (s3,) = [s for s in statements if any(a.startswith("s3:") for a in _actions(s))]
    assert _actions(s3) == ["s3:PutObject"]
    assert str(s3["Resource"]).endswith("'/conversations/*']]}")


def test_tools_go_through_a_dispatcher_that_reaches_only_the_tools(shipped: Synthesized) -> None:
    stack = shipped.stack
    assert stack.registry.tool_dispatcher is not None
    tool_dispatcher = stack.resolve(stack.registry.tool_dispatcher.function_name)["Ref"]
    assert loop_function(shipped)["Environment"]["Variables"]["DISPATCHER_FUNCTION"] == {"Ref": tool_dispatcher}

    statements = shipped.role_statements(shipped.role_of(tool_dispatcher))
    (invoke,) = [s for s in statements if "lambda:InvokeFunction" in _actions(s)]
    invoked = {r["Ref"] for r in invoke["Resource"]}
    verifier = shipped.live_alias(shipped.agent_functions()["evidence-verifier"])
    loop_alias = shipped.live_alias(shipped.agent_functions()[AGENT])
    assert verifier in invoked
    assert loop_alias not in invoked


def test_the_registry_entry_carries_the_eval_quality(shipped: Synthesized) -> None:
    from tests.infra.test_registry_template import registered

    scores = json.loads(Path("events/evals/scores.json").read_text())["implementations"]
    calls = registered(shipped)
    for name in ("evidence-verifier", AGENT):
        values = calls[name]["parameters"]["ExpressionAttributeValues"]
        expected = f"{scores[name]['score']:.4f}" if name in scores else ""
        assert values[":quality"]["S"] == expected
        assert values[":runtime"]["S"] == ("llm" if name == AGENT else "lambda")


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)
