"""Cost of a workflow at a rate: a measured run profile times a region's price list, with its breakdown.

Pure arithmetic: the profile (what one run uses, and what the template keeps running) comes from
``infra.cost.measure``; the prices from ``infra/cost/pricing/<region>.yaml``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.validation import first_error

PRICING_DIR = Path(__file__).resolve().parent / "pricing"
HOURS_PER_MONTH = 730  # AWS's billing month
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
EXPRESS_MEMORY_CHUNK_GB = 64 / 1024  # Express duration is billed in 64 MB chunks, 100 ms increments
_RATE = re.compile(
    r"^\s*(?P<n>[0-9]+(\.[0-9]+)?([eE][0-9]+)?)\s*/\s*(?P<unit>s|sec|second|min|minute|h|hour|day|month)\s*$"
)
_PER_SECOND = {"s": 1, "sec": 1, "second": 1, "min": 60, "minute": 60, "h": 3600, "hour": 3600, "day": 86400}


class CostError(ValueError):
    """Bad input to the cost model: one line for the CLI."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- prices ----------------------------------------------------------------------------------------


class StepFunctionsPrices(_Model):
    standard_per_1k_transitions: float = Field(ge=0)
    express_per_million_requests: float = Field(ge=0)
    express_per_gb_second: float = Field(ge=0)


class LambdaPrices(_Model):
    per_million_requests: float = Field(ge=0)
    per_gb_second: dict[Literal["arm64", "x86_64"], float]


class ApiGatewayPrices(_Model):
    rest_per_million_requests: float = Field(ge=0)


class EventBridgePrices(_Model):
    custom_events_per_million: float = Field(ge=0)


class DynamoDbPrices(_Model):
    on_demand_per_million_write_units: float = Field(ge=0)
    on_demand_per_million_read_units: float = Field(ge=0)


class S3Prices(_Model):
    put_per_1k_requests: float = Field(ge=0)
    get_per_1k_requests: float = Field(ge=0)


class SageMakerPrices(_Model):
    instance_per_hour: dict[str, float] = Field(default_factory=dict)


class TokenPrices(_Model):
    input_per_1k_tokens: float = Field(ge=0)
    output_per_1k_tokens: float = Field(ge=0)
    # Prompt-cache writes and reads (unset: priced as input, which errs high).
    cache_write_per_1k_tokens: float | None = Field(default=None, ge=0)
    cache_read_per_1k_tokens: float | None = Field(default=None, ge=0)


class BedrockPrices(_Model):
    """On-demand token prices per Bedrock model id (inference profiles are priced as their model)."""

    models: dict[str, TokenPrices] = Field(default_factory=dict)


class Pricing(_Model):
    region: str
    currency: Literal["USD"]
    source: str = Field(min_length=1)
    as_of: str = Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
    step_functions: StepFunctionsPrices
    lambda_: LambdaPrices = Field(alias="lambda")
    api_gateway: ApiGatewayPrices
    eventbridge: EventBridgePrices
    dynamodb: DynamoDbPrices
    s3: S3Prices
    sagemaker: SageMakerPrices
    bedrock: BedrockPrices = Field(default_factory=BedrockPrices)


def regions() -> list[str]:
    return sorted(p.stem for p in PRICING_DIR.glob("*.yaml"))


def load_pricing(region: str | None = None, path: Path | None = None) -> Pricing:
    """The price list of ``region`` kept in the repo, or the file at ``path``."""
    if path is None:
        path = PRICING_DIR / f"{region}.yaml"
        if not path.is_file():
            raise CostError(f"no price list for region {region!r} (have: {', '.join(regions())})")
    try:
        return Pricing.model_validate(yaml.safe_load(path.read_text()))
    except OSError as error:
        raise CostError(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise CostError(f"{path} is not YAML: {str(error).splitlines()[0]}") from None
    except ValidationError as error:
        raise CostError(f"{path}: {first_error(error)}") from None


def parse_rate(text: str) -> float:
    """``50/s``, ``3000/min``, ``1e6/month`` style rates, as runs per second."""
    match = _RATE.match(text)
    if match is None:
        raise CostError(f"rate {text!r}: expected N/s, N/min, N/h, N/day or N/month (e.g. 50/s)")
    n = float(match["n"])
    unit = match["unit"]
    per_s = n / SECONDS_PER_MONTH if unit == "month" else n / _PER_SECOND[unit]
    if per_s <= 0:
        raise CostError(f"rate {text!r} must be more than zero")
    return per_s


# --- what a run uses ---------------------------------------------------------------------------------


class FunctionUse(_Model):
    function: str  # logical id in the template
    memory_mb: int = Field(gt=0)
    architecture: Literal["arm64", "x86_64"] = "arm64"
    invocations: float = Field(ge=0)
    duration_ms: float = Field(ge=0)  # total handler time over those invocations


class ModelUse(_Model):
    """One model's tokens in a run, as its turns' decision records counted them."""

    model_id: str  # as invoked: an inference profile id (``us.<model>``) is priced as its model
    turns: float = Field(ge=0)
    input_tokens: float = Field(ge=0)
    output_tokens: float = Field(ge=0)
    cache_read_tokens: float = Field(default=0, ge=0)  # prompt-cache reads and writes, priced apart
    cache_write_tokens: float = Field(default=0, ge=0)
    served_by: list[str] = Field(default_factory=list)  # who answered, when the endpoint said (a local stand-in)
    provider: Literal["bedrock", "sagemaker"] = "bedrock"  # sagemaker: self-hosted, its endpoint's hours are its cost


class RunUse(_Model):
    """What one run of the workflow uses, averaged over the measured runs."""

    state_transitions: float = Field(ge=0)
    duration_ms: float = Field(ge=0)  # start to stop of the execution
    api_requests: float = Field(ge=0)
    events_published: float = Field(ge=0)
    dynamodb_write_units: float = Field(ge=0)
    dynamodb_read_units: float = Field(ge=0)
    s3_put_requests: float = Field(ge=0)
    s3_get_requests: float = Field(ge=0)
    functions: list[FunctionUse] = Field(default_factory=list)
    models: list[ModelUse] = Field(default_factory=list)


class Endpoint(_Model):
    name: str
    instance_type: str
    instances: int = Field(ge=0)  # always running: the variant's initial count or its autoscaling minimum


class Schedule(_Model):
    rule: str
    per_month: float = Field(ge=0)
    functions: list[FunctionUse] = Field(default_factory=list)  # per firing


class Profile(_Model):
    workflow: str
    state_machine_type: Literal["STANDARD", "EXPRESS"]
    request: str
    runs_measured: int = Field(ge=1)
    per_run: RunUse
    endpoints: list[Endpoint] = Field(default_factory=list)
    schedules: list[Schedule] = Field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> Profile:
        try:
            return cls.model_validate_json(path.read_text())
        except OSError as error:
            raise CostError(f"cannot read profile {path}: {error.strerror}") from None
        except ValidationError as error:
            raise CostError(f"profile {path}: {first_error(error)}") from None


# --- the estimate ------------------------------------------------------------------------------------


class Line(_Model):
    item: str
    fixed: bool = False  # runs whatever the rate: quantity is per month, not per run
    quantity_per_run: float
    unit: str
    unit_price: float
    per_1k_runs: float
    monthly: float


class Variant(_Model):
    name: Literal["STANDARD", "EXPRESS"]
    orchestration_per_1k_runs: float
    per_1k_runs: float
    monthly: float
    note: str = ""


class Estimate(_Model):
    workflow: str
    region: str
    rate_per_s: float
    runs_per_month: float
    prices_as_of: str
    prices_source: str
    lines: list[Line]
    per_1k_runs: float
    monthly: float
    variants: list[Variant]
    not_counted: list[str]


def _lambda_gb_s(functions: list[FunctionUse]) -> dict[str, float]:
    by_arch: dict[str, float] = {}
    for f in functions:
        by_arch[f.architecture] = by_arch.get(f.architecture, 0.0) + f.duration_ms / 1000 * f.memory_mb / 1024
    return by_arch


def express_gb_s(duration_ms: float) -> float:
    """One Express run's billed GB-seconds: duration rounded up to 100 ms, one 64 MB chunk."""
    return math.ceil(duration_ms / 100) * 0.1 * EXPRESS_MEMORY_CHUNK_GB


Item = tuple[str, float, str, float]


def _orchestration(kind: str, use: RunUse, prices: Pricing) -> list[Item]:
    sfn = prices.step_functions
    if kind == "STANDARD":
        return [
            (
                "Step Functions Standard transitions",
                use.state_transitions,
                "transition",
                sfn.standard_per_1k_transitions / 1e3,
            )
        ]
    return [
        ("Step Functions Express requests", 1.0, "request", sfn.express_per_million_requests / 1e6),
        ("Step Functions Express duration", express_gb_s(use.duration_ms), "GB-s", sfn.express_per_gb_second),
    ]


# Bedrock's cross-Region inference profiles: ``<geo>.<model id>``, billed at the model's on-demand price.
PROFILE_GEOS = ("us", "eu", "apac", "jp", "au", "ca", "us-gov", "global")


def token_prices(model_id: str, prices: Pricing) -> TokenPrices:
    """The on-demand token prices of the model a turn invoked (directly, or through an inference profile)."""
    models = prices.bedrock.models
    geo, _, model = model_id.partition(".")
    found = models.get(model_id) or (models.get(model) if geo in PROFILE_GEOS else None)
    if found is None:
        raise CostError(f"model {model_id}: no {prices.region} token price (add it to the region's price list)")
    return found


def _model_items(models: list[ModelUse], prices: Pricing) -> list[Item]:
    items: list[Item] = []
    for use in models:
        if use.provider == "sagemaker":
            continue  # a self-hosted model's tokens cost nothing more than its endpoint's instance-hours
        price = token_prices(use.model_id, prices)
        items += [
            (f"Bedrock {use.model_id} input tokens", use.input_tokens, "token", price.input_per_1k_tokens / 1e3),
            (f"Bedrock {use.model_id} output tokens", use.output_tokens, "token", price.output_per_1k_tokens / 1e3),
        ]
        cached = (
            ("cache write", use.cache_write_tokens, price.cache_write_per_1k_tokens),
            ("cache read", use.cache_read_tokens, price.cache_read_per_1k_tokens),
        )
        for what, tokens, per_1k in cached:
            if tokens:  # a loop that used the prompt cache
                rate = price.input_per_1k_tokens if per_1k is None else per_1k
                items.append((f"Bedrock {use.model_id} {what} tokens", tokens, "token", rate / 1e3))
    return items


def _per_run_items(kind: str, use: RunUse, prices: Pricing) -> list[tuple[str, float, str, float]]:
    """(item, quantity per run, unit, price per unit)."""
    items: list[Item] = _orchestration(kind, use, prices)
    invocations = sum(f.invocations for f in use.functions)
    items.append(("Lambda requests", invocations, "request", prices.lambda_.per_million_requests / 1e6))
    for arch, gb_s in sorted(_lambda_gb_s(use.functions).items()):
        items.append((f"Lambda duration ({arch})", gb_s, "GB-s", prices.lambda_.per_gb_second[arch]))  # type: ignore[index]
    items += [
        ("API Gateway REST requests", use.api_requests, "request", prices.api_gateway.rest_per_million_requests / 1e6),
        ("EventBridge events", use.events_published, "event", prices.eventbridge.custom_events_per_million / 1e6),
        ("DynamoDB writes", use.dynamodb_write_units, "WRU", prices.dynamodb.on_demand_per_million_write_units / 1e6),
        ("DynamoDB reads", use.dynamodb_read_units, "RRU", prices.dynamodb.on_demand_per_million_read_units / 1e6),
        ("S3 PUT/LIST requests", use.s3_put_requests, "request", prices.s3.put_per_1k_requests / 1e3),
        ("S3 GET requests", use.s3_get_requests, "request", prices.s3.get_per_1k_requests / 1e3),
    ]
    return items + _model_items(use.models, prices)


def _fixed_items(profile: Profile, prices: Pricing) -> list[tuple[str, float, str, float]]:
    """(item, quantity per month, unit, price per unit): what runs whatever the rate."""
    items: list[tuple[str, float, str, float]] = []
    for endpoint in profile.endpoints:
        hourly = prices.sagemaker.instance_per_hour.get(endpoint.instance_type)
        if hourly is None:
            raise CostError(
                f"endpoint {endpoint.name}: no {prices.region} price for {endpoint.instance_type} "
                f"(add it to the region's price list)"
            )
        items.append(
            (
                f"SageMaker endpoint {endpoint.name} ({endpoint.instance_type})",
                endpoint.instances * HOURS_PER_MONTH,
                "instance-hour",
                hourly,
            )
        )
    for schedule in profile.schedules:
        invocations = schedule.per_month * sum(f.invocations for f in schedule.functions)
        items.append(
            (
                f"schedule {schedule.rule}: Lambda requests",
                invocations,
                "request",
                prices.lambda_.per_million_requests / 1e6,
            )
        )
        for arch, gb_s in sorted(_lambda_gb_s(schedule.functions).items()):
            price = prices.lambda_.per_gb_second[arch]  # type: ignore[index]
            items.append(
                (f"schedule {schedule.rule}: Lambda duration ({arch})", schedule.per_month * gb_s, "GB-s", price)
            )
    return items


NOT_COUNTED = [
    "free tiers",
    "storage (DynamoDB, S3, logs)",
    "KMS requests",
    "CloudWatch Logs ingestion and X-Ray traces",
    "data transfer",
    "DynamoDB Streams reads by Lambda (free)",
]


def estimate(profile: Profile, prices: Pricing, rate_per_s: float) -> Estimate:
    runs_per_month = rate_per_s * SECONDS_PER_MONTH
    lines = [
        Line(
            item=item,
            quantity_per_run=quantity,
            unit=unit,
            unit_price=price,
            per_1k_runs=quantity * price * 1000,
            monthly=quantity * price * runs_per_month,
        )
        for item, quantity, unit, price in _per_run_items(profile.state_machine_type, profile.per_run, prices)
    ]
    fixed = [
        Line(
            item=item,
            fixed=True,
            quantity_per_run=0.0,
            unit=unit,
            unit_price=price,
            per_1k_runs=0.0,
            monthly=quantity * price,
        )
        for item, quantity, unit, price in _fixed_items(profile, prices)
    ]
    monthly = sum(line.monthly for line in lines + fixed)
    per_1k = monthly / runs_per_month * 1000
    variable_per_1k = sum(line.per_1k_runs for line in lines)
    fixed_monthly = sum(line.monthly for line in fixed)
    own = sum(q * p for _, q, _, p in _orchestration(profile.state_machine_type, profile.per_run, prices)) * 1000
    variants = []
    for kind in ("STANDARD", "EXPRESS"):
        orchestration = sum(q * p for _, q, _, p in _orchestration(kind, profile.per_run, prices)) * 1000
        variant_per_1k = variable_per_1k - own + orchestration
        variant_monthly = variant_per_1k / 1000 * runs_per_month + fixed_monthly
        note = ""
        if kind == "EXPRESS":
            note = (
                "Express runs at most 5 minutes and cannot wait for a task token: runs that need a person stay Standard"
            )
        variants.append(
            Variant(
                name=kind,
                orchestration_per_1k_runs=orchestration,
                per_1k_runs=variant_monthly / runs_per_month * 1000,
                monthly=variant_monthly,
                note=note,
            )
        )
    return Estimate(
        workflow=profile.workflow,
        region=prices.region,
        rate_per_s=rate_per_s,
        runs_per_month=runs_per_month,
        prices_as_of=prices.as_of,
        prices_source=" ".join(prices.source.split()),
        lines=lines + fixed,
        per_1k_runs=per_1k,
        monthly=monthly,
        variants=variants,
        not_counted=NOT_COUNTED,
    )


def _price(price: float, unit: str) -> str:
    return f"${price * 1e6:.4g}/M {unit}" if price < 1e-3 else f"${price:.4g}/{unit}"


def _money(amount: float) -> str:
    return f"{amount:,.2f}" if amount >= 0.01 or amount == 0 else f"{amount:.2g}"


def render(estimate: Estimate, profile: Profile) -> str:
    e = estimate
    width = max(len(line.item) for line in e.lines)
    rows = [
        f"{e.workflow} at {e.rate_per_s:g} runs/s = {e.runs_per_month:,.0f} runs/month ({HOURS_PER_MONTH} h), "
        f"{e.region} list prices as of {e.prices_as_of}",
        f"measured: {profile.runs_measured} local run(s) of {profile.request} on {profile.state_machine_type}: "
        f"{profile.per_run.state_transitions:g} transitions, "
        f"{sum(f.invocations for f in profile.per_run.functions):g} Lambda invocations per run",
        "",
        f"  {'item':<{width}} {'quantity':>14}  {'price':<24} {'per 1k runs':>12} {'per month':>14}",
    ]
    for line in e.lines:
        quantity = f"{line.monthly / line.unit_price:,.4g}/month" if line.fixed and line.unit_price else ""
        quantity = quantity or f"{line.quantity_per_run:.4g}/run"
        rows.append(
            f"  {line.item:<{width}} {quantity:>14}  {_price(line.unit_price, line.unit):<24} "
            f"{line.per_1k_runs:>12.4f} {_money(line.monthly):>14}"
        )
    rows += [
        f"  {'total':<{width}} {'':>14}  {'':<24} {e.per_1k_runs:>12.4f} {_money(e.monthly):>14}",
        "",
        "variants (orchestration priced both ways; everything else as measured):",
    ]
    for v in e.variants:
        rows.append(
            f"  {v.name:<9} orchestration ${v.orchestration_per_1k_runs:.4f} per 1k runs; total ${v.per_1k_runs:.4f} "
            f"per 1k runs, ${_money(v.monthly)} per month" + (f"  ({v.note})" if v.note else "")
        )
    for model in profile.per_run.models:
        if model.provider == "sagemaker":
            rows.append(
                f"tokens of {model.model_id}: {model.turns:g} turns per run, self-hosted: no token price, its "
                "endpoint's instance-hours are its cost (the SageMaker endpoint line)"
            )
        elif model.served_by:
            rows.append(
                f"tokens of {model.model_id}: {model.turns:g} turns per run, as {', '.join(model.served_by)} counted "
                "them, not the model: measure against the deployed model for its own counts"
            )
    rows += ["", f"not counted: {', '.join(e.not_counted)}", f"prices: {e.prices_source}"]
    return "\n".join(rows)
