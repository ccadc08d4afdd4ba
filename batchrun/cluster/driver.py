"""The driver of a cluster run: shards out as workers need them, deliveries in, the one sink kept here.

Inputs: the Ray target, the loaded spec and run options, the key, the price catalog, the open sink,
progress counters, the pending work and the spending account (as `jobrun.run_pool` takes them).
Output: a `ClusterRun` (how the run stopped, replies a write error held back), like a `WorkerPool`.
Invariants:
- records are dealt in bounded shards (`shards.shard_size`): each worker starts with one and gets the
  next (a lost worker's orphans first) when it has fewer than half a shard queued beyond the records
  its pool has taken, or `close` when nothing is left; the run ends when every worker's run has ended; a stop deals nothing more;
- the driver alone writes: each delivery's sent markers, then its finished exchanges, through the
  same `save_finished` a single-process run uses; resume and durability are the sink's, unchanged;
- a worker that dies (actor or process) loses nothing: the requests it held (in flight or queued)
  go back to pending and are dealt to the next worker that is idle; its slots go back to the desk;
  none of them had been written, so none is written twice;
- the first stop a worker meets (budget, deadline, bad key, quota, ...) stops every worker.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from batchrun.cluster.budget import BudgetLimits, Reserved, Settlement
from batchrun.cluster.desk import DeskLimits, Grant, LimiterDesk, Return, Want
from batchrun.cluster.deskkeys import Aside, KeyNews
from batchrun.cluster.shards import ShardBook, shard_size
from batchrun.cluster.target import RayTarget, start_ray
from batchrun.cluster.worker import Delivery, ShardWorker, WorkerSetup
from batchrun.output.live import LiveFile, live_path
from batchrun.output.progress import Progress, make_display
from batchrun.output.sink import Sink
from batchrun.running.clock import MonotonicClock
from batchrun.running.hooks import ProgressTicker
from batchrun.running.pool import PoolStop, StopReason
from batchrun.running.saving import Finished, save_finished
from batchrun.running.writeerrors import write_error_message

log = logging.getLogger(__name__)

TICK_S = 0.5  # how often the driver flushes the journal and refreshes progress while it waits


class RayDesk:
    """A worker's view of the desk actor: each call awaited on the worker's own event loop."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    async def lease(self, worker: str, wants: list[Want]) -> list[Grant]:
        return await self._handle.lease.remote(worker, wants)

    async def report(self, returns: list[Return], hold_backs: dict[int, float] | None = None,
                     pause: tuple[float, str] | None = None, asides: list[Aside] | None = None) -> KeyNews | None:
        return await self._handle.report.remote(returns, hold_backs, pause, asides)

    async def reserve(self, worker: str, worsts: list[float | None]) -> Reserved:
        return await self._handle.reserve.remote(worker, worsts)

    async def settle(self, worker: str, settlements: list[Settlement]) -> None:
        await self._handle.settle.remote(worker, settlements)


@dataclass
class ClusterRun:
    """How a cluster run ended, as a `WorkerPool` tells it."""

    stop: PoolStop = field(default_factory=PoolStop)
    held: list[Finished] = field(default_factory=list)
    lost_workers: int = 0


@dataclass(frozen=True)
class ClusterJob:
    """What the driver sends and how: the records, each worker's setup, the limits, the deadline, the budget."""

    records: Iterable[Any]  # read one shard at a time as workers need them
    setup: WorkerSetup
    limits: DeskLimits
    deadline_s: float | None
    budget: BudgetLimits = BudgetLimits()


def run_on_cluster(target: RayTarget, make_job: Callable[[int], ClusterJob], sink: Sink, progress: Progress,
                   options: Any, outside: list[PoolStop] | None = None) -> ClusterRun:
    """Start or join the cluster, run the job (made for its number of workers) on it, and leave it. A stop
    appended to `outside` from another thread (a lost bucket lease) stops every worker at the next tick."""
    ray, workers = start_ray(target)
    log.info("Ray cluster %s: %d workers", target.text, workers)
    try:
        return ClusterDriver(ray, make_job(workers), sink, progress, outside).run(workers, options)
    finally:
        ray.shutdown()


class ClusterDriver:
    """Deals shards as workers need them, drains deliveries into the sink, deals a lost worker's requests again."""

    def __init__(self, ray: ModuleType, job: ClusterJob, sink: Sink, progress: Progress,
                 outside: list[PoolStop] | None = None) -> None:
        self.ray, self.job, self.sink, self.progress = ray, job, sink, progress
        self.outside = [] if outside is None else outside  # stops from other threads, applied at a tick
        self.book = ShardBook()
        self.result = ClusterRun()
        self.started = time.monotonic()
        self.workers: dict[str, Any] = {}
        self.drains: dict[Any, str] = {}  # a drain call in flight -> its worker
        self.closed: set[str] = set()  # workers told that nothing more is coming
        self.interrupted = False
        self.warned: set[str] = set()

    def run(self, count: int, options: Any) -> ClusterRun:
        if options.handle_signals:  # SIGTERM stops the run as Ctrl-C does: requests in flight are saved
            signal.signal(signal.SIGTERM, signal.default_int_handler)
        self._start_actors(count)
        concurrency = self.job.limits.concurrency  # each worker's pool runs as many tasks, each taking a record
        self.book = ShardBook(self.job.records, shard_size(concurrency, count), taken=concurrency)
        self.progress.started = self.progress.clock()  # the rate counts sending time, not the cluster's start
        for name, shard in self.book.first_shards(list(self.workers)).items():
            self._start_shard(name, shard)
            self._top_up(name)
        ticker, display, live = self._ticker(options)
        display.start()
        try:
            self._drain_all(ticker)
        finally:
            display.stop()
            live.remove()
        for warning in self.ray.get(self.desk.key_warnings.remote()):  # one a stopping worker never passed on
            self._warn_once(warning)
        grants, leases = self.ray.get(self.desk.counts.remote())
        log.info("the limiter desk made %d grants in %d leases", grants, leases)
        if self.job.budget.capped:
            reservations, calls = self.ray.get(self.desk.budget_counts.remote())
            log.info("the desk reserved budget for %d requests in %d calls", reservations, calls)
        return self.result

    def _warn_once(self, warning: str) -> None:
        if warning not in self.warned:
            self.warned.add(warning)
            log.warning("%s", warning)

    def _ticker(self, options: Any) -> tuple[ProgressTicker, Any, LiveFile]:
        display = make_display(options.progress, self.progress, options.status_every)
        live = LiveFile(live_path(self.sink.out_dir, self.sink.run_id), self.progress)
        ticker = ProgressTicker(sink=self.sink, live=live, display=display, every=options.status_every,
                                clock=MonotonicClock())
        return ticker, display, live

    def _start_actors(self, count: int) -> None:
        ray = self.ray
        self.desk = ray.remote(LimiterDesk).options(num_cpus=0).remote(self.job.limits, None, self.job.budget)
        actor = ray.remote(ShardWorker).options(num_cpus=1, max_restarts=0)
        for i in range(count):
            name = f"worker-{i + 1}"
            self.workers[name] = actor.remote(name, RayDesk(self.desk), self.job.setup)
        pids = ray.get([worker.pid.remote() for worker in self.workers.values()])
        for name, pid in zip(self.workers, pids):
            log.info("Ray %s started (pid %d)", name, pid)

    def _start_shard(self, name: str, shard: list[Any]) -> None:
        deadline = self.job.deadline_s
        left = None if deadline is None else max(0.0, deadline - (time.monotonic() - self.started))
        self.workers[name].start.remote(shard, left)
        if name not in self.drains.values():
            self.drains[self.workers[name].drain.remote()] = name

    def _top_up(self, name: str) -> None:
        """A sending worker low on queued requests gets the next shard, or `close` if none is left."""
        if name in self.closed or self.book.stopped or not self.book.needs_more(name):
            return
        shard = self.book.next_shard(name)
        if shard:
            self._start_shard(name, shard)
            return
        self.closed.add(name)
        self.workers[name].close.remote()

    def _deal_idle(self) -> None:
        """Each worker not sending gets a shard (orphans first) and, if that was the last, `close`."""
        for name in [name for name in self.workers if name not in self.drains.values()]:
            shard = self.book.next_shard(name)
            if shard:
                self._start_shard(name, shard)
                self._top_up(name)

    # -- draining -------------------------------------------------------------------------------

    def _drain_all(self, ticker: ProgressTicker) -> None:
        while self.drains:
            try:
                ready, _ = self.ray.wait(list(self.drains), num_returns=1, timeout=TICK_S)
                for ref in ready:
                    self._take(self.drains.pop(ref), ref)
                if self.outside and self.result.stop.reason is None:
                    self._stop_all(self.outside[0])
                ticker()
            except KeyboardInterrupt:
                if self.interrupted:
                    raise
                self.interrupted = True
                self._stop_all(PoolStop(StopReason.INTERRUPTED, "interrupted by Ctrl-C"))
            except OSError as exc:  # the journal's flush on a tick
                self._stop_all(PoolStop(StopReason.WRITE, write_error_message(exc, self.sink.out_dir)))

    def _take(self, name: str, ref: Any) -> None:
        try:
            delivery: Delivery = self.ray.get(ref)
        except self.ray.exceptions.RayActorError:
            self._lost(name)
            return
        self._save(name, delivery)
        if not delivery.done:
            self.drains[self.workers[name].drain.remote()] = name
            self._top_up(name)
            return
        self._ended(name, delivery)

    def _save(self, name: str, delivery: Delivery) -> None:
        progress = self.progress
        progress.retries += delivery.retries
        progress.errors.update(delivery.errors)
        for warning in delivery.warnings:
            self._warn_once(warning)
        try:
            for request_id in delivery.sent:
                self.book.sent(name, request_id)
                self.sink.record_sent(request_id)
        except OSError as exc:
            self._stop_all(PoolStop(StopReason.WRITE, write_error_message(exc, self.sink.out_dir)))
        for done in delivery.finished:
            self.book.finished(name, done.record.row_id)
            progress.spend_usd += done.cost or 0.0
            progress.tokens += (done.reply.usage.total or 0) if done.reply.usage else 0
            self._save_one(done)
        progress.in_flight = self.book.in_flight()

    def _save_one(self, done: Finished) -> None:
        """Write a finished exchange; once a write has failed, hold it (and every later one) instead."""
        if self.result.held:
            self.result.held.append(done)
            return
        try:
            save_finished(self.sink, done)
        except OSError as exc:
            self.result.held.append(done)
            self._stop_all(PoolStop(StopReason.WRITE, write_error_message(exc, self.sink.out_dir)))
            return
        for _ in range(done.rows):
            self.progress.count(done.status)

    def _ended(self, name: str, delivery: Delivery) -> None:
        """A worker's run ended: take its stop, or give it the orphans of a lost worker."""
        if delivery.failure is not None:
            raise RuntimeError(f"Ray {name} failed: {delivery.failure}")
        self.book.ended(name)
        self.closed.discard(name)
        self.progress.in_flight = self.book.in_flight()
        stop = delivery.stop
        if stop is not None:
            self.result.stop.abandoned += stop.abandoned
            self.result.stop.in_flight_abandoned += stop.in_flight_abandoned
            if stop.reason is not None:
                self._stop_all(stop)
        self._deal_idle()

    def _lost(self, name: str) -> None:
        """A worker died: its requests back to pending for the others, its slots back to the desk."""
        del self.workers[name]
        self.closed.discard(name)
        self.result.lost_workers += 1
        orphans, sent = self.book.lost(name)
        self.progress.in_flight = self.book.in_flight()
        self.ray.get(self.desk.forget.remote(name))
        log.warning("Ray %s was lost; its %d unfinished requests go back to pending and are sent by the other "
                    "workers (%d of them were in flight and may be billed twice)", name, orphans, sent)
        if not self.workers:
            self._stop_all(PoolStop(StopReason.INTERRUPTED, "every Ray worker was lost"))
        self._deal_idle()

    def _stop_all(self, stop: PoolStop) -> None:
        """The first stop of the run stops every worker (requests in flight finish and are delivered)."""
        if self.result.stop.reason is not None and stop.reason is not StopReason.INTERRUPTED:
            return
        self.result.stop.reason, self.result.stop.message = stop.reason, stop.message
        self.book.stop()
        if stop.reason is not None:
            log.warning("stopping (%s)%s", stop.reason.value, f": {stop.message}" if stop.message else "")
        for worker in self.workers.values():
            worker.stop.remote(stop.reason, stop.message)
