"""The worker pool: pending RequestRecords in, final results out through the sink.

Inputs: an iterator of pending records (streamed from the manifest), a provider, one httpx client, a
limiter, a retry policy, a sink, progress counters, a spending account, run hooks, pool settings and
the clock every wait of the pool goes through (deadline, ticks, retry waits, pauses, the grace
period after Ctrl-C). Invariants:
- memory is bounded by the concurrency, not by the manifest: a bounded stream feeds the workers;
- a result is written only once final (ok / blocked / invalid / failed after the last attempt);
- a request the run gives up on because it is stopping (deadline, bad key, daily quota, Ctrl-C,
  budget) is left pending, never recorded: the next run sends it;
- the budget is kept by reserving each request's worst-case cost before it is sent: in the account, or
  in a `SharedBudget` held for a whole cluster (the account then only prices and adds up);
- a reply is fanned out to every row that shares its request (`saving.save_finished`);
- a reply that arrived is never dropped: when writing it fails (disk full, read-only folder), the run
  stops sending and the reply is held in `held` for the job to write once it can;
- the first replies of a run are watched by a `ConfigProbe`: when they are all 400/404-like, the
  endpoint or model is wrong, not the requests; they are not recorded, and the run stops;
- each request is sent with a key of the `KeyPool` (a pool of one without several keys): a key that
  fails authentication or spends its daily quota is set aside while another can send, and its
  request is sent again with another key, neither recorded nor counted as an attempt.
The pool knows no provider JSON: it acts on `ProviderReply`'s outcome and flags alone.
"""

from __future__ import annotations

import enum
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel
import httpx

from batchrun.errors import RequestAbandoned, duration_text, server_delay_message
from batchrun.outcomes import Outcome, Status
from batchrun.output.images import ImageFile
from batchrun.output.progress import Progress
from batchrun.records import ProviderReply, RequestRecord, ResultRecord
from batchrun.running.account import SpendingAccount
from batchrun.running.clock import Clock
from batchrun.running.hooks import RunHooks
from batchrun.running.inputbytes import DEFAULT_MB, InputBytesBudget
from batchrun.running.keys import KeyLane, KeyPool
from batchrun.running.limiter import Limiter
from batchrun.running.probe import ConfigProbe
from batchrun.running.retry import RetryPolicy, send_with_retries
from batchrun.running.saving import Finished, save_finished
from batchrun.running.writeerrors import write_error_message

log = logging.getLogger(__name__)

T = TypeVar("T")


class StopReason(enum.Enum):
    BUDGET = "budget"
    DEADLINE = "deadline"
    AUTH = "auth"
    QUOTA = "quota"
    INTERRUPTED = "interrupted"
    WRITE = "write"
    CONFIG = "config"
    BILLING = "billing"
    LEASE = "lease"  # a bucket job's lease was taken over by another run


# The outcomes that stop the run at once, and the stop line when the server said nothing.
_STOPPING = {
    Outcome.STOP_AUTH: (StopReason.AUTH, "authentication failed"),
    Outcome.STOP_QUOTA: (StopReason.QUOTA, "daily quota exhausted"),
}


class _KeySetAside(Exception):
    """The key a request was sent with was set aside (bad key, spent quota): send it with another."""


class PoolProvider(Protocol):
    """What the pool needs of a provider: one exchange, and where it sends (for a message)."""

    async def send(self, client: httpx.AsyncClient, record: RequestRecord) -> ProviderReply: ...


class SharedBudget(Protocol):
    """A budget held for several pools (a cluster's): reservations may wait for another pool's settlements."""

    async def reserve(self, worst: float | None) -> str | None:
        """Reserve a worst case, waiting as long as others' settlements may make room; None once reserved,
        else why the run stops (nothing is reserved anywhere and it still does not fit)."""
        ...

    def settle(self, worst: float | None, actual: float | None) -> None: ...


class PoolSink(Protocol):
    """What the pool needs of the sink: a sent marker, and rows and images to write."""

    out_dir: Path

    def record_sent(self, request_id: str) -> None: ...

    def write_result(self, result: ResultRecord) -> None: ...

    def write_image(self, data: bytes, mime: str, output_name: str | None, row_id: str) -> ImageFile: ...


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """How the pool runs; every duration is in seconds of the pool's clock."""

    concurrency: int
    deadline_s: float | None = None  # from the start of `run`
    grace_s: float = 30.0  # after the first Ctrl-C, for the requests in flight
    handle_signals: bool = False  # SIGINT / SIGTERM: a real run only, never a test
    config_check: bool = True  # stop when the first replies are all 400/404-like
    input_image_bytes: int = DEFAULT_MB * 1_000_000  # input image bytes in flight at once
    epoch_s: float | None = None  # the unix time of clock.now() == 0 (None: read from time.time at start)
    wait_quota: bool = False  # park every sender until a spent daily quota resets, if before the deadline


def billing_message(reply: ProviderReply) -> str:
    """The stop line of a billing error: what the server said, and what to do."""
    said = f" ({reply.error_message})" if reply.error_message else ""
    return (f"billing: HTTP {reply.http_status}, the account cannot pay for more requests{said}; add credit or "
            "turn on postpaid billing for the key's project, then run again; nothing was recorded")


@dataclass
class PoolStop:
    reason: StopReason | None = None
    message: str = ""
    abandoned: int = 0
    in_flight_abandoned: int = 0  # sends cut off by a second Ctrl-C or the end of the grace period


class WorkerPool:
    """Sends pending records with `settings.concurrency` workers until none is left or the run stops."""

    def __init__(self, *, provider: PoolProvider | None = None, client: httpx.AsyncClient | None,
                 limiter: Limiter | None = None, policy: RetryPolicy, sink: PoolSink, progress: Progress,
                 clock: Clock, account: SpendingAccount, settings: PoolSettings, hooks: RunHooks = RunHooks(),
                 keys: KeyPool | None = None, save: Callable[[PoolSink, Finished], None] = save_finished,
                 budget: SharedBudget | None = None) -> None:
        """Either `keys` (a pool of keys, each with its adapter and limiter) or one `provider` and `limiter`.
        `save`: how a finished exchange is written (a cluster worker hands it to the driver instead);
        `budget`: a cluster's budget, reserved in instead of the account's cap."""
        if keys is None:
            if provider is None or limiter is None:
                raise ValueError("give a provider and a limiter, or a key pool")
            keys = KeyPool.single(provider, limiter, clock)
        self.keys = keys
        first = keys.lanes[0]
        self.provider, self.client, self.limiter, self.policy = first.provider, client, first.limiter, policy
        self._save_finished = save
        self.sink, self.progress, self.clock = sink, progress, clock
        self.account, self.settings, self.hooks, self.budget = account, settings, hooks, budget
        self.stop = PoolStop()
        self.probe = ConfigProbe(enabled=settings.config_check)
        self.input_bytes = InputBytesBudget(settings.input_image_bytes)
        self.held: list[Finished] = []  # replies that arrived but could not be written
        self._waits: set[anyio.CancelScope] = set()
        self._settled = anyio.Event()
        self._interrupted = False
        self._epoch = settings.epoch_s if settings.epoch_s is not None else time.time() - clock.now()
        self._deadline_at: float | None = None  # on the clock
        self._from_thread: tuple[StopReason, str] | None = None  # a stop asked by another thread, not yet applied

    # -- stopping -------------------------------------------------------------------------------

    def request_stop(self, reason: StopReason, message: str = "") -> None:
        """Stop sending; wake every worker that is only waiting (a slot, a pause, a retry backoff)."""
        if self.stop.reason is not None:
            return
        self.stop.reason, self.stop.message = reason, message
        log.warning("stopping (%s)%s", reason.value, f": {message}" if message else "")
        for scope in list(self._waits):
            scope.cancel()

    def stop_from_thread(self, reason: StopReason, message: str = "") -> None:
        """`request_stop` from another thread (a bucket lease renewed in the background): applied at the pool's
        next tick (`hooks.on_tick`) or when a worker takes its next record (then at once if the pool has not begun)."""
        self._from_thread = (reason, message)  # one assignment, atomic: the event loop reads it

    def _apply_stop_from_thread(self) -> None:
        if self._from_thread is not None and self.stop.reason is None:
            self.request_stop(*self._from_thread)

    async def _wait(self, awaitable_factory: Callable[[], Awaitable[T]]) -> T:
        """Run a wait that a stop cancels; raise RequestAbandoned when it was cancelled by one."""
        if self.stop.reason is not None:
            raise RequestAbandoned
        with anyio.CancelScope() as scope:
            self._waits.add(scope)
            try:
                return await awaitable_factory()
            finally:
                self._waits.discard(scope)
        raise RequestAbandoned  # reached only when the scope was cancelled by request_stop

    def interrupt(self, name: str = "Ctrl-C") -> None:
        """First call: stop sending, give requests in flight `grace_s`. Second: abandon them now."""
        if self._interrupted:
            log.warning("%s again: abandoning %d requests in flight", name, self.progress.in_flight)
            self._workers.cancel_scope.cancel()
            return
        self._interrupted = True
        self.stop.reason = None  # Ctrl-C overrides any earlier stop: exit 130
        self.request_stop(StopReason.INTERRUPTED, f"interrupted by {name}")
        log.warning("waiting up to %gs for %d requests in flight (Ctrl-C again abandons them)",
                    self.settings.grace_s, self.progress.in_flight)
        self._background.start_soon(self._end_grace)

    # -- the run --------------------------------------------------------------------------------

    async def run(self, records: Iterable[RequestRecord]) -> PoolStop:
        # Workers pull from the pending iterator themselves: `next()` is synchronous, so two workers
        # never step it at once, and no stream or producer task stands between them and the manifest.
        self._records: Iterator[RequestRecord] = iter(records)
        async with anyio.create_task_group() as background:
            self._background = background
            self._start_background(background)
            async with anyio.create_task_group() as workers:
                self._workers = workers
                for _ in range(self.settings.concurrency):
                    workers.start_soon(self._work)
            background.cancel_scope.cancel()
        self._settle_probe()
        return self.stop

    def _start_background(self, background: anyio.abc.TaskGroup) -> None:
        if self.settings.handle_signals:
            background.start_soon(self._watch_signals)
        if self.settings.deadline_s is not None:
            self._deadline_at = self.clock.now() + self.settings.deadline_s
            background.start_soon(self._watch_deadline, self._deadline_at)
        if self.hooks.on_tick is not None:
            background.start_soon(self._tick, self.hooks.on_tick)

    def _settle_probe(self) -> None:
        """At the end: replies still held by the probe were all the run got, a configuration error."""
        if self.probe.cleared or not self.probe.held:
            return
        if self.stop.reason is None or self.stop.reason is StopReason.CONFIG:
            self.stop.reason = None
            self.request_stop(StopReason.CONFIG, self._config_message())
        self.stop.abandoned += sum(done.rows for done in self.probe.release())

    def _next_record(self) -> RequestRecord | None:
        self._apply_stop_from_thread()
        if self.stop.reason is not None:
            return None
        return next(self._records, None)

    async def _work(self) -> None:
        while (record := self._next_record()) is not None:
            await self._process(record)
            # a transport that answers without suspending (the simulator in process, a mock) would
            # otherwise starve the signal and deadline watchers for the whole run
            await anyio.lowlevel.checkpoint()

    async def _process(self, record: RequestRecord) -> None:
        worst = self.account.worst_case(record)
        if not await self._reserve(worst):
            self.stop.abandoned += 1
            return
        started = self._timestamp()
        try:
            reply, attempts = await self._attempts(record)
        except RequestAbandoned:
            self._settle(worst, None)
            self.stop.abandoned += 1
            return
        await self._record(record, reply, attempts, started, worst)

    def _timestamp(self) -> float:
        """Unix seconds on the pool's clock: a result's started_at and finished_at."""
        return self._epoch + self.clock.now()

    async def _attempts(self, record: RequestRecord) -> tuple[ProviderReply, int]:
        """The first attempt directly; tenacity's retry loop only for a reply worth retrying.

        Most requests succeed at once, and building a retry loop for each cost about a tenth of the
        runner's time per request (bench/RESULTS.md). The loop is handed the first reply as its own
        first attempt, so its attempt count and backoff schedule are the same as if it had sent it.
        """
        reply = await self._attempt(record)
        if not reply.worth_another_attempt:
            return reply, 1
        first: ProviderReply | None = reply

        async def send() -> ProviderReply:
            nonlocal first
            if first is not None:
                replay, first = first, None
                return replay
            return await self._attempt(record)

        return await send_with_retries(send, self.policy, _InterruptibleClock(self), on_retry=self._count_retry)

    async def _reserve(self, worst: float | None) -> bool:
        """Reserve a request's worst case; while others are in flight, wait for them to settle first.

        The run stops for the budget only when nothing is in flight and the next request could still
        pass the cap: a small cap then runs fewer requests at once instead of stopping early.
        """
        if self.budget is not None:
            return await self._reserve_shared(self.budget, worst)
        account = self.account
        while not account.reserve(worst):
            if self.stop.reason is not None:
                return False
            if account.holders == 0:
                self.request_stop(StopReason.BUDGET, account.stop_message(worst))
                return False
            try:
                await self._wait(self._settled.wait)
            except RequestAbandoned:
                return False
        return True

    async def _reserve_shared(self, budget: SharedBudget, worst: float | None) -> bool:
        try:
            refusal = await self._wait(lambda: budget.reserve(worst))
        except RequestAbandoned:
            return False
        if refusal is not None:
            self.request_stop(StopReason.BUDGET, refusal)
            return False
        return True

    async def _attempt(self, record: RequestRecord) -> ProviderReply:
        """One exchange; again after a park (a spent quota's reset) or with another key (its key was set
        aside), neither an attempt of its own."""
        while True:
            try:
                reply = await self._attempt_once(record)
            except _KeySetAside:
                continue
            if reply.outcome is not Outcome.STOP_QUOTA:  # a quota stop raised; only a park comes back
                return reply

    async def _attempt_once(self, record: RequestRecord) -> ProviderReply:
        """One exchange, holding the record's input image bytes (if any) of the budget meanwhile."""
        size = sum(ref.bytes for ref in record.images)
        if not size:
            return await self._exchange(record)
        await self._wait(lambda: self.input_bytes.hold(size))
        try:
            return await self._exchange(record)
        finally:
            self.input_bytes.release(size)

    async def _exchange(self, record: RequestRecord) -> ProviderReply:
        estimate = record.estimate
        tokens = estimate.input_text + estimate.input_image + estimate.output_image
        lane, permit = await self._wait(lambda: self.keys.acquire(tokens=tokens, images=estimate.images_out))
        limiter = lane.limiter
        if self.stop.reason is not None:
            limiter.release(permit)
            raise RequestAbandoned
        try:
            self.sink.record_sent(record.request_id)
        except OSError as exc:
            limiter.release(permit)
            self.request_stop(StopReason.WRITE, write_error_message(exc, self.sink.out_dir))
            raise RequestAbandoned from None
        reply = await self._send(lane, record)
        actual = reply.usage.total if reply.usage is not None else None
        limiter.release(permit, actual_tokens=actual, rate_limited=reply.rate_limited, headroom=reply.headroom)
        return self._react(reply, lane)

    async def _send(self, lane: KeyLane, record: RequestRecord) -> ProviderReply:
        self.progress.in_flight += 1
        try:
            return await lane.provider.send(self.client, record)  # type: ignore[arg-type]
        except anyio.get_cancelled_exc_class():
            self.stop.in_flight_abandoned += 1
            raise
        finally:
            self.progress.in_flight -= 1

    def _react(self, reply: ProviderReply, lane: KeyLane) -> ProviderReply:
        if self.hooks.on_reply is not None:
            self.hooks.on_reply(reply)
        self._set_key_aside(reply, lane)
        if reply.outcome is Outcome.STOP_QUOTA and self._park(reply.retry_after_s):
            return reply
        if reply.outcome in _STOPPING:
            reason, unsaid = _STOPPING[reply.outcome]
            self.request_stop(reason, reply.error_message or unsaid)
            raise RequestAbandoned
        if reply.outcome is Outcome.STOP_BILLING:
            self.request_stop(StopReason.BILLING, billing_message(reply))
            raise RequestAbandoned
        if reply.worth_another_attempt:
            self.progress.errors[reply.error_kind or "retry"] += 1
            if reply.retry_after_s:
                self._hold_back(reply.retry_after_s, lane)
        return reply

    def _set_key_aside(self, reply: ProviderReply, lane: KeyLane) -> None:
        """A bad key or a spent quota while another key can send: raise _KeySetAside to send it again."""
        if reply.outcome is Outcome.STOP_AUTH and self.keys.drop(lane, _said(reply)):
            raise _KeySetAside
        if reply.outcome is Outcome.STOP_QUOTA and self.keys.set_aside(lane, reply.retry_after_s):
            raise _KeySetAside

    def _park(self, reset_in_s: float | None) -> bool:
        """With `wait_quota`, hold every sender back until a spent quota resets, when that comes before the
        deadline; whether it did (if not, the run stops as without it)."""
        if not self.settings.wait_quota or reset_in_s is None:
            return False
        if self._deadline_at is not None and self.clock.now() + reset_in_s >= self._deadline_at:
            return False
        if not self.progress.parked():
            log.warning("daily quota spent: parked until %s, when it resets; the run goes on then",
                        time.strftime("%H:%M", time.localtime(self._timestamp() + reset_in_s)))
        self.keys.pause_all(reset_in_s, "daily quota spent")
        self.progress.park(reset_in_s, self._timestamp() + reset_in_s)
        return True

    def _hold_back(self, delay_s: float, lane: KeyLane) -> None:
        """A server delay: past the cap, a quota signal that sets the key aside while another can send, else
        parks the run (wait_quota, before the deadline) or stops it (this request stays pending);
        when the key's limiter says so (a 429 storm, a limit overshot), a pause of every sender with that
        key (the run's, shown as paused, when it is the only key); else only this request's retry waits it out."""
        cap = self.policy.max_server_delay_s
        if delay_s > cap and self.keys.set_aside(lane, delay_s, f"was asked to wait {duration_text(delay_s)}"):
            raise _KeySetAside
        if delay_s > cap and self._park(delay_s):  # a quota signal: with wait_quota, waited out like one
            return
        if delay_s > cap:
            self.request_stop(StopReason.QUOTA, server_delay_message(delay_s, cap))
            raise RequestAbandoned
        pause = lane.limiter.hold_back(delay_s)
        if pause is not None and len(self.keys.lanes) == 1:
            self.progress.pause(pause.seconds, pause.reason)

    def _count_retry(self, *_args: object) -> None:
        self.progress.retries += 1

    async def _record(self, record: RequestRecord, reply: ProviderReply, attempts: int, started: float,
                      worst: float | None) -> None:
        cost = self.account.cost(record, reply.usage, reply.service_tier)
        self._settle(worst, cost)  # paid whether or not it can be written
        self.progress.spend_usd += cost or 0.0
        self.progress.tokens += (reply.usage.total or 0) if reply.usage else 0
        done = Finished(record, reply, Status.of(reply.outcome), attempts, started, self._timestamp(), cost)
        if self.probe.hold(done):
            if self.probe.tripped:
                self.request_stop(StopReason.CONFIG, self._config_message())
            return
        for earlier in self.probe.release():
            self._save(earlier)
        self._save(done)

    def _save(self, done: Finished) -> None:
        """Write a finished exchange; once a write has failed, hold it (and every later one) instead."""
        if self.held:
            self.held.append(done)
            return
        try:
            # written on the event loop's thread: a few milliseconds into the page cache, and worker
            # threads would each grow a malloc arena of image-sized buffers (bench/RESULTS.md, images)
            self._save_finished(self.sink, done)
        except OSError as exc:
            self.held.append(done)
            self.request_stop(StopReason.WRITE, write_error_message(exc, self.sink.out_dir))
            return
        for _ in range(done.rows):
            self.progress.count(done.status)

    def _config_message(self) -> str:
        held = self.probe.held
        first = held[0]
        reply, model = first.reply, first.record.model
        endpoint = self.provider.endpoint(model) if hasattr(self.provider, "endpoint") else "the provider"
        said = f": {reply.error_message}" if reply.error_message else ""
        return (f"configuration error: the first {len(held)} replies were all HTTP {reply.http_status} "
                f"({reply.error_kind}) from {endpoint} for model {model}{said}; check provider.base_url, "
                "model and what the key may use; nothing was recorded")

    def _settle(self, worst: float | None, actual: float | None) -> None:
        self.account.settle(worst, actual)
        if self.budget is not None:
            self.budget.settle(worst, actual)
        self._settled.set()
        self._settled = anyio.Event()

    # -- background: every wait on the pool's clock ---------------------------------------------

    async def _watch_deadline(self, deadline: float) -> None:
        await self.clock.sleep(max(0.0, deadline - self.clock.now()))
        self.request_stop(StopReason.DEADLINE, "deadline reached")

    async def _tick(self, on_tick: Callable[[], None]) -> None:
        while True:
            await self.clock.sleep(self.hooks.tick_s)
            self._apply_stop_from_thread()  # wakes the workers waiting (a slot, a pause, a backoff)
            try:
                on_tick()
            except OSError as exc:  # the journal's flush or fsync
                self.request_stop(StopReason.WRITE, write_error_message(exc, self.sink.out_dir))

    async def _end_grace(self) -> None:
        """The grace period after the first Ctrl-C: requests still in flight at its end are abandoned."""
        await self.clock.sleep(self.settings.grace_s)
        if self.progress.in_flight:
            log.warning("grace period over: abandoning %d requests in flight", self.progress.in_flight)
        self._workers.cancel_scope.cancel()

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            await self._interrupt_on(signals)

    async def _interrupt_on(self, signals: AsyncIterator[int]) -> None:
        async for received in signals:
            self.interrupt(_signal_name(received))
            if self._workers.cancel_scope.cancel_called:
                return


def _said(reply: ProviderReply) -> str:
    """A bad key's reply in a few words: its status and error kind (the server's message may quote the key)."""
    return f"HTTP {reply.http_status} {reply.error_kind or 'auth'}"


def _signal_name(number: int) -> str:
    return "Ctrl-C" if number == signal.SIGINT else signal.Signals(number).name


class _InterruptibleClock:
    """The retry loop's clock: a backoff sleep ends early, abandoning the request, when the run stops."""

    def __init__(self, pool: WorkerPool) -> None:
        self._pool = pool

    def now(self) -> float:
        return self._pool.clock.now()

    async def sleep(self, seconds: float) -> None:
        await self._pool._wait(lambda: self._pool.clock.sleep(seconds))
