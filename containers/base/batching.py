"""Dynamic micro-batching: requests queue and run together when ``max_batch`` are waiting or ``max_wait_ms``
has passed since the oldest arrived, whichever comes first. Each caller gets its own result.

The wait is adaptive: callers announce a request as soon as it arrives (:meth:`MicroBatcher.expecting`, before
its body is read and parsed), and a batch that is not full runs at once when no announced request is still on
its way. An idle server answers a lone request without waiting ``max_wait_ms``; a busy one still fills batches,
from the requests that queued while the previous batch ran. Callers that announce nothing get the plain policy.

The model runs on one worker thread (ONNX Runtime releases the GIL), so the event loop keeps accepting and
parsing requests while a batch runs; the next batch forms from whatever queued meanwhile. ``max_batch=1``
turns batching off: one model call per request, same code path.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from containers.base.metrics import BatchMetrics

Item = TypeVar("Item")
Result = TypeVar("Result")

RunBatch = Callable[[list[Item]], Sequence[Result | Exception]]
# Waits for the event up to the timeout (seconds); True if it was set. Injected by tests to drive time.
WaitForMore = Callable[[asyncio.Event, float], Awaitable[bool]]


class QueueFull(Exception):
    """More requests are waiting than the container will queue: shed, do not queue past every deadline."""


class DeadlineExceeded(Exception):
    """The caller's deadline passed while the request waited for its batch: refused, not run."""


@dataclass(frozen=True)
class BatchPolicy:
    max_batch: int
    max_wait_ms: int

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.max_wait_ms < 0:
            raise ValueError(f"max_batch must be >= 1 and max_wait_ms >= 0, got {self.max_batch}, {self.max_wait_ms}")

    def full(self, waiting: int) -> bool:
        return waiting >= self.max_batch

    def due_at(self, oldest_enqueued: float) -> float:
        """When a batch that is not full runs anyway (clock seconds)."""
        return oldest_enqueued + self.max_wait_ms / 1000


@dataclass
class _Pending(Generic[Item, Result]):
    item: Item
    future: asyncio.Future[Result]
    enqueued: float
    deadline: float | None


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return False
    return True


class MicroBatcher(Generic[Item, Result]):
    """Collects submitted items into batches for ``run`` (called on one worker thread, one batch at a time)."""

    def __init__(
        self,
        run: RunBatch[Item, Result],
        policy: BatchPolicy,
        *,
        max_queue: int = 1024,
        metrics: BatchMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        wait_for_more: WaitForMore = wait_event,
        executor: Executor | None = None,
    ) -> None:
        self.policy = policy
        self.max_queue = max_queue
        self.metrics = metrics
        self._run = run
        self._clock = clock
        self._wait_for_more = wait_for_more
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._owns_executor = executor is None
        self._queue: deque[_Pending[Item, Result]] = deque()
        self._arrived = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._announced = 0  # requests on their way that will be queued (or refused) shortly
        self._adaptive = False  # set by the first announcement: from then on, no announced request, no wait

    @property
    def depth(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work(), name="micro-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        for pending in self._queue:
            if not pending.future.done():
                pending.future.cancel()
        self._queue.clear()
        if self._owns_executor:
            self._executor.shutdown(wait=False)
        if self.metrics is not None:
            self.metrics.flush()

    @contextlib.contextmanager
    def expecting(self) -> Iterator[None]:
        """Announce one request for the time its body is read and parsed; queue it (:meth:`enqueue`) inside."""
        self._adaptive = True
        self._announced += 1
        try:
            yield
        finally:
            self._announced -= 1
            self._arrived.set()  # a filling batch re-checks whether anything is still on its way

    def enqueue(self, item: Item, *, deadline: float | None = None) -> asyncio.Future[Result]:
        """Queue one item; its own result arrives on the future. ``deadline`` is on this batcher's clock."""
        if len(self._queue) >= self.max_queue:
            raise QueueFull(f"{len(self._queue)} requests already waiting (limit {self.max_queue})")
        self.start()
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(item, future, self._clock(), deadline))
        self._arrived.set()
        return future

    async def submit(self, item: Item, *, deadline: float | None = None) -> Result:
        """Queue one item and wait for its own result."""
        return await self.enqueue(item, deadline=deadline)

    async def _work(self) -> None:
        while True:
            while not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
            await self._fill()
            await self._dispatch(self._take())

    async def _fill(self) -> None:
        """Wait for more items until the batch is full or the oldest has waited ``max_wait_ms``."""
        due = self.policy.due_at(self._queue[0].enqueued)
        while not self.policy.full(len(self._queue)):
            if self._adaptive and self._announced == 0:
                return  # nothing more is on its way: waiting would only delay what is queued
            remaining = due - self._clock()
            if remaining <= 0:
                return
            self._arrived.clear()
            if not await self._wait_for_more(self._arrived, remaining):
                return

    def _take(self) -> list[_Pending[Item, Result]]:
        batch: list[_Pending[Item, Result]] = []
        now = self._clock()
        while self._queue and len(batch) < self.policy.max_batch:
            pending = self._queue.popleft()
            if pending.future.done():  # the caller went away
                continue
            if pending.deadline is not None and pending.deadline <= now:
                pending.future.set_exception(DeadlineExceeded("the deadline passed while the request was queued"))
                continue
            batch.append(pending)
        return batch

    async def _dispatch(self, batch: list[_Pending[Item, Result]]) -> None:
        if not batch:
            return
        if self.metrics is not None:
            self.metrics.record(batch_size=len(batch), queue_depth=len(self._queue))
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self._executor, self._run, [p.item for p in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"the model returned {len(results)} results for a batch of {len(batch)}")
        except Exception as exc:  # one failed run fails its batch, not the batcher
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        for pending, result in zip(batch, results, strict=True):
            if pending.future.done():
                continue
            if isinstance(result, Exception):
                pending.future.set_exception(result)
            else:
                pending.future.set_result(result)
