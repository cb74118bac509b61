"""Health-aware routing: circuit breakers, version ranges, the ranked plan, and health folded from decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.registry import Circuit, Health, Implementation
from functions.runtime.routing import (
    Breaker,
    admits,
    fold_health,
    in_range,
    observe,
    percentile,
    plan,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
BREAKER = Breaker(consecutive_failures=3, error_rate=0.5, min_samples=10, cool_down_s=30)


def impl(name: str, *, version: str = "1.0.0", capability: str = "fact-check", **extra: object) -> Implementation:
    agent = name.split("~")[0]
    variant = "approximate" if "~" in name else "primary"
    return Implementation.model_validate(
        {
            "name": name,
            "agent": agent,
            "variant": variant,
            "capabilities": [capability],
            "contract_version": version,
            "runtime": "lambda",
            "target": f"arn:fn:{name}",
            **extra,
        }
    )


def failures(n: int, circuit: Circuit | None = None) -> Circuit:
    circuit = circuit or Circuit()
    for _ in range(n):
        circuit = observe(circuit, succeeded=False, now=T0, breaker=BREAKER)
    return circuit


# --- circuit ----------------------------------------------------------------------------------------


def test_a_circuit_opens_on_consecutive_failures() -> None:
    assert failures(2).state == "closed"
    opened = failures(3)
    assert opened.state == "open"
    assert opened.reason == "3 consecutive failures"
    assert opened.opened_at == T0


def test_a_success_resets_the_consecutive_count() -> None:
    circuit = failures(2)
    circuit = observe(circuit, succeeded=True, now=T0, breaker=BREAKER)
    assert failures(2, circuit).state == "closed"


def test_a_circuit_opens_on_error_rate_over_enough_samples() -> None:
    circuit = Circuit()
    for ok in [True, False, True, False, True, False, True, False, True]:  # 9 calls, 4 failures
        circuit = observe(circuit, succeeded=ok, now=T0, breaker=BREAKER)
    assert circuit.state == "closed"

    circuit = observe(circuit, succeeded=False, now=T0, breaker=BREAKER)  # 10 calls, 5 failures

    assert circuit.state == "open"
    assert circuit.reason == "error rate 50% over the last 10 calls"


def test_an_open_circuit_admits_a_trial_after_its_cool_down() -> None:
    opened = failures(3)
    assert not admits(opened, T0 + timedelta(seconds=29), BREAKER)
    assert admits(opened, T0 + timedelta(seconds=30), BREAKER)


def test_a_successful_trial_closes_and_a_failed_one_reopens() -> None:
    opened = failures(3)
    later = T0 + timedelta(seconds=31)

    closed = observe(opened, succeeded=True, now=later, breaker=BREAKER)
    reopened = observe(opened, succeeded=False, now=later, breaker=BREAKER)

    assert closed.state == "closed"
    assert closed.consecutive_failures == 0
    assert reopened.state == "open"
    assert reopened.opened_at == later
    assert reopened.reason == "trial request failed"


# --- version ranges ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "accepted", "expected"),
    [
        ("1.4.2", "1.x", True),
        ("2.0.0", "1.x", False),
        ("1.4.2", "1.4.x", True),
        ("1.5.0", "1.4.x", False),
        ("1.4.2", "1.4.2", True),
        ("1.4.3", "1.4.2", False),
        ("7.0.0", "*", True),
    ],
)
def test_version_ranges(version: str, accepted: str, expected: bool) -> None:
    assert in_range(version, accepted) is expected


def test_a_malformed_range_is_refused() -> None:
    with pytest.raises(ValueError, match="version range"):
        in_range("1.0.0", "one")


# --- the plan ------------------------------------------------------------------------------------------


def names(candidates: list) -> list[str]:  # type: ignore[type-arg]
    return [c.implementation for c in candidates]


def test_the_plan_prefers_the_healthiest_compatible_primary_then_the_contracts_fallback() -> None:
    fallback = [{"capability": "lookup", "max_version": "2.x"}, "approximate", "human"]
    registry = [
        impl("verifier-a", fallback=fallback, health=Health(error_rate=0.2)),
        impl("verifier-b", fallback=fallback),
        impl("verifier-c", version="2.0.0"),  # out of range
        impl("verifier-a~approximate"),
        impl("verifier-b~approximate"),
        impl("finder", capability="lookup", version="2.1.0"),
        impl("scorer", capability="risk-scoring"),
    ]

    candidates, skipped = plan("fact-check", "1.x", registry, now=T0, breaker=BREAKER)

    assert names(candidates) == [
        "verifier-b",
        "verifier-a",
        "finder",
        "verifier-b~approximate",
        "verifier-a~approximate",  # each primary's own fallbacks, the preferred primary's first
        "human",
    ]
    assert [c.reason for c in candidates] == [
        "healthy and compatible",
        "alternate fact-check implementation",
        "fallback: lookup 2.x",
        "fallback: approximate result",
        "fallback: approximate result",
        "fallback: human escalation",
    ]
    assert skipped == []


def test_eval_quality_ranks_after_health_and_a_model_goes_first_at_equal_quality() -> None:
    registry = [
        impl("heuristic", quality=0.9, fallback=["approximate", "human"], health=Health(p95_ms=5.0)),
        impl("heuristic~approximate"),
        impl("llm", quality=0.9, runtime="llm", fallback=["human"], health=Health(p95_ms=900.0)),
        impl("unscored", runtime="llm"),
        impl("better", quality=0.95, health=Health(error_rate=0.1)),
    ]

    candidates, _ = plan("fact-check", "1.x", registry, now=T0, breaker=BREAKER)

    # healthy first; then quality (unscored last); at equal quality the model-backed one; then latency
    assert names(candidates) == ["llm", "heuristic", "unscored", "better", "heuristic~approximate", "human"]


def test_higher_quality_wins_over_the_runtime_preference() -> None:
    registry = [impl("llm", quality=0.7, runtime="llm"), impl("heuristic", quality=0.9)]

    candidates, _ = plan("fact-check", "1.x", registry, now=T0, breaker=BREAKER)

    assert names(candidates) == ["heuristic", "llm"]


def test_an_open_circuit_is_passed_over_and_said_so() -> None:
    registry = [
        impl("verifier", fallback=["approximate", "human"], circuit=failures(3)),
        impl("verifier~approximate"),
    ]

    candidates, skipped = plan("fact-check", "1.x", registry, now=T0 + timedelta(seconds=5), breaker=BREAKER)

    assert names(candidates) == ["verifier~approximate", "human"]
    assert skipped == ["verifier: circuit open (3 consecutive failures)"]


def test_after_the_cool_down_the_primary_gets_a_trial_first() -> None:
    registry = [impl("verifier", fallback=["approximate"], circuit=failures(3)), impl("verifier~approximate")]

    candidates, _ = plan("fact-check", "1.x", registry, now=T0 + timedelta(seconds=30), breaker=BREAKER)

    assert names(candidates) == ["verifier", "verifier~approximate"]
    assert candidates[0].reason == "circuit half-open: trial request"


def test_nothing_compatible_plans_nothing() -> None:
    assert plan("fact-check", "3.x", [impl("verifier")], now=T0, breaker=BREAKER) == ([], [])


# --- health ---------------------------------------------------------------------------------------------


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 95) == 95
    assert percentile([], 50) is None


def test_health_folds_calls_into_a_bounded_window() -> None:
    calls = [(float(ms), ms % 10 != 0, T0 + timedelta(seconds=ms)) for ms in range(1, 151)]

    health = fold_health(Health(), calls, window=100)

    assert health.samples == 150
    assert len(health.window_ms) == 100
    assert health.window_ms[0] == 51  # the oldest 50 fell out
    assert health.p50_ms == 100
    assert health.p95_ms == 145
    assert health.error_rate == 0.1
    assert health.last_heartbeat == T0 + timedelta(seconds=150)
