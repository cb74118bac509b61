"""`agentplane cost`: the arithmetic against a case computed by hand, the price lists, the CLI's answers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra import cli
from infra.cost import CostError, Profile, estimate, load_pricing, parse_rate, render
from infra.cost.model import Pricing, express_gb_s, regions

pytestmark = pytest.mark.unit

PRICES: dict[str, Any] = {
    "region": "test-region-1",
    "currency": "USD",
    "source": "hand-made for this test",
    "as_of": "2026-11-24",
    "step_functions": {
        "standard_per_1k_transitions": 0.025,
        "express_per_million_requests": 1.00,
        "express_per_gb_second": 0.00001667,
    },
    "lambda": {"per_million_requests": 0.20, "per_gb_second": {"arm64": 0.0000133334, "x86_64": 0.0000166667}},
    "api_gateway": {"rest_per_million_requests": 3.50},
    "eventbridge": {"custom_events_per_million": 1.00},
    "dynamodb": {"on_demand_per_million_write_units": 0.625, "on_demand_per_million_read_units": 0.125},
    "s3": {"put_per_1k_requests": 0.005, "get_per_1k_requests": 0.0004},
    "sagemaker": {"instance_per_hour": {"ml.g5.xlarge": 1.408}},
}
PROFILE: dict[str, Any] = {
    "workflow": "doc-review",
    "state_machine_type": "STANDARD",
    "request": "doc-review-low-risk.json",
    "runs_measured": 2,
    "per_run": {
        "state_transitions": 10,
        "duration_ms": 250,
        "api_requests": 1,
        "events_published": 1,
        "dynamodb_write_units": 20,
        "dynamodb_read_units": 4,
        "s3_put_requests": 1,
        "s3_get_requests": 2,
        "functions": [
            {"function": "A", "memory_mb": 512, "architecture": "arm64", "invocations": 2, "duration_ms": 100},
            {"function": "B", "memory_mb": 1024, "architecture": "x86_64", "invocations": 1, "duration_ms": 50},
        ],
    },
    "endpoints": [{"name": "Summarizer/AllTraffic", "instance_type": "ml.g5.xlarge", "instances": 1}],
    "schedules": [
        {
            "rule": "Digest",
            "per_month": 2920,
            "functions": [
                {"function": "D", "memory_mb": 512, "architecture": "arm64", "invocations": 1, "duration_ms": 200}
            ],
        }
    ],
}

# By hand, at 50 runs/s: 50 x 730 h x 3600 s = 131,400,000 runs a month.
#   per run: transitions 10 x 0.025/1k = 2.5e-4; Lambda requests 3 x 0.2/M = 6e-7;
#   arm64 0.1 s x 0.5 GB = 0.05 GB-s x 1.33334e-5 = 6.6667e-7; x86_64 0.05 s x 1 GB = 0.05 GB-s x 1.66667e-5
#   = 8.33335e-7; API 3.5e-6; EventBridge 1e-6; writes 20 x 0.625/M = 1.25e-5; reads 4 x 0.125/M = 5e-7;
#   S3 PUT 5e-6; S3 GET 2 x 4e-7 = 8e-7.  Sum 2.75400005e-4 -> $0.275400005 per 1k runs.
#   fixed a month: endpoint 730 h x 1.408 = 1027.84; digest 2920 x 0.2/M = 0.000584 and
#   2920 x 0.2 s x 0.5 GB = 292 GB-s x 1.33334e-5 = 0.00389335 -> 1027.84447735.
#   monthly: 2.75400005e-4 x 131.4e6 = 36187.560657, + fixed = 37215.405134; per 1k runs 37215.405134 / 131400.
#   Express: 1 request 1e-6 + ceil(250 ms to 100 ms) 0.3 s x 64 MB 0.0625 GB = 0.01875 GB-s x 1.667e-5
#   = 3.125625e-7 -> orchestration $0.0013125625 per 1k; total per 1k 0.275400005 - 0.25 + 0.0013125625
#   = 0.0267125675 variable -> 3510.03137 + 1027.84447735 = 4537.87585 a month.
RUNS_PER_MONTH = 131_400_000
HAIKU = {"input_per_1k_tokens": 0.001, "output_per_1k_tokens": 0.005}
MONTHLY = 37215.405134
STANDARD_PER_1K = 0.275400005
EXPRESS_MONTHLY = 4537.875847


def test_the_estimate_matches_the_hand_computed_case() -> None:
    result = estimate(Profile.model_validate(PROFILE), Pricing.model_validate(PRICES), 50.0)

    assert result.runs_per_month == RUNS_PER_MONTH
    assert result.monthly == pytest.approx(MONTHLY, rel=1e-9)
    assert result.per_1k_runs == pytest.approx(MONTHLY / 131_400, rel=1e-9)
    lines = {line.item: line for line in result.lines}
    assert lines["Step Functions Standard transitions"].per_1k_runs == pytest.approx(0.25)
    assert lines["DynamoDB writes"].monthly == pytest.approx(1642.5)  # 1.25e-5 x 131.4e6
    assert lines["Lambda duration (x86_64)"].quantity_per_run == pytest.approx(0.05)
    assert lines["SageMaker endpoint Summarizer/AllTraffic (ml.g5.xlarge)"].monthly == pytest.approx(1027.84)
    assert lines["SageMaker endpoint Summarizer/AllTraffic (ml.g5.xlarge)"].fixed
    assert sum(line.per_1k_runs for line in result.lines) == pytest.approx(STANDARD_PER_1K)
    variants = {v.name: v for v in result.variants}
    assert variants["STANDARD"].monthly == pytest.approx(MONTHLY, rel=1e-9)
    assert variants["EXPRESS"].orchestration_per_1k_runs == pytest.approx(0.0013125625)
    assert variants["EXPRESS"].monthly == pytest.approx(EXPRESS_MONTHLY, rel=1e-9)


def test_express_duration_is_billed_in_100_ms_steps_of_64_mb() -> None:
    assert express_gb_s(1) == pytest.approx(0.1 * 0.0625)
    assert express_gb_s(100) == pytest.approx(0.1 * 0.0625)
    assert express_gb_s(101) == pytest.approx(0.2 * 0.0625)


@pytest.mark.parametrize(
    ("text", "per_s"),
    [("50/s", 50.0), ("3000/min", 50.0), ("180000/h", 50.0), ("2.5 / s", 2.5), ("2.628e6/month", 1.0)],
)
def test_rates_are_read_in_any_unit(text: str, per_s: float) -> None:
    assert parse_rate(text) == pytest.approx(per_s)


@pytest.mark.parametrize("text", ["fifty", "50", "50/week", "0/s", "-1/s"])
def test_a_bad_rate_is_refused(text: str) -> None:
    with pytest.raises(CostError, match="rate"):
        parse_rate(text)


@pytest.mark.parametrize("region", regions())
def test_each_shipped_price_list_loads_with_its_source_and_date(region: str) -> None:
    prices = load_pricing(region)

    assert prices.region == region
    assert prices.source
    assert prices.as_of
    assert prices.lambda_.per_gb_second["arm64"] < prices.lambda_.per_gb_second["x86_64"]
    assert prices.sagemaker.instance_per_hour


def test_the_repo_keeps_prices_for_more_than_one_region() -> None:
    assert {"us-east-1", "eu-west-1"} <= set(regions())


def test_an_endpoint_instance_without_a_price_is_named() -> None:
    profile = Profile.model_validate(
        {**PROFILE, "endpoints": [{"name": "Big/AllTraffic", "instance_type": "ml.p5.48xlarge", "instances": 1}]}
    )
    with pytest.raises(CostError, match=r"Big/AllTraffic: no test-region-1 price for ml\.p5\.48xlarge"):
        estimate(profile, Pricing.model_validate(PRICES), 1.0)


def test_a_models_tokens_are_priced_per_run_through_its_inference_profile() -> None:
    # GIVEN a run whose LLM agent took 2 turns on Haiku through the us profile: 3,000 tokens in, 400 out
    model = {
        "model_id": "us.anthropic.claude-haiku-4-5-20251001-v1:0",
        "turns": 2,
        "input_tokens": 3000,
        "output_tokens": 400,
        "served_by": ["scripted stand-in"],
    }
    profile = Profile.model_validate({**PROFILE, "per_run": {**PROFILE["per_run"], "models": [model]}})
    prices = {**PRICES, "bedrock": {"models": {"anthropic.claude-haiku-4-5-20251001-v1:0": HAIKU}}}

    # WHEN it is priced
    result = estimate(profile, Pricing.model_validate(prices), 50.0)

    # THEN each direction is a line at the model's price: 3 x $0.001 + 0.4 x $0.005 = $0.005 per run
    lines = {line.item: line for line in result.lines}
    inputs = lines["Bedrock us.anthropic.claude-haiku-4-5-20251001-v1:0 input tokens"]
    outputs = lines["Bedrock us.anthropic.claude-haiku-4-5-20251001-v1:0 output tokens"]
    assert inputs.per_1k_runs == pytest.approx(3.0)
    assert outputs.per_1k_runs == pytest.approx(2.0)
    assert result.per_1k_runs == pytest.approx((MONTHLY + 0.005 * RUNS_PER_MONTH) / 131_400, rel=1e-9)
    # and what counted the tokens is said with the breakdown
    assert "as scripted stand-in counted them" in render(result, profile)


def test_a_self_hosted_models_tokens_are_not_priced_its_endpoint_is() -> None:
    model = {"model_id": "Qwen/Qwen2.5-7B-Instruct", "turns": 2, "input_tokens": 3000, "output_tokens": 400}
    per_run = {**PROFILE["per_run"], "models": [{**model, "provider": "sagemaker"}]}
    profile = Profile.model_validate({**PROFILE, "per_run": per_run})

    result = estimate(profile, Pricing.model_validate(PRICES), 50.0)  # no Bedrock price for it: none asked

    assert not [line for line in result.lines if "Qwen" in line.item]
    assert "self-hosted: no token price" in render(result, profile)
    bedrock = Profile.model_validate({**PROFILE, "per_run": {**PROFILE["per_run"], "models": [model]}})
    with pytest.raises(CostError, match="no test-region-1 token price"):
        estimate(bedrock, Pricing.model_validate(PRICES), 50.0)


def test_prompt_cache_reads_and_writes_are_priced_apart_and_as_input_when_the_table_has_no_price() -> None:
    model = {
        "model_id": "anthropic.claude-haiku-4-5-20251001-v1:0",
        "turns": 2,
        "input_tokens": 1000,
        "output_tokens": 100,
        "cache_write_tokens": 2000,
        "cache_read_tokens": 10_000,
    }
    profile = Profile.model_validate({**PROFILE, "per_run": {**PROFILE["per_run"], "models": [model]}})
    cached = {**HAIKU, "cache_write_per_1k_tokens": 0.00125, "cache_read_per_1k_tokens": 0.0001}

    def priced(price: dict[str, float], what: str) -> float:
        prices = {**PRICES, "bedrock": {"models": {"anthropic.claude-haiku-4-5-20251001-v1:0": price}}}
        lines = {line.item: line for line in estimate(profile, Pricing.model_validate(prices), 50.0).lines}
        return lines[f"Bedrock anthropic.claude-haiku-4-5-20251001-v1:0 {what} tokens"].per_1k_runs

    # per run: 2 x $0.00125 written, 10 x $0.0001 read
    assert priced(cached, "cache write") == pytest.approx(2.5)
    assert priced(cached, "cache read") == pytest.approx(1.0)
    # a table without cache prices prices them as input (errs high, never low)
    assert priced(HAIKU, "cache read") == pytest.approx(10.0)


@pytest.mark.parametrize("model_id", ["anthropic.unpriced-v1:0", "xx.anthropic.claude-haiku-4-5-20251001-v1:0"])
def test_a_model_without_a_price_is_named(model_id: str) -> None:
    model = {"model_id": model_id, "turns": 1, "input_tokens": 10, "output_tokens": 1}
    profile = Profile.model_validate({**PROFILE, "per_run": {**PROFILE["per_run"], "models": [model]}})
    prices = {**PRICES, "bedrock": {"models": {"anthropic.claude-haiku-4-5-20251001-v1:0": HAIKU}}}

    with pytest.raises(CostError, match=rf"model {re.escape(model_id)}: no test-region-1 token price"):
        estimate(profile, Pricing.model_validate(prices), 1.0)


# --- the CLI ------------------------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps(PROFILE))
    pricing = tmp_path / "prices.yaml"
    pricing.write_text(yaml.safe_dump(PRICES))
    return profile, pricing


def test_cost_prints_the_breakdown_and_totals(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    profile, pricing = files

    code = cli.main(
        ["cost", "--workflow", "doc-review", "--rate", "50/s", "--profile", str(profile), "--pricing", str(pricing)]
    )

    assert code == 0
    out = capsys.readouterr().out
    assert "131,400,000 runs/month" in out
    total = next(line for line in out.splitlines() if line.strip().startswith("total"))
    assert total.split()[-2:] == [f"{MONTHLY / 131_400:.4f}", f"{MONTHLY:,.2f}"]
    assert "EXPRESS" in out
    assert f"${EXPRESS_MONTHLY:,.2f} per month" in out


def test_cost_as_json_carries_every_line(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    profile, pricing = files

    assert (
        cli.main(
            [
                "cost",
                "--workflow",
                "doc-review",
                "--rate",
                "3000/min",
                "--profile",
                str(profile),
                "--pricing",
                str(pricing),
                "--json",
            ]
        )
        == 0
    )

    body = json.loads(capsys.readouterr().out)
    assert body["monthly"] == pytest.approx(MONTHLY, rel=1e-9)
    assert len(body["lines"]) == 13  # 10 per-run items (Lambda duration per architecture), endpoint, 2 for the schedule


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        pytest.param(["--rate", "lots"], "rate 'lots': expected N/s", id="bad rate"),
        pytest.param(["--region", "mars-1"], "no price list for region 'mars-1'", id="unknown region"),
        pytest.param(["--workflow", "quick-check"], "the profile measured 'doc-review', not 'quick-check'", id="other"),
        pytest.param(["--profile", "/nonexistent/p.json"], "cannot read profile /nonexistent/p.json", id="no profile"),
    ],
)
def test_cost_refuses_bad_input_in_one_line(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    profile, _ = files
    defaults = {"--workflow": "doc-review", "--rate": "50/s", "--profile": str(profile)}
    given = dict(zip(argv[::2], argv[1::2], strict=True))
    args = [item for key, value in {**defaults, **given}.items() for item in (key, value)]

    code = cli.main(["cost", *args])

    assert code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("agentplane: ")
    assert says in err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        pytest.param(["--runs", "0"], "--runs 0: measure at least one run", id="no runs"),
        pytest.param(["--assembly", "/nonexistent/cdk.out"], "--assembly /nonexistent/cdk.out: no such", id="assembly"),
        pytest.param(["--request", "/nonexistent/body.json"], "--request /nonexistent/body.json: no such", id="body"),
        pytest.param(["--workflow", "nightly-batch"], "no sample request for 'nightly-batch'", id="no sample"),
    ],
)
def test_a_measurement_that_cannot_start_says_why_before_starting_a_plane(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str], says: str
) -> None:
    def no_plane(*_: Any, **__: Any) -> None:
        raise AssertionError("a local plane was started for a measurement that cannot run")

    monkeypatch.setattr("infra.cost.measure.LocalPlane", no_plane)
    given = {"--workflow": "doc-review", "--rate": "50/s", **dict(zip(argv[::2], argv[1::2], strict=True))}

    code = cli.main(["cost", *[item for pair in given.items() for item in pair]])

    assert code == 1
    assert says in capsys.readouterr().err
