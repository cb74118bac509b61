"""The micro-batcher, driven deterministically: an injected clock and a wait the test decides, no sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence

import pytest

from containers.base.batching import BatchPolicy, DeadlineExceeded, MicroBatcher, QueueFull
from containers.base.metrics import BatchMetrics

pytestmark = pytest.mark.unit
GUARD_S = 5.0  # a bound so a bug fails the test instead of hanging it; never a timing assertion


class ManualTime:
    """A clock the test moves, and a wait that ends only when an item arrives or the test expires it."""

    def __init__(self) -> None:
        self.now = 100.0
        self.waits: list[float] = []
        self._expire: asyncio.Event | None = None

    def clock(self) -> float:
        return self.now

    async def wait_for_more(self, arrived: asyncio.Event, timeout: float) -> bool:
        self.waits.append(timeout)
        self._expire = asyncio.Event()
        arrival = asyncio.ensure_future(arrived.wait())
        expiry = asyncio.ensure_future(self._expire.wait())
        done, pending = await asyncio.wait({arrival, expiry}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return arrival in done

    async def expire(self, seconds: float) -> None:
        while self._expire is None:
            await asyncio.sleep(0)
        self.now += seconds
        self._expire.set()


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __call__(self, items: list[int]) -> Sequence[int | Exception]:
        self.batches.append(list(items))
        return [ValueError(f"odd {i}") if i < 0 else i * 10 for i in items]


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def run(coro: object) -> object:
    return asyncio.run(asyncio.wait_for(coro, GUARD_S))  # type: ignore[arg-type]


def test_a_full_batch_runs_without_waiting_and_each_caller_gets_its_own_result() -> None:
    # GIVEN a batcher that would wait an hour for a batch that is not full
    recorder = Recorder()

    async def scenario() -> list[int]:
        batcher = MicroBatcher(recorder, BatchPolicy(max_batch=3, max_wait_ms=3_600_000))
        results = await asyncio.gather(*(batcher.submit(i) for i in (1, 2, 3)))
        await batcher.stop()
        return list(results)

    # WHEN three items arrive THEN they run as one batch, results in their callers' order
    assert run(scenario()) == [10, 20, 30]
    assert recorder.batches == [[1, 2, 3]]


def test_a_partial_batch_runs_when_max_wait_expires() -> None:
    recorder = Recorder()
    time = ManualTime()

    async def scenario() -> list[int]:
        batcher = MicroBatcher(
            recorder,
            BatchPolicy(max_batch=4, max_wait_ms=50),
            clock=time.clock,
            wait_for_more=time.wait_for_more,
        )
        calls = [asyncio.ensure_future(batcher.submit(i)) for i in (7, 8)]
        await settle()
        assert recorder.batches == []  # not full, not due: still waiting
        await time.expire(0.05)
        results = await asyncio.gather(*calls)
        await batcher.stop()
        return list(results)

    assert run(scenario()) == [70, 80]
    assert recorder.batches == [[7, 8]]
    assert time.waits[-1] == pytest.approx(0.05)  # it waited max_wait_ms from the oldest arrival


def test_a_lone_request_runs_at_once_when_nothing_else_is_on_its_way() -> None:
    # GIVEN a batcher that would wait an hour for a partial batch, and callers that announce their requests
    recorder = Recorder()

    async def scenario() -> int:
        batcher = MicroBatcher(recorder, BatchPolicy(max_batch=8, max_wait_ms=3_600_000))
        with batcher.expecting():
            queued = batcher.enqueue(5)
        result = await queued
        await batcher.stop()
        return result

    # WHEN one request arrives and no other is announced THEN it runs alone, without the wait
    assert run(scenario()) == 50
    assert recorder.batches == [[5]]


def test_a_partial_batch_waits_for_a_request_still_on_its_way() -> None:
    recorder = Recorder()
    time = ManualTime()

    async def scenario() -> list[int]:
        batcher = MicroBatcher(
            recorder, BatchPolicy(max_batch=4, max_wait_ms=50), clock=time.clock, wait_for_more=time.wait_for_more
        )
        with batcher.expecting():
            first = batcher.enqueue(1)
        second_arriving = batcher.expecting()
        second_arriving.__enter__()  # announced: its body is still being read
        with batcher.expecting():
            third = batcher.enqueue(3)
        await settle()
        assert recorder.batches == []  # one request is still on its way: the partial batch waits for it
        second = batcher.enqueue(2)
        second_arriving.__exit__(None, None, None)
        results = await asyncio.gather(first, second, third)
        await batcher.stop()
        return list(results)

    # THEN the batch runs as soon as nothing more is announced, with the late arrival in it, before max_wait
    assert run(scenario()) == [10, 20, 30]
    assert recorder.batches == [[1, 3, 2]]


def test_a_request_refused_before_it_queued_does_not_hold_a_batch_back() -> None:
    recorder = Recorder()

    async def scenario() -> int:
        batcher = MicroBatcher(recorder, BatchPolicy(max_batch=4, max_wait_ms=3_600_000))
        with batcher.expecting():
            queued = batcher.enqueue(4)
        with contextlib.suppress(ValueError), batcher.expecting():
            raise ValueError("a body that does not parse")
        result = await queued
        await batcher.stop()
        return result

    assert run(scenario()) == 40
    assert recorder.batches == [[4]]


def test_batching_off_runs_one_item_per_call() -> None:
    recorder = Recorder()

    async def scenario() -> list[int]:
        batcher = MicroBatcher(recorder, BatchPolicy(max_batch=1, max_wait_ms=0))
        results = await asyncio.gather(*(batcher.submit(i) for i in range(5)))
        await batcher.stop()
        return list(results)

    assert run(scenario()) == [0, 10, 20, 30, 40]
    assert all(len(batch) == 1 for batch in recorder.batches)
    assert sorted(b[0] for b in recorder.batches) == [0, 1, 2, 3, 4]


def test_an_item_error_fails_only_its_caller() -> None:
    recorder = Recorder()

    async def scenario() -> list[object]:
        batcher = MicroBatcher(recorder, BatchPolicy(max_batch=3, max_wait_ms=3_600_000))
        results = await asyncio.gather(*(batcher.submit(i) for i in (1, -2, 3)), return_exceptions=True)
        await batcher.stop()
        return list(results)

    first, failed, third = run(scenario())  # type: ignore[misc]
    assert (first, third) == (10, 30)
    assert isinstance(failed, ValueError)
    assert str(failed) == "odd -2"


def test_a_failed_run_fails_its_batch_and_the_next_batch_still_runs() -> None:
    calls: list[list[int]] = []

    def flaky(items: list[int]) -> Sequence[int]:
        calls.append(items)
        if len(calls) == 1:
            raise RuntimeError("device lost")
        return [i + 1 for i in items]

    async def scenario() -> tuple[list[object], list[object]]:
        batcher = MicroBatcher(flaky, BatchPolicy(max_batch=2, max_wait_ms=3_600_000))
        first = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
        second = await asyncio.gather(batcher.submit(3), batcher.submit(4), return_exceptions=True)
        await batcher.stop()
        return list(first), list(second)

    first, second = run(scenario())  # type: ignore[misc]
    assert all(isinstance(r, RuntimeError) for r in first)
    assert second == [4, 5]


def test_work_whose_deadline_passed_in_the_queue_is_refused_not_run() -> None:
    recorder = Recorder()
    time = ManualTime()

    async def scenario() -> list[object]:
        batcher = MicroBatcher(
            recorder, BatchPolicy(max_batch=3, max_wait_ms=20), clock=time.clock, wait_for_more=time.wait_for_more
        )
        stale = asyncio.ensure_future(batcher.submit(1, deadline=time.now + 0.01))
        fresh = asyncio.ensure_future(batcher.submit(2, deadline=time.now + 5))
        await settle()
        await time.expire(0.02)
        results = await asyncio.gather(stale, fresh, return_exceptions=True)
        await batcher.stop()
        return list(results)

    stale, fresh = run(scenario())  # type: ignore[misc]
    assert isinstance(stale, DeadlineExceeded)
    assert fresh == 20
    assert recorder.batches == [[2]]


def test_a_full_queue_sheds_new_work() -> None:
    async def scenario() -> object:
        gate = asyncio.Event()
        entered = asyncio.Event()
        loop = asyncio.get_running_loop()

        def slow(items: list[int]) -> Sequence[int]:
            loop.call_soon_threadsafe(entered.set)
            asyncio.run_coroutine_threadsafe(gate.wait(), loop).result(GUARD_S)
            return items

        batcher = MicroBatcher(slow, BatchPolicy(max_batch=1, max_wait_ms=0), max_queue=1)
        running = asyncio.ensure_future(batcher.submit(1))
        await entered.wait()  # the first is in the model, out of the queue
        queued = asyncio.ensure_future(batcher.submit(2))
        await settle()
        with pytest.raises(QueueFull):
            await batcher.submit(3)
        gate.set()
        results = await asyncio.gather(running, queued)
        await batcher.stop()
        return results

    assert run(scenario()) == [1, 2]


def test_batch_size_and_queue_depth_are_exported_as_emf() -> None:
    lines: list[str] = []
    metrics = BatchMetrics(service="summarizer", emit=lines.append, flush_interval_s=3600)
    recorder = Recorder()

    async def scenario() -> None:
        batcher = MicroBatcher(recorder, BatchPolicy(max_batch=2, max_wait_ms=3_600_000), metrics=metrics)
        await asyncio.gather(*(batcher.submit(i) for i in range(4)))
        await batcher.stop()  # flushes

    run(scenario())
    snapshot = metrics.snapshot()
    assert (snapshot.batches, snapshot.items, snapshot.batch_sizes) == (2, 4, {2: 2})
    assert snapshot.max_queue_depth == 2  # the second pair waited while the first ran
    document = json.loads(lines[-1])
    assert document["batch_size"] == [2, 2]
    assert document["queue_depth"] == [2, 0]
    definition = document["_aws"]["CloudWatchMetrics"][0]
    assert definition["Namespace"] == "agentplane"
    assert {m["Name"] for m in definition["Metrics"]} == {"batch_size", "queue_depth"}
    assert document["service"] == "summarizer"


@pytest.mark.parametrize(("max_batch", "max_wait_ms"), [(0, 5), (1, -1)])
def test_policy_refuses_impossible_settings(max_batch: int, max_wait_ms: int) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        BatchPolicy(max_batch, max_wait_ms)
