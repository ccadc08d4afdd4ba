"""The worker pool: pending RequestRecords in, final results out through the sink.

Inputs: an iterator of pending records (streamed from the manifest), a provider, one httpx client, a
limiter, a retry policy, a sink, progress counters. Invariants:
- memory is bounded by the concurrency, not by the manifest: a bounded stream feeds the workers;
- a result is written only once final (ok / blocked / invalid / failed after the last attempt);
- a request the run gives up on because it is stopping (deadline, bad key, daily quota, Ctrl-C,
  budget) is left pending, never recorded: the next run sends it;
- the budget is kept by reserving each request's worst-case cost before it is sent;
- a reply is fanned out to every row that shares its request (`saving.save_finished`);
- a reply that arrived is never dropped: when writing it fails (disk full, read-only folder), the run
  stops sending and the reply is held in `held` for the job to write once it can;
- the first replies of a run are watched by a `ConfigProbe`: when they are all 400/404-like, the
  endpoint or model is wrong, not the requests; they are not recorded, and the run stops.
The pool knows no provider JSON: it acts on `ProviderReply.outcome` alone.
"""

from __future__ import annotations

import enum
import logging
import signal
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import anyio
import anyio.lowlevel
import httpx

from ..errors import server_delay_message
from ..records import Outcome, ProviderReply, RequestRecord, Usage
from .inputbytes import DEFAULT_MB, InputBytesBudget
from .retry import RetryPolicy, send_with_retries
from .saving import Finished, save_finished
from .writeerrors import write_error_message

log = logging.getLogger(__name__)

FINAL_STATUS = {Outcome.OK: "ok", Outcome.BLOCKED: "blocked", Outcome.INVALID: "invalid", Outcome.RETRY: "failed"}


class StopReason(enum.Enum):
    BUDGET = "budget"
    DEADLINE = "deadline"
    AUTH = "auth"
    QUOTA = "quota"
    INTERRUPTED = "interrupted"
    WRITE = "write"
    CONFIG = "config"
    BILLING = "billing"


# Invalid replies that may say more about the endpoint or model than about the request itself.
CONFIG_ERROR_KINDS = frozenset({"invalid_request", "not_found", "client_error", "unexpected_status"})


def billing_message(reply: ProviderReply) -> str:
    """The stop line of a billing error: what the server said, and what to do."""
    said = f" ({reply.error_message})" if reply.error_message else ""
    return (f"billing: HTTP {reply.http_status}, the account cannot pay for more requests{said}; add credit or "
            "turn on postpaid billing for the key's project, then run again; nothing was recorded")


class ConfigProbe:
    """Holds back the first invalid replies of a run until a reply shows the endpoint and model work.

    `needed` 400/404-like replies in a row before any other final reply mean a configuration error:
    every request would get it, and recording them `invalid` would mark a whole catalog for good.
    """

    def __init__(self, needed: int = 3) -> None:
        self.needed = needed
        self.held: list[Finished] = []
        self.cleared = False

    def hold(self, done: Finished) -> bool:
        """Whether this finished exchange is held back; the first other final reply clears the probe."""
        reply = done.reply
        if self.cleared or done.status == "failed" or reply.http_status is None:  # nothing heard from the server
            return False
        if done.status == "invalid" and reply.error_kind in CONFIG_ERROR_KINDS:
            self.held.append(done)
            return True
        self.cleared = True
        return False

    @property
    def tripped(self) -> bool:
        return not self.cleared and len(self.held) >= self.needed

    def release(self) -> list[Finished]:
        held, self.held = self.held, []
        return held


class _Abandoned(Exception):
    """The run is stopping: leave this request pending."""


@dataclass
class Budget:
    """Spend so far plus worst cases reserved for what is in flight, against a cap."""

    cap_usd: float | None
    spent_usd: float = 0.0
    reserved_usd: float = 0.0
    holders: int = 0  # reservations not yet settled (counted, since float sums never return to 0.0)

    def reserve(self, worst: float | None) -> bool:
        if self.cap_usd is None:
            return True
        worst = worst or 0.0
        if self.spent_usd + self.reserved_usd + worst > self.cap_usd + 1e-12:
            return False
        self.reserved_usd += worst
        self.holders += 1
        return True

    def settle(self, worst: float | None, actual: float | None) -> None:
        if self.cap_usd is not None:
            self.holders -= 1
            self.reserved_usd = 0.0 if self.holders == 0 else max(0.0, self.reserved_usd - (worst or 0.0))
        self.spent_usd += actual or 0.0


@dataclass
class PoolStop:
    reason: StopReason | None = None
    message: str = ""
    abandoned: int = 0
    in_flight_abandoned: int = 0  # sends cut off by a second Ctrl-C or the end of the grace period


class WorkerPool:
    def __init__(self, *, provider, client: httpx.AsyncClient, limiter, policy: RetryPolicy, sink,
                 progress, clock, concurrency: int, cost: Callable[[RequestRecord, Usage | None], float | None],
                 worst_case: Callable[[RequestRecord], float | None], budget: Budget,
                 deadline: float | None = None, grace_s: float = 30.0, handle_signals: bool = False,
                 on_tick: Callable[[], None] | None = None, tick_s: float = 1.0,
                 on_reply: Callable[[ProviderReply], None] | None = None,
                 input_image_bytes: int = DEFAULT_MB * 1_000_000) -> None:
        self.provider, self.client, self.limiter, self.policy = provider, client, limiter, policy
        self.sink, self.progress, self.clock, self.concurrency = sink, progress, clock, concurrency
        self.cost, self.worst_case, self.budget = cost, worst_case, budget
        self.deadline, self.grace_s, self.handle_signals = deadline, grace_s, handle_signals
        self.on_tick, self.tick_s, self.on_reply = on_tick, tick_s, on_reply
        self.stop = PoolStop()
        self.probe = ConfigProbe()
        self.input_bytes = InputBytesBudget(input_image_bytes)
        self.held: list[Finished] = []  # replies that arrived but could not be written
        self._waits: set[anyio.CancelScope] = set()
        self._settled = anyio.Event()

    # -- stopping -------------------------------------------------------------------------------

    def request_stop(self, reason: StopReason, message: str = "") -> None:
        """Stop sending; wake every worker that is only waiting (a slot, a pause, a retry backoff)."""
        if self.stop.reason is not None:
            return
        self.stop.reason, self.stop.message = reason, message
        log.warning("stopping (%s)%s", reason.value, f": {message}" if message else "")
        for scope in list(self._waits):
            scope.cancel()

    async def _wait(self, awaitable_factory):
        """Run a wait that a stop cancels; raise _Abandoned when it was cancelled by one."""
        if self.stop.reason is not None:
            raise _Abandoned
        with anyio.CancelScope() as scope:
            self._waits.add(scope)
            try:
                return await awaitable_factory()
            finally:
                self._waits.discard(scope)
        raise _Abandoned  # reached only when the scope was cancelled by request_stop

    # -- the run --------------------------------------------------------------------------------

    async def run(self, records: Iterable[RequestRecord]) -> PoolStop:
        # Workers pull from the pending iterator themselves: `next()` is synchronous, so two workers
        # never step it at once, and no stream or producer task stands between them and the manifest.
        self._records = iter(records)
        async with anyio.create_task_group() as background:
            if self.handle_signals:
                background.start_soon(self._watch_signals)
            if self.deadline is not None:
                background.start_soon(self._watch_deadline)
            if self.on_tick is not None:
                background.start_soon(self._tick)
            async with anyio.create_task_group() as workers:
                self._workers = workers
                for _ in range(self.concurrency):
                    workers.start_soon(self._work)
            background.cancel_scope.cancel()
        self._settle_probe()
        return self.stop

    def _settle_probe(self) -> None:
        """At the end: replies still held by the probe were all the run got, a configuration error."""
        if self.probe.cleared or not self.probe.held:
            return
        if self.stop.reason is None or self.stop.reason is StopReason.CONFIG:
            self.stop.reason = None
            self.request_stop(StopReason.CONFIG, self._config_message())
        self.stop.abandoned += sum(done.rows for done in self.probe.release())

    def _next_record(self) -> RequestRecord | None:
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
        worst = self.worst_case(record)
        if not await self._reserve(worst):
            self.stop.abandoned += 1
            return
        started = time.time()
        try:
            reply, attempts = await self._attempts(record)
        except _Abandoned:
            self._settle(worst, None)
            self.stop.abandoned += 1
            return
        await self._record(record, reply, attempts, started, worst)

    async def _attempts(self, record: RequestRecord) -> tuple[ProviderReply, int]:
        """The first attempt directly; tenacity's retry loop only for a reply worth retrying.

        Most requests succeed at once, and building a retry loop for each cost about a tenth of the
        runner's time per request (bench/RESULTS.md). The loop is handed the first reply as its own
        first attempt, so its attempt count and backoff schedule are the same as if it had sent it.
        """
        reply = await self._attempt(record)
        if reply.outcome is not Outcome.RETRY:
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
        while not self.budget.reserve(worst):
            if self.stop.reason is not None:
                return False
            if self.budget.holders == 0:
                spent = self.budget.spent_usd
                self.request_stop(
                    StopReason.BUDGET,
                    f"spent ${spent:.4f} of the ${self.budget.cap_usd:.4f} cap; the next request could cost up to ${worst or 0:.4f}",
                )
                return False
            try:
                await self._wait(self._settled.wait)
            except _Abandoned:
                return False
        return True

    async def _attempt(self, record: RequestRecord) -> ProviderReply:
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
        permit = await self._wait(lambda: self.limiter.acquire(tokens=tokens, images=estimate.images_out))
        if self.stop.reason is not None:
            self.limiter.release(permit)
            raise _Abandoned
        try:
            self.sink.record_sent(record.request_id)
        except OSError as exc:
            self.limiter.release(permit)
            self.request_stop(StopReason.WRITE, write_error_message(exc, self.sink.out_dir))
            raise _Abandoned from None
        self.progress.in_flight += 1
        try:
            reply = await self.provider.send(self.client, record)
        except anyio.get_cancelled_exc_class():
            self.stop.in_flight_abandoned += 1
            raise
        finally:
            self.progress.in_flight -= 1
        actual = reply.usage.total if reply.usage is not None else None
        self.limiter.release(permit, actual_tokens=actual, rate_limited=reply.error_kind == "rate_limited")
        return self._react(reply)

    def _react(self, reply: ProviderReply) -> ProviderReply:
        if self.on_reply is not None:
            self.on_reply(reply)
        if reply.outcome is Outcome.STOP_AUTH:
            self.request_stop(StopReason.AUTH, reply.error_message or "authentication failed")
            raise _Abandoned
        if reply.outcome is Outcome.STOP_QUOTA:
            self.request_stop(StopReason.QUOTA, reply.error_message or "daily quota exhausted")
            raise _Abandoned
        if reply.outcome is Outcome.STOP_BILLING:
            self.request_stop(StopReason.BILLING, billing_message(reply))
            raise _Abandoned
        if reply.outcome is Outcome.RETRY:
            self.progress.errors[reply.error_kind or "retry"] += 1
            if reply.retry_after_s:
                self._hold_back(reply.retry_after_s)
        return reply

    def _hold_back(self, delay_s: float) -> None:
        """A server delay: past the cap, a quota signal that stops the run (this request stays pending);
        when the limiter says so (a 429 storm, a limit overshot), a pause of every sender; else only
        this request's retry waits it out."""
        cap = self.policy.max_server_delay_s
        if delay_s > cap:
            self.request_stop(StopReason.QUOTA, server_delay_message(delay_s, cap))
            raise _Abandoned
        pause = self.limiter.hold_back(delay_s)
        if pause is not None:
            self.progress.pause(pause.seconds, pause.reason)

    def _count_retry(self, *_args) -> None:
        self.progress.retries += 1

    async def _record(self, record: RequestRecord, reply: ProviderReply, attempts: int, started: float, worst) -> None:
        cost = self.cost(record, reply.usage)
        self._settle(worst, cost)  # paid whether or not it can be written
        self.progress.spend_usd += cost or 0.0
        self.progress.tokens += (reply.usage.total or 0) if reply.usage else 0
        done = Finished(record, reply, FINAL_STATUS[reply.outcome], attempts, started, time.time(), cost)
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
            save_finished(self.sink, done)
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
        self.budget.settle(worst, actual)
        self._settled.set()
        self._settled = anyio.Event()

    # -- background -----------------------------------------------------------------------------

    async def _watch_deadline(self) -> None:
        await anyio.sleep(max(0.0, self.deadline - self.clock.now()))
        self.request_stop(StopReason.DEADLINE, "deadline reached")

    async def _tick(self) -> None:
        while True:
            await anyio.sleep(self.tick_s)
            try:
                self.on_tick()
            except OSError as exc:  # the journal's flush or fsync
                self.request_stop(StopReason.WRITE, write_error_message(exc, self.sink.out_dir))

    async def _watch_signals(self) -> None:
        """First Ctrl-C: stop sending, give in-flight requests `grace_s`. Second: abandon them now."""
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            interrupted = False
            async for received in signals:
                if interrupted:
                    log.warning("%s again: abandoning %d requests in flight", _signal_name(received),
                                self.progress.in_flight)
                    self._workers.cancel_scope.cancel()
                    return
                interrupted = True
                self.stop.reason = None  # Ctrl-C overrides any earlier stop: exit 130
                self.request_stop(StopReason.INTERRUPTED, f"interrupted by {_signal_name(received)}")
                log.warning("waiting up to %gs for %d requests in flight (Ctrl-C again abandons them)",
                            self.grace_s, self.progress.in_flight)
                self._workers.cancel_scope.deadline = anyio.current_time() + self.grace_s


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
