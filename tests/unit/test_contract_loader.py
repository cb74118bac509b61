from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from contracts import CONTRACTS_DIR, MODELS, CapabilityContract, ContractError, load_contract, load_contracts
from contracts.capability import FallbackCapability, LambdaRuntime, LlmRuntime, Rollout, SageMakerRuntime
from contracts.loader import CORE_DIR

pytestmark = pytest.mark.unit

REFERENCE_AGENTS = {
    "decision-recorder",
    "document-intake",
    "entity-tagger",
    "evidence-verifier",
    "fact-checker-llm",
    "failure-recorder",
    "risk-scorer",
    "summarizer",
    "summarizer-cpu",
}

GOOD = """\
name: fact-checker
version: 1.2.0
description: Checks claims.
capabilities: [fact-check]
io: {input: ClaimCheck, output: Verdict}
runtime:
  kind: lambda
  handler: functions.fact_checker.handler.lambda_handler
  approximate_handler: functions.fact_checker.handler.approximate_handler
  memory_mb: 512
permissions: ["read:kb"]
side_effects: read-only
slo: {p95_ms: 1500, availability: 99.9, error_budget_pct: 0.1}
fallback: [{capability: fact-check, max_version: "1.x"}, approximate, human]
telemetry: {metrics: [latency_ms], errors: [BadInput]}
"""


def write_contract(directory: Path, text: str, stem: str = "fact-checker") -> Path:
    path = directory / f"{stem}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def with_changes(**changes: object) -> str:
    document = yaml.safe_load(GOOD)
    for key, value in changes.items():
        if value is None:
            del document[key]
        else:
            document[key] = value
    return yaml.safe_dump(document, sort_keys=False)


def test_shipped_contracts_all_load() -> None:
    # WHEN the contracts that ship with the repo are loaded
    contracts = load_contracts()

    # THEN exactly the reference agents are there, in name order, each with resolvable models
    assert list(contracts) == sorted(REFERENCE_AGENTS)
    for name, contract in contracts.items():
        assert contract.name == name
        assert contract.input_model is MODELS[contract.io.input]
        assert contract.output_model is MODELS[contract.io.output]
        if isinstance(contract.runtime, SageMakerRuntime):
            assert (Path(__file__).parents[2] / "containers" / contract.runtime.container).is_dir()
        elif isinstance(contract.runtime, LlmRuntime):
            assert contract.runtime.prompt_text.strip()
        else:
            assert isinstance(contract.runtime, LambdaRuntime)
            assert contract.runtime.handler.endswith(".lambda_handler")


def test_the_summarizer_is_a_batched_endpoint_with_a_cpu_fallback() -> None:
    contracts = load_contracts(CONTRACTS_DIR)
    summarizer, cpu = contracts["summarizer"], contracts["summarizer-cpu"]
    assert isinstance(summarizer.runtime, SageMakerRuntime)
    assert summarizer.runtime.min_instances >= 1  # a warm floor
    assert summarizer.batching is not None
    assert summarizer.batching.max_wait_ms < summarizer.slo.p95_ms
    assert isinstance(cpu.runtime, LambdaRuntime)
    assert (cpu.capabilities, cpu.io, cpu.major) == (summarizer.capabilities, summarizer.io, summarizer.major)
    assert summarizer.fallback[0] == FallbackCapability(capability="summarization", max_version="1.x")


def test_shipped_contracts_match_their_design() -> None:
    contracts = load_contracts(CONTRACTS_DIR)

    verifier = contracts["evidence-verifier"]
    assert verifier.capabilities == ["fact-check", "confidence-scoring"]
    assert isinstance(verifier.runtime, LambdaRuntime)
    assert (verifier.runtime.memory_mb, verifier.runtime.reserved_concurrency, verifier.runtime.bursty) == (
        512,
        20,
        True,
    )
    assert verifier.fallback == ["approximate", "human"]
    assert contracts["decision-recorder"].permissions == ["write:executions", "publish:events", "write:idempotency"]
    assert contracts["entity-tagger"].io.input == "DecisionRecordedDetail"
    assert {contract.side_effects for contract in contracts.values()} == {"read-only", "idempotent-write"}


def test_good_contract_loads_with_defaults_and_derived_values(tmp_path: Path) -> None:
    # GIVEN a valid contract that leaves the timeout to its SLO
    path = write_contract(tmp_path, GOOD)

    # WHEN it is loaded
    contract = load_contract(path)

    # THEN defaults are filled in and derived values follow the SLO
    assert isinstance(contract, CapabilityContract)
    assert contract.major == 1
    assert contract.batching is None
    assert isinstance(contract.runtime, LambdaRuntime)
    assert contract.runtime.reserved_concurrency is None
    assert contract.runtime.effective_timeout_s(contract.slo) == 5  # ceil(3 * 1.5 s)
    assert contract.fallback == [FallbackCapability(capability="fact-check", max_version="1.x"), "approximate", "human"]


def test_rollout_defaults_to_the_planes_canary_and_takes_a_declared_policy(tmp_path: Path) -> None:
    # GIVEN a contract that states no rollout policy, and one that asks for linear steps
    default = load_contract(write_contract(tmp_path, GOOD))
    linear = with_changes(rollout={"strategy": "linear", "percent": 25, "interval_minutes": 3})
    declared = load_contract(write_contract(tmp_path, linear))

    # THEN the first rolls out as the plane's canary (10 %, the rest after 5 minutes), the second as declared
    assert default.rollout is None
    assert default.effective_rollout == Rollout(strategy="canary", percent=10, interval_minutes=5)
    assert declared.effective_rollout == Rollout(strategy="linear", percent=25, interval_minutes=3)


def test_timeout_defaults_to_at_least_three_seconds(tmp_path: Path) -> None:
    fast = with_changes(slo={"p95_ms": 100, "availability": 99.9, "error_budget_pct": 0.1})

    contract = load_contract(write_contract(tmp_path, fast))

    assert isinstance(contract.runtime, LambdaRuntime)
    assert contract.runtime.effective_timeout_s(contract.slo) == 3


def test_sagemaker_runtime_with_batching_loads(tmp_path: Path) -> None:
    # GIVEN a GPU-backed agent that batches
    text = with_changes(
        runtime={"kind": "sagemaker", "instance_type": "ml.g5.xlarge", "max_instances": 4, "container": "summarizer"},
        batching={"max_batch": 16, "max_wait_ms": 10},
    )

    # WHEN it is loaded
    contract = load_contract(write_contract(tmp_path, text))

    # THEN the runtime is the SageMaker one with a warm minimum of one
    assert contract.runtime.kind == "sagemaker"
    assert contract.batching is not None
    assert contract.batching.max_batch == 16


BAD_CONTRACTS = [
    pytest.param(
        "name: fact-checker\nslo: {p95_ms: 1500\ntelemetry: {}\n",
        "<document>",
        "line 3",
        id="yaml-syntax",
    ),
    pytest.param("- just\n- a list\n", "<document>", "expected a mapping", id="not-a-mapping"),
    pytest.param("# only a comment\n", "<document>", "empty document", id="empty"),
    pytest.param(
        with_changes(slo={"p95_ms": "fast", "availability": 99.9, "error_budget_pct": 0.1}),
        "slo.p95_ms",
        "valid integer",
        id="wrong-type",
    ),
    pytest.param(
        with_changes(slo={"p95_ms": 0, "availability": 99.9, "error_budget_pct": 0.1}),
        "slo.p95_ms",
        "greater than 0",
        id="non-positive-p95",
    ),
    pytest.param(with_changes(io={"input": "ClaimChek", "output": "Verdict"}), "io.input", "ClaimChek", id="io"),
    pytest.param(
        with_changes(batching={"max_batch": 8, "max_wait_ms": 5}),
        "batching",
        "only allowed with a sagemaker runtime",
        id="batching-on-lambda",
    ),
    pytest.param(with_changes(permissions=["kb:read"]), "permissions[0]", "pattern", id="bad-permission"),
    pytest.param(with_changes(permissions=["read:kb", "read:kb"]), "permissions", "duplicate", id="dup-permission"),
    pytest.param(with_changes(fallback=["human", "approximate"]), "fallback", "last", id="human-not-last"),
    pytest.param(with_changes(fallback=["humann"]), "fallback[0]", "'human'", id="unknown-fallback"),
    pytest.param(
        with_changes(runtime={"kind": "lambda", "handler": "functions.fact_checker.handler.lambda_handler"}),
        "fallback",
        "approximate_handler",
        id="approximate-without-handler",
    ),
    pytest.param(
        with_changes(fallback=[{"capability": "fact-check", "max_version": "one"}]),
        "fallback[0].max_version",
        "pattern",
        id="bad-fallback-version",
    ),
    pytest.param(GOOD + "colour: blue\n", "colour", "Extra inputs", id="unknown-top-level-field"),
    pytest.param(with_changes(slo=None), "slo", "Field required", id="missing-field"),
    pytest.param(
        with_changes(runtime={"kind": "lambda", "handler": "handler.main"}),
        "runtime.handler",
        "pattern",
        id="bad-handler",
    ),
    pytest.param(with_changes(runtime={"kind": "ecs"}), "runtime", "'ecs'", id="unknown-runtime"),
    pytest.param(
        with_changes(
            runtime={"kind": "lambda", "handler": "functions.f.handler.lambda_handler", "timeout_s": 1},
        ),
        "slo",
        "timeout_s",
        id="p95-over-timeout",
    ),
    pytest.param(
        with_changes(
            runtime={
                "kind": "sagemaker",
                "instance_type": "ml.g5.xlarge",
                "min_instances": 3,
                "max_instances": 2,
                "container": "s",
            },
        ),
        "runtime.max_instances",
        "min_instances",
        id="max-below-min",
    ),
    pytest.param(
        with_changes(
            runtime={
                "kind": "lambda",
                "handler": "functions.f.handler.lambda_handler",
                "approximate_handler": "functions.f.handler.approximate_handler",
                "snapstart": True,
                "provisioned_concurrency": 2,
            },
        ),
        "runtime",
        "snapstart and provisioned_concurrency cannot both be set",
        id="snapstart-with-provisioned-concurrency",
    ),
    pytest.param(with_changes(version="1.2"), "version", "pattern", id="bad-version"),
    pytest.param(
        with_changes(rollout={"strategy": "blue-green"}), "rollout.strategy", "'canary'", id="unknown-rollout"
    ),
    pytest.param(
        with_changes(rollout={"strategy": "canary", "percent": 100, "interval_minutes": 5}),
        "rollout.percent",
        "less than or equal to 99",
        id="rollout-percent-all",
    ),
    pytest.param(
        with_changes(rollout={"strategy": "linear", "percent": 10, "interval_minutes": 61}),
        "rollout.interval_minutes",
        "less than or equal to 60",
        id="rollout-interval-too-long",
    ),
    pytest.param(
        with_changes(rollout={"strategy": "linear", "percent": 10}),
        "rollout",
        "linear needs percent (1..99) and interval_minutes (1..60)",
        id="rollout-linear-without-interval",
    ),
    pytest.param(
        with_changes(rollout={"strategy": "all-at-once", "percent": 10}),
        "rollout",
        "leave out percent and interval_minutes",
        id="rollout-all-at-once-with-percent",
    ),
    pytest.param(with_changes(name="other-agent"), "name", "file name", id="stem-differs-from-name"),
]


@pytest.mark.parametrize(("text", "field", "reason"), BAD_CONTRACTS)
def test_bad_contract_is_rejected_naming_file_field_and_reason(
    tmp_path: Path, text: str, field: str, reason: str
) -> None:
    # GIVEN a contract file with one mistake
    path = write_contract(tmp_path, text)

    # WHEN it is loaded
    with pytest.raises(ContractError) as exc:
        load_contract(path)

    # THEN the one-line error names the file, the field and why
    error = exc.value
    assert (error.file, error.field) == (str(path), field)
    assert reason in error.reason
    assert str(error) == f"{path}: {field}: {error.reason}"
    assert "\n" not in str(error)


def test_unknown_model_error_lists_the_known_ones(tmp_path: Path) -> None:
    path = write_contract(tmp_path, with_changes(io={"input": "Nope", "output": "Verdict"}))

    with pytest.raises(ContractError) as exc:
        load_contract(path)

    assert "'Nope'" in exc.value.reason
    assert all(name in exc.value.reason for name in MODELS)


def test_further_errors_are_counted(tmp_path: Path) -> None:
    # GIVEN a contract with three mistakes
    path = write_contract(tmp_path, with_changes(version="x", description="", side_effects="maybe"))

    # WHEN it is loaded
    with pytest.raises(ContractError) as exc:
        load_contract(path)

    # THEN the first is reported and the rest counted
    assert exc.value.field == "version"
    assert exc.value.reason.endswith("(+2 more)")


def test_missing_file_is_a_contract_error(tmp_path: Path) -> None:
    path = tmp_path / "ghost.yaml"

    with pytest.raises(ContractError) as exc:
        load_contract(path)

    assert (exc.value.file, exc.value.field) == (str(path), "<document>")
    assert "cannot read" in exc.value.reason


def test_directory_with_a_bad_contract_fails_on_that_file(tmp_path: Path) -> None:
    # GIVEN a directory with one good and one bad contract, and a file that is not a contract
    write_contract(tmp_path, GOOD)
    bad = write_contract(tmp_path, with_changes(name="broken", version="v1"), stem="broken")
    (tmp_path / "README.md").write_text("not a contract")

    # WHEN the directory is loaded
    with pytest.raises(ContractError) as exc:
        load_contracts(tmp_path)

    # THEN the error names the bad file
    assert exc.value.file == str(bad)


def test_duplicate_names_across_extensions_are_rejected(tmp_path: Path) -> None:
    # GIVEN the same contract as .yaml and .yml
    write_contract(tmp_path, GOOD)
    (tmp_path / "fact-checker.yml").write_text(GOOD)

    # WHEN the directory is loaded
    with pytest.raises(ContractError, match="duplicate contract name 'fact-checker'"):
        load_contracts(tmp_path)


def test_side_effects_need_the_idempotency_permission(tmp_path: Path) -> None:
    # GIVEN a contract that writes but holds no idempotency records
    document = yaml.safe_load((CORE_DIR / "decision-recorder.yaml").read_text())
    document["permissions"] = ["write:executions", "publish:events"]
    path = tmp_path / "decision-recorder.yaml"
    path.write_text(yaml.safe_dump(document))

    # WHEN it is loaded THEN it is refused, naming the field and what it needs
    with pytest.raises(ContractError, match=r"side_effects: idempotent-write needs the 'write:idempotency' permission"):
        load_contract(path)


@pytest.mark.parametrize("detail_type", ["Decision.Recorded", "recorded", "decision..recorded"])
def test_subscriptions_name_bus_event_types(tmp_path: Path, detail_type: str) -> None:
    document = yaml.safe_load((CONTRACTS_DIR / "entity-tagger.yaml").read_text())
    document["subscribes"] = [detail_type]
    path = tmp_path / "entity-tagger.yaml"
    path.write_text(yaml.safe_dump(document))

    with pytest.raises(ContractError, match=r"subscribes\[0\]: String should match pattern"):
        load_contract(path)
