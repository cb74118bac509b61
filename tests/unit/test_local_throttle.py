"""The local plane's usage plans: API keys from the template, one token bucket per plan, exact Retry-After."""

from __future__ import annotations

import pytest

from infra.local.provision import ApiDefinition
from infra.local.throttle import KeyRefused, TokenBucket, UsagePlans


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def api(**plans: dict[str, float] | None) -> ApiDefinition:
    """One key per plan, named after it: key value ``<plan>-key``."""
    definition = ApiDefinition()
    for name, throttle in plans.items():
        definition.api_keys[f"id-{name}"] = f"{name}-key"
        definition.usage_plans[f"plan-{name}"] = {"logical_id": name, **({"Throttle": throttle} if throttle else {})}
        definition.plan_of_key[f"id-{name}"] = f"plan-{name}"
    return definition


def test_a_bucket_starts_full_then_refills_at_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)

    taken = [bucket.take() for _ in range(4)]
    clock.now += 0.5
    after_half_a_second = bucket.take()

    assert taken[:3] == [0.0, 0.0, 0.0]
    assert taken[3] == pytest.approx(0.5)  # one token at 2/s
    assert after_half_a_second == 0.0


def test_a_bucket_never_holds_more_than_its_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=100, burst=2, clock=clock)
    clock.now += 60

    assert [bucket.take() == 0.0 for _ in range(3)] == [True, True, False]


def test_each_key_spends_its_own_plan() -> None:
    clock = Clock()
    plans = UsagePlans(
        api(auditor={"RateLimit": 1, "BurstLimit": 2}, submitter={"RateLimit": 5, "BurstLimit": 5}), clock=clock
    )

    auditor = [plans.admit("auditor-key") for _ in range(3)]
    submitter = plans.admit("submitter-key")

    assert [a.admitted for a in auditor] == [True, True, False]
    assert auditor[2].retry_after_s == 1
    assert submitter.admitted


def test_retry_after_rounds_the_wait_up_to_whole_seconds() -> None:
    clock = Clock()
    plans = UsagePlans(api(slow={"RateLimit": 0.25, "BurstLimit": 1}), clock=clock)

    plans.admit("slow-key")
    clock.now += 1
    refused = plans.admit("slow-key")

    assert not refused.admitted
    assert refused.retry_after_s == 3  # 0.75 of a token missing at 0.25/s


def test_scale_multiplies_rate_and_burst() -> None:
    plans = UsagePlans(api(auditor={"RateLimit": 1, "BurstLimit": 2}), clock=Clock(), scale=10)

    assert sum(plans.admit("auditor-key").admitted for _ in range(25)) == 20


def test_a_plan_without_throttle_admits_everything() -> None:
    plans = UsagePlans(api(open=None), clock=Clock())

    assert all(plans.admit("open-key").admitted for _ in range(1000))


@pytest.mark.parametrize("value", [None, "", "someone-elses-key"])
def test_a_missing_or_unknown_key_is_refused(value: str | None) -> None:
    plans = UsagePlans(api(auditor={"RateLimit": 1, "BurstLimit": 1}), clock=Clock())

    with pytest.raises(KeyRefused, match="x-api-key"):
        plans.admit(value)
