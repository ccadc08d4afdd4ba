"""A cluster worker: the same worker pool, on a shard of the pending records, limited by the desk.

Inputs: shards of records (`start`: more may come while it sends; `close`: no more), a desk (the job's
one limiter) and a `WorkerSetup` (provider, retry policy, pool settings, prices, whether the run has a
budget). Outputs: `Delivery`s the driver
drains: the sent markers and the finished exchanges since the last drain, and whether its run (every
shard it was given, until `close` or a stop) is done and why it stopped. Invariants:
- a worker writes nothing: every reply goes back to the driver, which keeps the one sink;
- a request is marked sent before its exchange is delivered (the order the driver writes them in);
- a request the pool gives up on (a stop) is neither delivered nor marked finished: it stays pending;
- with a budget, every request reserves its worst case in the desk's one account (`LeasedBudget`).
The class is plain async code; `driver.py` turns it into a Ray actor.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import anyio

from batchrun.cluster.leased import Desk, LeasedLimiter
from batchrun.cluster.leasedbudget import BudgetDesk, LeasedBudget
from batchrun.cluster.leasedkeys import LeasedKeys
from batchrun.output.images import ImageFile
from batchrun.output.progress import Progress
from batchrun.providers.registry import ProviderSettings, build_provider, build_transport
from batchrun.records import RequestRecord, ResultRecord
from batchrun.running.account import RequestPrices, SpendingAccount
from batchrun.running.clock import MonotonicClock
from batchrun.running.hooks import ModelStatusWarner, RunHooks
from batchrun.running.http import make_client
from batchrun.running.keys import LaneProvider
from batchrun.running.pool import PoolSettings, PoolSink, PoolStop, StopReason, WorkerPool
from batchrun.running.retry import RetryPolicy
from batchrun.running.saving import Finished


@dataclass(frozen=True)
class WorkerSetup:
    """Everything a worker builds its pool from (sent once, when the actor starts)."""

    provider: ProviderSettings
    policy: RetryPolicy
    pool: PoolSettings
    prices: RequestPrices
    budgeted: bool = False  # the run has a cap: reservations go to the desk's account
    keys: tuple[tuple[str, str], ...] = ()  # a key pool's (variable, key) pairs; empty: the provider's one key


@dataclass
class Delivery:
    """What a worker hands the driver in one drain."""

    sent: list[str] = field(default_factory=list)  # request ids marked sent, in order
    finished: list[Finished] = field(default_factory=list)
    retries: int = 0  # since the last drain
    errors: collections.Counter[str] = field(default_factory=collections.Counter)  # retried errors by kind
    done: bool = False  # the run ended: closed and sent, or stopped (its stop, if any, in `stop`)
    stop: PoolStop | None = None
    failure: str | None = None  # an unexpected error that ended the shard
    warnings: list[str] = field(default_factory=list)  # the desk's, of its keys: logged by the driver


class _Outbox:
    """The pool's sink on a worker: it writes nothing, it collects for the driver."""

    out_dir = Path(".")

    def __init__(self, on_arrival: Callable[[], None]) -> None:
        self.delivery = Delivery()
        self._on_arrival = on_arrival

    def record_sent(self, request_id: str) -> None:
        self.delivery.sent.append(request_id)
        self._on_arrival()  # the driver journals it before the reply comes: a lost worker's sends are known

    def save(self, _sink: PoolSink, done: Finished) -> None:
        self.delivery.finished.append(done)

    def write_result(self, result: ResultRecord) -> None:
        raise NotImplementedError("a cluster worker writes no result: the driver does")

    def write_image(self, data: bytes, mime: str, output_name: str | None, row_id: str) -> ImageFile:
        raise NotImplementedError("a cluster worker writes no image: the driver does")


class ClusterDesk(Desk, BudgetDesk, Protocol):
    """The desk a worker leases grants and reserves budget from."""


class ShardWorker:
    """Sends the shards it is given, refilled as it goes; see the module docstring."""

    def __init__(self, name: str, desk: ClusterDesk, setup: WorkerSetup) -> None:
        self.name, self._desk, self._setup = name, desk, setup
        self._outbox = _Outbox(self._wake)
        self._progress = Progress(total=0)
        self._arrived = anyio.Event()
        self._pool: WorkerPool | None = None
        self._running = False
        self._closed = self._stopped = False
        self._queue: collections.deque[RequestRecord] = collections.deque()
        self._more = anyio.Event()  # a shard came, or `close`, or `stop`
        self._deadline_at: float | None = None
        self._warner = ModelStatusWarner()
        self._account = SpendingAccount(setup.prices)  # prices and adds up: the cap is the desk's

    def pid(self) -> int:
        return os.getpid()

    async def start(self, records: list[RequestRecord], deadline_s: float | None = None) -> None:
        """Add a shard to send (in the background: `drain` follows it); the run goes on until `close`."""
        if self._stopped:  # the run was stopped: a shard sent before the driver knew stays pending
            if not self._running:  # a stop Ray ran before the first start: the drain waits for an end
                self._end(None)
            return
        self._queue.extend(records)
        self._deadline_at = None if deadline_s is None else time.monotonic() + deadline_s
        self._more.set()
        if self._running:
            return
        self._running = True  # `close` and `stop` stand until the run ends: Ray may run them before this call
        # a Ray actor's calls run on asyncio: the run outlives this call as a task of its loop
        self._task = asyncio.get_running_loop().create_task(self.run_shard())

    async def close(self) -> None:
        """Nothing more is coming: end the run once the shards queued are sent."""
        self._closed = True
        self._more.set()

    async def run_shard(self) -> None:
        try:
            stop = await self._send_shards()
        except Exception as exc:  # delivered to the driver, which stops the run with it
            self._outbox.delivery.failure = f"{type(exc).__name__}: {exc}"
            stop = None
        self._end(stop)

    def _end(self, stop: PoolStop | None) -> None:
        """The run ended: what is still queued was given up on (a stop) and stays pending."""
        self._queue.clear()
        self._outbox.delivery.done, self._outbox.delivery.stop = True, stop
        self._running = self._closed = False
        self._stopped = self._stopped or (stop is not None and stop.reason is not None)  # for good: see `start`
        self._arrived.set()

    async def _send_shards(self) -> PoolStop | None:
        """One pool after another while shards come; a pool ends when the queue runs dry before a refill."""
        stop: PoolStop | None = None
        while not self._stopped:
            if self._queue:
                stop = await self._send(_Draining(self._queue), self._deadline_left())
                if stop.reason is not None:
                    return stop
            elif self._closed:
                return stop
            else:
                await self._more.wait()
                self._more = anyio.Event()
        return stop

    def _deadline_left(self) -> float | None:
        return None if self._deadline_at is None else max(0.0, self._deadline_at - time.monotonic())

    async def _send(self, records: Iterable[RequestRecord], deadline_s: float | None) -> PoolStop:
        setup, clock = self._setup, MonotonicClock()
        limiter = LeasedLimiter(self._desk, self.name, clock=clock, on_news=lambda news: keys.hear(news))
        keys = LeasedKeys(limiter, _lane_providers(setup), clock, self._warned)
        budget = LeasedBudget(self._desk, self.name) if setup.budgeted else None
        settings = dataclasses.replace(setup.pool, deadline_s=deadline_s, handle_signals=False)
        pool = WorkerPool(
            keys=keys, client=None, policy=setup.policy,
            sink=self._outbox, progress=self._progress, clock=clock,
            account=self._account, settings=settings,
            hooks=RunHooks(on_reply=self._warner), save=self._saved, budget=budget,
        )
        self._pool = pool
        async with anyio.create_task_group() as serving:
            serving.start_soon(limiter.serve)
            if budget is not None:
                serving.start_soon(budget.serve)
            async with make_client(build_transport(setup.provider), setup.provider.timeout_s) as client:
                pool.client = client
                stop = await pool.run(records)
            serving.cancel_scope.cancel()
        with anyio.CancelScope(shield=True):
            await limiter.flush()
            if budget is not None:
                await budget.flush()
        return stop

    def _saved(self, sink: PoolSink, done: Finished) -> None:
        self._outbox.save(sink, done)
        self._wake()

    def _warned(self, warning: str) -> None:
        self._outbox.delivery.warnings.append(warning)
        self._wake()

    def _wake(self) -> None:
        self._arrived.set()

    async def drain(self) -> Delivery:
        """What arrived since the last drain: sent markers, finished exchanges (waiting for one), the shard's end."""
        delivery = self._outbox.delivery
        while not (delivery.sent or delivery.finished or delivery.done or delivery.warnings):
            await self._arrived.wait()
            self._arrived = anyio.Event()
            delivery = self._outbox.delivery
        self._outbox.delivery = Delivery()
        delivery.retries, self._progress.retries = self._progress.retries, 0
        delivery.errors, self._progress.errors = self._progress.errors, collections.Counter()
        return delivery

    async def stop(self, reason: StopReason, message: str = "") -> None:
        """Stop sending: requests in flight finish and are delivered; the rest stay pending."""
        self._stopped = True
        self._more.set()
        if self._pool is not None and self._running:
            self._pool.request_stop(reason, message)


class _Draining:
    """The pool's pending records: popped from the worker's queue, which refills may extend while it runs."""

    def __init__(self, queue: collections.deque[RequestRecord]) -> None:
        self._queue = queue

    def __iter__(self) -> _Draining:
        return self

    def __next__(self) -> RequestRecord:
        if not self._queue:
            raise StopIteration
        return self._queue.popleft()


def _lane_providers(setup: WorkerSetup) -> list[tuple[str | None, LaneProvider]]:
    """An adapter for each key of the pool, built with its key; else the provider's one."""
    if not setup.keys:
        return [(None, build_provider(setup.provider))]
    return [(env, build_provider(dataclasses.replace(setup.provider, api_key=key))) for env, key in setup.keys]
