"""Standard LLM serving images: the contract's ``runtime.serving``, the image lock the SageMaker SDK resolves, the
container settings each image reads, and what a ``provider: sagemaker`` loop is configured with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from contracts.capability import CapabilityContract, LlmServing
from contracts.compat import Bump, diff, snapshot
from infra.components.llm_agent import LlmConfigError, loop_config
from infra.components.sagemaker_endpoint import serving_environment
from infra.llm_images import ImageLockError, load, refresh, regions, repository_arn, uri_for

pytestmark = pytest.mark.unit

SERVING = {
    "image": "vllm",
    "version": "0.30.0",
    "model_data": "s3://team-models/qwen2.5-7b/",
    "model_name": "Qwen/Qwen2.5-7B-Instruct",
}


def host(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "name": "llm-host",
        "version": "1.0.0",
        "description": "Serves the team's model.",
        "capabilities": ["chat"],
        "io": {"input": "ChatRequest", "output": "ChatCompletion"},
        "runtime": {"kind": "sagemaker", "instance_type": "ml.g6.2xlarge", "max_instances": 2, "serving": SERVING},
        "side_effects": "read-only",
        "slo": {"p95_ms": 4000, "availability": 99.5, "error_budget_pct": 0.5},
        "fallback": ["human"],
        "telemetry": {"metrics": ["latency_ms"], "errors": ["ModelError"]},
    }
    return {**document, **changes}


def drafter(model: dict[str, Any], **runtime: Any) -> CapabilityContract:
    contract = CapabilityContract.model_validate(
        {
            "name": "drafter",
            "version": "1.0.0",
            "description": "Drafts.",
            "capabilities": ["draft"],
            "io": {"input": "ClaimCheck", "output": "Verdict"},
            "runtime": {
                "kind": "llm",
                "model": model,
                "prompt": "prompts/drafter.md",
                "limits": {"max_turns": 3, "max_input_tokens": 1000, "max_output_tokens": 100, "max_cost_usd": 0.01},
                **runtime,
            },
            "side_effects": "read-only",
            "slo": {"p95_ms": 4000, "availability": 99.5, "error_budget_pct": 0.5},
            "fallback": ["human"],
            "telemetry": {"metrics": ["latency_ms"], "errors": ["ModelError"]},
        }
    )
    assert contract.runtime.kind == "llm"
    return contract.model_copy(update={"runtime": contract.runtime.with_prompt("Draft.", "0" * 64)})  # type: ignore[union-attr]


def test_a_serving_contract_validates() -> None:
    contract = CapabilityContract.model_validate(host())
    assert contract.runtime.kind == "sagemaker"
    assert contract.runtime.serving == LlmServing.model_validate(SERVING)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"runtime": {**host()["runtime"], "container": "summarizer"}}, "exactly one of container"),
        ({"runtime": {k: v for k, v in host()["runtime"].items() if k != "serving"}}, "exactly one of container"),
        ({"io": {"input": "SummarizeRequest", "output": "Summary"}}, "io must be {input: ChatRequest"),
        ({"batching": {"max_batch": 8, "max_wait_ms": 5}}, "batches on its own"),
        (
            {"runtime": {**host()["runtime"], "serving": {**SERVING, "model_data": "s3://team-models/w.tar.gz"}}},
            "pattern",
        ),
        ({"runtime": {**host()["runtime"], "serving": {**SERVING, "image": "triton"}}}, "djl-lmi"),
    ],
)
def test_a_serving_contract_that_cannot_work_is_refused(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        CapabilityContract.model_validate(host(**changes))


def test_a_guardrail_needs_bedrock() -> None:
    with pytest.raises(ValidationError, match="provider bedrock only"):
        drafter({"provider": "sagemaker", "endpoint": "llm-host"}, guardrail={"id": "abc", "version": "1"})


def test_another_image_or_weights_may_answer_differently() -> None:
    old = CapabilityContract.model_validate(host())
    runtime = {**host()["runtime"], "serving": {**SERVING, "version": "0.29.0"}}
    new = CapabilityContract.model_validate(host(version="1.1.0", runtime=runtime))
    changes = diff(snapshot(old), snapshot(new)).changes
    assert [(c.path, c.kind, c.bump) for c in changes] == [("runtime.serving", "model-changed", Bump.MINOR)]


def test_each_image_serves_the_mounted_weights_under_the_model_name_with_tool_calls_parsed() -> None:
    vllm = serving_environment(LlmServing.model_validate({**SERVING, "max_model_len": 8192}))
    assert vllm == {
        "SM_VLLM_MODEL": "/opt/ml/model",
        "SM_VLLM_SERVED_MODEL_NAME": "Qwen/Qwen2.5-7B-Instruct",
        "SM_VLLM_ENABLE_AUTO_TOOL_CHOICE": "true",
        "SM_VLLM_TOOL_CALL_PARSER": "hermes",
        "SM_VLLM_MAX_MODEL_LEN": "8192",
    }
    lmi = serving_environment(LlmServing.model_validate({**SERVING, "image": "djl-lmi", "tool_parser": "llama3_json"}))
    assert (lmi["HF_MODEL_ID"], lmi["OPTION_TOOL_CALL_PARSER"]) == ("/opt/ml/model", "llama3_json")
    tgi = serving_environment(LlmServing.model_validate({**SERVING, "image": "tgi", "environment": {"NUM_SHARD": "2"}}))
    assert tgi == {"HF_MODEL_ID": "/opt/ml/model", "NUM_SHARD": "2"}
    own = serving_environment(LlmServing.model_validate({**SERVING, "environment": {"SM_VLLM_TOOL_CALL_PARSER": "x"}}))
    assert own["SM_VLLM_TOOL_CALL_PARSER"] == "x"  # the contract's settings win


def test_the_shipped_lock_holds_each_image_for_every_region_the_sdk_knows() -> None:
    lock = load()
    repositories = {"djl-lmi": "djl-inference", "vllm": "vllm", "tgi": "huggingface-pytorch-tgi-inference"}
    assert {key.split(":")[0] for key in lock} == set(repositories)
    for key, found in lock.items():
        image, version = key.split(":")
        assert len(found) > 20, key
        for region, uri in found.items():
            registry, path = uri.split("/", 1)
            assert f".dkr.ecr.{region}." in registry, uri
            repository, tag = path.split(":", 1)
            assert repository == repositories[image], uri
            assert version in tag, uri


def test_an_image_the_lock_lacks_names_the_command_that_resolves_it(tmp_path: Path) -> None:
    serving = LlmServing.model_validate({**SERVING, "version": "0.23.0"})
    with pytest.raises(ImageLockError, match=r"run `python -m infra.llm_images vllm:0.23.0`"):
        regions(serving, load(tmp_path / "none.json"))
    lock = {"vllm:0.23.0": {"us-east-1": "763104351884.dkr.ecr.us-east-1.amazonaws.com/vllm:0.23.0-gpu"}}
    assert uri_for(serving, "us-east-1", lock).endswith("/vllm:0.23.0-gpu")
    with pytest.raises(ImageLockError, match="no image in eu-west-1"):
        uri_for(serving, "eu-west-1", lock)


def test_refresh_keeps_what_is_locked_and_writes_what_the_sdk_resolved(tmp_path: Path) -> None:
    path = tmp_path / "llm-images.json"
    path.write_text(json.dumps({"images": {"tgi:3.3.6": {"us-east-1": "old"}}}))
    asked: list[list[tuple[str, str, str]]] = []

    def resolve(requests: list[tuple[str, str, str]]) -> dict[str, dict[str, str]]:
        asked.append(requests)
        return {
            key: {"us-west-2": f"{framework}:{version}@w2", "us-east-1": f"{framework}:{version}@e1"}
            for framework, version, key in requests
        }

    images = refresh(["vllm:0.30.0"], path=path, resolve=resolve)

    # the SDK's own framework names; every key resolved again, in order
    assert asked == [[("huggingface-llm", "3.3.6", "tgi:3.3.6"), ("vllm", "0.30.0", "vllm:0.30.0")]]
    assert list(images["vllm:0.30.0"]) == ["us-east-1", "us-west-2"]
    written = json.loads(path.read_text())
    assert written["resolved_by"].startswith("sagemaker-core==")
    assert written["images"]["tgi:3.3.6"]["us-east-1"] == "huggingface-llm:3.3.6@e1"


def test_refresh_refuses_an_unknown_image(tmp_path: Path) -> None:
    with pytest.raises(ImageLockError, match="IMAGE:VERSION with IMAGE one of djl-lmi, vllm, tgi"):
        refresh(["triton:24.01"], path=tmp_path / "lock.json", resolve=lambda requests: {})
    assert not (tmp_path / "lock.json").exists()


@pytest.mark.parametrize(
    ("uri", "arn"),
    [
        (
            "763104351884.dkr.ecr.us-east-1.amazonaws.com/vllm:0.30.0-gpu-py312",
            "arn:aws:ecr:us-east-1:763104351884:repository/vllm",
        ),
        (
            "727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/djl-inference:0.33.0-lmi15.0.0-cu128",
            "arn:aws-cn:ecr:cn-north-1:727897471807:repository/djl-inference",
        ),
        (
            "446045086412.dkr.ecr.us-gov-west-1.amazonaws.com/huggingface-pytorch-tgi-inference:2.7.0-tgi3.3.6",
            "arn:aws-us-gov:ecr:us-gov-west-1:446045086412:repository/huggingface-pytorch-tgi-inference",
        ),
    ],
)
def test_the_repository_an_image_is_pulled_from(uri: str, arn: str) -> None:
    assert repository_arn(uri) == arn


def test_a_self_hosted_loop_names_the_served_model_and_prices_no_tokens() -> None:
    loop = drafter({"provider": "sagemaker", "endpoint": "llm-host"})
    contracts = {"drafter": loop, "llm-host": CapabilityContract.model_validate(host())}

    config = loop_config(loop, contracts, region="us-east-1")

    assert (config["provider"], config["model_id"]) == ("sagemaker", "Qwen/Qwen2.5-7B-Instruct")
    assert config["price"] == {"input_per_1k_tokens": 0.0, "output_per_1k_tokens": 0.0}


def test_a_self_hosted_loop_must_name_a_serving_contract() -> None:
    loop = drafter({"provider": "sagemaker", "endpoint": "summarizer"})
    summarizer = host(name="summarizer", io={"input": "SummarizeRequest", "output": "Summary"})
    summarizer["runtime"] = {
        "kind": "sagemaker",
        "instance_type": "ml.g5.xlarge",
        "max_instances": 1,
        "container": "summarizer",
    }
    contracts = {"drafter": loop, "summarizer": CapabilityContract.model_validate(summarizer)}
    with pytest.raises(LlmConfigError, match=r"'summarizer' names a sagemaker contract without runtime\.serving"):
        loop_config(loop, contracts, region="us-east-1")
    with pytest.raises(LlmConfigError, match="'summarizer' names no contract"):
        loop_config(loop, {"drafter": loop}, region="us-east-1")
