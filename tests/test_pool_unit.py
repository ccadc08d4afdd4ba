"""The worker pool alone: a scripted provider, an in-memory sink, virtual time.

No subprocess, no socket, no real sleep: the provider answers after `clock.sleep`, and the fake clock
jumps whenever every task is blocked. Each test asserts the exact records, stop reason and virtual
times, so a change in how the pool stops, waits or records shows here first.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx
import pytest

from batchrun.errors import server_delay_message
from batchrun.outcomes import ErrorKind, Outcome, Status
from batchrun.output.images import ImageFile
from batchrun.output.progress import Progress
from batchrun.records import (
    ProviderReply,
    RequestRecord,
    ResultRecord,
    TokenEstimate,
    Usage,
)
from batchrun.running.account import FreePrices, SpendingAccount
from batchrun.running.clock import FakeClock
from batchrun.running.hooks import RunHooks
from batchrun.running.keys import KeyLane, KeyPool
from batchrun.running.limiter import Limiter
from batchrun.running.pool import (
    PoolSettings,
    PoolStop,
    StopReason,
    WorkerPool,
    billing_message,
)
from batchrun.running.retry import RetryPolicy

pytestmark = pytest.mark.anyio

EPOCH = 1_700_000_000.0  # the unix time of virtual time 0


# --- fakes ---------------------------------------------------------------------------------------


@dataclass
class Step:
    """One scripted exchange: `after_s` of virtual time, then `reply`."""

    reply: ProviderReply
    after_s: float = 1.0


def ok(after_s: float = 1.0, tokens: int = 10) -> Step:
    return Step(ProviderReply(Outcome.OK, http_status=200, text="fine", usage=Usage(total=tokens)), after_s)


def error(outcome: Outcome, status: int, kind: ErrorKind, *, message: str | None = None,
          retry_after_s: float | None = None, after_s: float = 0.0) -> Step:
    reply = ProviderReply(outcome, http_status=status, error_kind=kind, error_message=message,
                          retry_after_s=retry_after_s)
    return Step(reply, after_s)


class ScriptedProvider:
    """Answers each request id from its own script (then `ok()`); logs (virtual time, id) per send."""

    def __init__(self, clock: FakeClock, scripts: dict[str, list[Step]] | None = None) -> None:
        self.clock = clock
        self.scripts = scripts or {}
        self.sent: list[tuple[float, str]] = []

    async def send(self, client: httpx.AsyncClient, record: RequestRecord) -> ProviderReply:
        self.sent.append((self.clock.now(), record.request_id))
        script = self.scripts.get(record.request_id) or []
        step = script.pop(0) if script else ok()
        await self.clock.sleep(step.after_s)
        return step.reply

    def endpoint(self, model: str) -> str:
        return f"https://api.test/v1/models/{model}:generateContent"


@dataclass
class MemorySink:
    out_dir: Path = Path("memory")
    sent: list[str] = field(default_factory=list)
    results: list[ResultRecord] = field(default_factory=list)

    def record_sent(self, request_id: str) -> None:
        self.sent.append(request_id)

    def write_result(self, result: ResultRecord) -> None:
        self.results.append(result)

    def write_image(self, data: bytes, mime: str, output_name: str | None, row_id: str) -> ImageFile:
        return ImageFile(f"images/{row_id}.png", "0" * 64, mime, len(data), None, None)

    def rows(self) -> list[tuple[str, str, int, float, float]]:
        """(id, status, attempts, started, finished) per result, times in virtual seconds."""
        return [(r.request_id, r.status, r.attempts, r.started_at - EPOCH, r.finished_at - EPOCH)
                for r in self.results]


@dataclass
class FixedPrices:
    """Every request may cost `worst` and costs `actual` once it has a reply."""

    worst: float
    actual: float

    def worst_case(self, record: RequestRecord) -> float | None:
        return self.worst

    def cost(self, record: RequestRecord, usage: Usage | None, served: str | None = None) -> float | None:
        return None if usage is None else self.actual


def records(count: int) -> list[RequestRecord]:
    return [RequestRecord(request_id=f"r{n}", seq=n, model="gemini-test", body={}, variables={},
                          estimate=TokenEstimate(input_text=10)) for n in range(1, count + 1)]


@dataclass
class Run:
    """A pool on a fake clock, with what a test looks at afterwards."""

    clock: FakeClock
    provider: ScriptedProvider
    sink: MemorySink
    progress: Progress
    pool: WorkerPool
    stop: PoolStop = field(default_factory=PoolStop)
    ended_at: float = 0.0


def make_run(scripts: dict[str, list[Step]] | None = None, *, total: int = 0, concurrency: int = 1,
             account: SpendingAccount | None = None, policy: RetryPolicy | None = None,
             hooks: RunHooks = RunHooks(), **settings: object) -> Run:
    clock = FakeClock()
    provider, sink = ScriptedProvider(clock, scripts), MemorySink()
    progress = Progress(total=total, started=0.0, clock=clock.now)
    pool = WorkerPool(
        provider=provider, client=None, limiter=Limiter(concurrency=concurrency, clock=clock, unpaced_until_429=True),
        policy=policy or RetryPolicy(initial_s=0.0, max_wait_s=0.0, rng=random.Random(0)), sink=sink,
        progress=progress, clock=clock, account=account or SpendingAccount(FreePrices()), hooks=hooks,
        settings=PoolSettings(concurrency=concurrency, epoch_s=EPOCH, **settings),  # type: ignore[arg-type]
    )
    return Run(clock, provider, sink, progress, pool)


async def drive(run: Run, count: int, *, at: tuple[tuple[float, Callable[[], None]], ...] = ()) -> Run:
    """Run the pool over `count` records; call each action of `at` at its virtual time."""

    async def later(when: float, action: Callable[[], None]) -> None:
        await run.clock.sleep(when)
        action()

    async with run.clock.autojump():
        async with anyio.create_task_group() as actions:
            for when, action in at:
                actions.start_soon(later, when, action)
            run.stop = await run.pool.run(records(count))
            run.ended_at = run.clock.now()
            actions.cancel_scope.cancel()
    return run


# --- finishing ------------------------------------------------------------------------------------


async def test_every_request_answered_is_recorded_with_its_virtual_times() -> None:
    run = await drive(make_run(total=3, concurrency=2), 3)
    assert run.stop == PoolStop()
    assert run.sink.rows() == [("r1", "ok", 1, 0.0, 1.0), ("r2", "ok", 1, 0.0, 1.0), ("r3", "ok", 1, 1.0, 2.0)]
    assert run.sink.sent == ["r1", "r2", "r3"]
    assert (run.progress.ok, run.progress.tokens) == (3, 30)


async def test_a_request_is_retried_then_recorded_once_final() -> None:
    unavailable = error(Outcome.RETRY, 503, ErrorKind.UNAVAILABLE, retry_after_s=3.0)
    run = await drive(make_run({"r1": [unavailable, unavailable, ok(after_s=2.0)]}, total=1), 1)
    assert run.provider.sent == [(0.0, "r1"), (3.0, "r1"), (6.0, "r1")]  # each retry after the server's 3 s
    assert run.sink.rows() == [("r1", "ok", 3, 0.0, 8.0)]
    assert run.stop.reason is None
    assert (run.progress.retries, run.progress.errors) == (2, {"unavailable": 2})


async def test_a_request_out_of_attempts_is_recorded_failed_with_its_error() -> None:
    unavailable = error(Outcome.RETRY, 503, ErrorKind.UNAVAILABLE, message="try later", retry_after_s=1.0)
    run = await drive(make_run({"r1": [unavailable] * 3}, total=1, policy=RetryPolicy(
        max_attempts=3, initial_s=0.0, max_wait_s=0.0)), 1)
    [result] = run.sink.results
    assert (result.status, result.attempts, result.error_kind, result.error_message) == (
        Status.FAILED, 3, "unavailable", "try later")
    assert run.sink.rows() == [("r1", "failed", 3, 0.0, 2.0)]
    assert run.progress.failed == 1


async def test_a_reply_without_its_image_gets_no_image_attempts_only() -> None:
    no_image = error(Outcome.RETRY, 200, ErrorKind.NO_IMAGE)
    policy = RetryPolicy(max_attempts=6, no_image_attempts=2, initial_s=0.0, max_wait_s=0.0)
    run = await drive(make_run({"r1": [no_image] * 6}, total=1, policy=policy), 1)
    assert [(r.status, r.attempts) for r in run.sink.results] == [("failed", 2)]


# --- stops ----------------------------------------------------------------------------------------


async def test_the_budget_waits_for_requests_in_flight_then_stops_the_run() -> None:
    # worst case $1 each, actual $0.60, cap $2: two fit at once; after both settle ($1.20 spent)
    # the third could still pass the cap, so the run stops at t=1 and leaves the rest pending.
    account = SpendingAccount(FixedPrices(worst=1.0, actual=0.6), cap_usd=2.0)
    run = await drive(make_run(total=5, concurrency=4, account=account), 5)
    assert run.stop.reason is StopReason.BUDGET
    assert run.stop.message == "spent $1.2000 of the $2.0000 cap; the next request could cost up to $1.0000"
    assert run.sink.rows() == [("r1", "ok", 1, 0.0, 1.0), ("r2", "ok", 1, 0.0, 1.0)]
    assert [r.cost_usd for r in run.sink.results] == [0.6, 0.6]
    assert (run.stop.abandoned, run.ended_at) == (2, 1.0)  # r3 and r4 waited for a reservation; r5 never taken
    assert (account.holders, account.reserved_usd, account.spent_usd) == (0, 0.0, pytest.approx(1.2))


async def test_a_reply_past_its_reserved_high_bound_is_recorded_at_its_true_cost_and_the_run_stops_cleanly() -> None:
    # should a reply cost more than its reservation ($1 here; a model table whose output limit is out of
    # date: $1.50): cap $2.50, r1 and r2 reserved together; both settle at $1.50, $3.00 spent; the next
    # reservation fails with nothing in flight, so the run stops and says what bounds a reply.
    account = SpendingAccount(FixedPrices(worst=1.0, actual=1.5), cap_usd=2.5)
    run = await drive(make_run(total=5, concurrency=2, account=account), 5)
    assert run.stop.reason is StopReason.BUDGET
    assert run.stop.message.startswith("spent $3.0000 of the $2.5000 cap; the next request could cost up to $1.0000; "
                                       "replies cost more than the worst case reserved for them")
    assert "set generationConfig.maxOutputTokens" in run.stop.message
    assert [(r.request_id, r.status, r.cost_usd) for r in run.sink.results] == [("r1", "ok", 1.5), ("r2", "ok", 1.5)]
    assert (account.holders, account.reserved_usd, account.spent_usd) == (0, 0.0, 3.0)


async def test_the_deadline_stops_sending_and_lets_the_request_in_flight_finish() -> None:
    run = await drive(make_run(total=5, deadline_s=2.5), 5)
    assert (run.stop.reason, run.stop.message) == (StopReason.DEADLINE, "deadline reached")
    assert run.sink.rows() == [("r1", "ok", 1, 0.0, 1.0), ("r2", "ok", 1, 1.0, 2.0), ("r3", "ok", 1, 2.0, 3.0)]
    assert run.ended_at == 3.0


async def test_the_deadline_cuts_a_retry_wait_short_and_leaves_that_request_pending() -> None:
    slow = error(Outcome.RETRY, 503, ErrorKind.UNAVAILABLE, retry_after_s=60.0)
    run = await drive(make_run({"r1": [slow]}, total=2, deadline_s=5.0), 2)
    assert run.stop.reason is StopReason.DEADLINE
    assert (run.sink.results, run.stop.abandoned, run.ended_at) == ([], 1, 5.0)
    assert run.provider.sent == [(0.0, "r1")]


async def test_a_bad_key_stops_the_run_at_once_and_records_nothing() -> None:
    bad_key = error(Outcome.STOP_AUTH, 400, ErrorKind.AUTH, message="API key not valid", after_s=0.5)
    run = await drive(make_run({"r1": [bad_key]}, total=3, concurrency=2), 3)
    assert (run.stop.reason, run.stop.message) == (StopReason.AUTH, "API key not valid")
    # r2, sent beside r1, still finishes and is kept; nothing is sent after the stop
    assert run.sink.rows() == [("r2", "ok", 1, 0.0, 1.0)]
    assert run.provider.sent == [(0.0, "r1"), (0.0, "r2")]
    assert run.stop.abandoned == 1


async def test_a_spent_daily_quota_stops_the_run() -> None:
    daily = error(Outcome.STOP_QUOTA, 429, ErrorKind.DAILY_QUOTA)
    run = await drive(make_run({"r2": [daily]}, total=3), 3)
    assert (run.stop.reason, run.stop.message) == (StopReason.QUOTA, "daily quota exhausted")
    assert run.sink.rows() == [("r1", "ok", 1, 0.0, 1.0)]
    assert run.stop.abandoned == 1


async def test_with_wait_quota_a_spent_daily_quota_parks_every_sender_until_it_resets_then_goes_on() -> None:
    daily = error(Outcome.STOP_QUOTA, 429, ErrorKind.DAILY_QUOTA, retry_after_s=600.0, after_s=1.0)
    run = await drive(make_run({"r2": [daily]}, total=3, concurrency=2, wait_quota=True), 3)
    assert run.stop == PoolStop()
    # r2 is refused at t=1; nothing is sent until its reset at t=601, then r2 again (not a new attempt) and r3
    assert run.provider.sent == [(0.0, "r1"), (0.0, "r2"), (601.0, "r2"), (601.0, "r3")]
    # r3 was taken from the queue at t=1 (its start), and sent at 601
    assert run.sink.rows() == [("r1", "ok", 1, 0.0, 1.0), ("r2", "ok", 1, 0.0, 602.0), ("r3", "ok", 1, 1.0, 602.0)]
    assert (run.progress.parked_until_wall, run.progress.pause_reason) == (EPOCH + 601.0, "quota")


async def test_with_wait_quota_a_reset_after_the_deadline_stops_the_run_as_without_it() -> None:
    daily = error(Outcome.STOP_QUOTA, 429, ErrorKind.DAILY_QUOTA, retry_after_s=600.0)
    run = await drive(make_run({"r2": [daily]}, total=3, wait_quota=True, deadline_s=300.0), 3)
    assert (run.stop.reason, run.stop.message) == (StopReason.QUOTA, "daily quota exhausted")
    assert run.sink.rows() == [("r1", "ok", 1, 0.0, 1.0)]


async def test_a_stop_while_parked_ends_the_park_and_leaves_the_request_pending() -> None:
    daily = error(Outcome.STOP_QUOTA, 429, ErrorKind.DAILY_QUOTA, retry_after_s=600.0)
    run = make_run({"r2": [daily]}, total=3, wait_quota=True)
    await drive(run, 3, at=((50.0, run.pool.interrupt),))
    assert run.stop.reason is StopReason.INTERRUPTED
    assert (run.sink.rows(), run.stop.abandoned, run.ended_at) == ([("r1", "ok", 1, 0.0, 1.0)], 1, 50.0)


async def test_a_billing_error_stops_the_run_with_what_to_do() -> None:
    billing = error(Outcome.STOP_BILLING, 402, ErrorKind.BILLING, message="credit used up")
    run = await drive(make_run({"r1": [billing]}, total=2), 2)
    assert run.stop.reason is StopReason.BILLING
    assert run.stop.message == billing_message(billing.reply)
    assert "HTTP 402" in run.stop.message and "add credit" in run.stop.message
    assert run.sink.results == []


async def test_a_server_delay_past_the_cap_stops_the_run_and_leaves_the_request_pending() -> None:
    long_delay = error(Outcome.RETRY, 429, ErrorKind.RATE_LIMITED, retry_after_s=3600.0)
    policy = RetryPolicy(initial_s=0.0, max_wait_s=0.0, max_server_delay_s=300.0)
    run = await drive(make_run({"r1": [long_delay]}, total=2, policy=policy), 2)
    assert (run.stop.reason, run.stop.message) == (StopReason.QUOTA, server_delay_message(3600.0, 300.0))
    assert (run.sink.results, run.stop.abandoned, run.ended_at) == ([], 1, 0.0)


async def test_with_wait_quota_a_server_delay_past_the_cap_parks_the_run_as_a_quota_would() -> None:
    long_delay = error(Outcome.RETRY, 429, ErrorKind.RATE_LIMITED, retry_after_s=3600.0)
    policy = RetryPolicy(initial_s=0.0, max_wait_s=0.0, max_server_delay_s=300.0)
    run = await drive(make_run({"r1": [long_delay]}, total=2, policy=policy, wait_quota=True), 2)
    assert run.stop == PoolStop()
    assert run.provider.sent == [(0.0, "r1"), (3600.0, "r1"), (3601.0, "r2")]
    assert run.sink.rows() == [("r1", "ok", 2, 0.0, 3601.0), ("r2", "ok", 1, 3601.0, 3602.0)]
    assert run.progress.parked_until_wall == EPOCH + 3600.0


async def test_a_retry_delay_holds_back_only_its_own_request() -> None:
    limited = error(Outcome.RETRY, 429, ErrorKind.RATE_LIMITED, retry_after_s=7.0)
    run = await drive(make_run({"r1": [limited]}, total=3, concurrency=2), 3)
    assert run.provider.sent == [(0.0, "r1"), (0.0, "r2"), (1.0, "r3"), (7.0, "r1")]
    assert run.sink.rows() == [("r2", "ok", 1, 0.0, 1.0), ("r3", "ok", 1, 1.0, 2.0), ("r1", "ok", 2, 0.0, 8.0)]
    assert run.progress.pause_reason is None


async def test_a_429_storm_with_a_retry_delay_pauses_every_sender() -> None:
    limited = error(Outcome.RETRY, 429, ErrorKind.RATE_LIMITED, retry_after_s=7.0)
    scripts = {f"r{n}": [limited] for n in range(1, 11)}  # ten 429s at once: a storm
    run = await drive(make_run(scripts, total=12, concurrency=12), 12)
    first_sends = [at for at, rid in run.provider.sent if rid in ("r11", "r12")]
    retries = sorted(at for at, rid in run.provider.sent[12:])
    assert first_sends == [0.0, 0.0]
    # nothing is sent during the pause; after it the limiter paces the retries (its own tests say how)
    assert len(retries) == 10 and retries[0] == 7.0 and retries == sorted(retries)
    assert run.progress.paused_until == 7.0
    assert run.progress.pause_reason == "a 429 storm (10 of the last 10 replies); the server asked for 7s"
    assert [r.status for r in run.sink.results] == ["ok"] * 12


async def test_first_replies_all_404_are_a_configuration_error_and_nothing_is_recorded() -> None:
    not_found = error(Outcome.INVALID, 404, ErrorKind.NOT_FOUND, message="model not found", after_s=1.0)
    run = await drive(make_run({f"r{n}": [not_found] for n in range(1, 6)}, total=5), 5)
    assert run.stop.reason is StopReason.CONFIG
    assert run.stop.message == (
        "configuration error: the first 3 replies were all HTTP 404 (not_found) from "
        "https://api.test/v1/models/gemini-test:generateContent for model gemini-test: model not found; "
        "check provider.base_url, model and what the key may use; nothing was recorded")
    assert (run.sink.results, run.stop.abandoned, run.ended_at) == ([], 3, 3.0)


async def test_a_good_reply_clears_the_probe_and_the_invalid_replies_held_are_recorded() -> None:
    bad = error(Outcome.INVALID, 400, ErrorKind.INVALID_REQUEST, after_s=1.0)
    run = await drive(make_run({"r1": [bad], "r2": [bad]}, total=3), 3)
    assert run.stop.reason is None
    assert run.sink.rows() == [("r1", "invalid", 1, 0.0, 1.0), ("r2", "invalid", 1, 1.0, 2.0),
                               ("r3", "ok", 1, 2.0, 3.0)]


async def test_the_probe_can_be_turned_off() -> None:
    not_found = error(Outcome.INVALID, 404, ErrorKind.NOT_FOUND, after_s=1.0)
    run = await drive(make_run({f"r{n}": [not_found] for n in range(1, 4)}, total=3, config_check=False), 3)
    assert run.stop.reason is None
    assert [r.status for r in run.sink.results] == ["invalid"] * 3


# --- Ctrl-C ---------------------------------------------------------------------------------------


async def test_ctrl_c_stops_sending_and_the_requests_in_flight_finish_within_the_grace() -> None:
    scripts = {"r1": [ok(after_s=5.0)], "r2": [ok(after_s=5.0)]}
    run = make_run(scripts, total=4, concurrency=2, grace_s=30.0)
    await drive(run, 4, at=((1.0, run.pool.interrupt),))
    assert (run.stop.reason, run.stop.message) == (StopReason.INTERRUPTED, "interrupted by Ctrl-C")
    assert run.sink.rows() == [("r1", "ok", 1, 0.0, 5.0), ("r2", "ok", 1, 0.0, 5.0)]
    assert (run.stop.in_flight_abandoned, run.ended_at) == (0, 5.0)


async def test_ctrl_c_abandons_what_is_still_in_flight_when_the_grace_ends() -> None:
    scripts = {"r1": [ok(after_s=100.0)], "r2": [ok(after_s=100.0)]}
    run = make_run(scripts, total=2, concurrency=2, grace_s=30.0)
    await drive(run, 2, at=((1.0, run.pool.interrupt),))
    assert run.stop.reason is StopReason.INTERRUPTED
    assert (run.sink.results, run.stop.in_flight_abandoned, run.ended_at) == ([], 2, 31.0)


async def test_a_second_ctrl_c_abandons_the_requests_in_flight_at_once() -> None:
    scripts = {"r1": [ok(after_s=100.0)], "r2": [ok(after_s=100.0)]}
    run = make_run(scripts, total=2, concurrency=2, grace_s=30.0)
    await drive(run, 2, at=((1.0, run.pool.interrupt), (2.0, run.pool.interrupt)))
    assert run.stop.reason is StopReason.INTERRUPTED
    assert (run.sink.results, run.stop.in_flight_abandoned, run.ended_at) == ([], 2, 2.0)


async def test_ctrl_c_overrides_an_earlier_stop() -> None:
    run = make_run({"r1": [ok(after_s=10.0)]}, total=2, deadline_s=1.0)
    await drive(run, 2, at=((2.0, run.pool.interrupt),))
    assert run.stop.reason is StopReason.INTERRUPTED
    assert run.sink.rows() == [("r1", "ok", 1, 0.0, 10.0)]


# --- hooks ----------------------------------------------------------------------------------------


async def test_ticks_come_every_tick_s_of_virtual_time_and_every_reply_is_seen() -> None:
    clock_reads: list[float] = []
    replies: list[Outcome] = []
    run = make_run(total=2, hooks=RunHooks(on_tick=lambda: clock_reads.append(run.clock.now()),
                                           on_reply=lambda reply: replies.append(reply.outcome), tick_s=0.5))
    await drive(run, 2)
    assert clock_reads == [0.5, 1.0, 1.5, 2.0]  # the tick due at 2.0 runs beside r2's reply
    assert replies == [Outcome.OK, Outcome.OK]


async def test_a_tick_that_cannot_write_stops_the_run() -> None:
    def full_disk() -> None:
        raise OSError(28, "No space left on device")

    run = await drive(make_run(total=5, hooks=RunHooks(on_tick=full_disk, tick_s=0.5)), 5)
    assert run.stop.reason is StopReason.WRITE
    assert run.sink.rows() == [("r1", "ok", 1, 0.0, 1.0)]  # sent before the tick at 0.5, kept


async def test_a_stop_from_another_thread_is_applied_at_the_next_tick_and_in_flight_requests_finish() -> None:
    # a lease lost at 1.2 s: the tick at 1.5 stops the run; r2 (sent at 1.0) finishes, r3 is never sent
    run = make_run(total=5, hooks=RunHooks(on_tick=lambda: None, tick_s=0.5))
    lost = (1.2, lambda: run.pool.stop_from_thread(StopReason.LEASE, "taken over by gpu-7"))
    await drive(run, 5, at=(lost,))
    assert (run.stop.reason, run.stop.message) == (StopReason.LEASE, "taken over by gpu-7")
    assert run.sink.rows() == [("r1", "ok", 1, 0.0, 1.0), ("r2", "ok", 1, 1.0, 2.0)]
    assert run.provider.sent == [(0.0, "r1"), (1.0, "r2")]


async def test_a_stop_from_another_thread_wakes_a_retry_wait_at_the_next_tick() -> None:
    slow = error(Outcome.RETRY, 503, ErrorKind.UNAVAILABLE, retry_after_s=60.0)
    run = make_run({"r1": [slow]}, total=2, hooks=RunHooks(on_tick=lambda: None, tick_s=0.5))
    await drive(run, 2, at=((3.2, lambda: run.pool.stop_from_thread(StopReason.LEASE, "taken over")),))
    assert (run.stop.reason, run.stop.abandoned, run.ended_at) == (StopReason.LEASE, 1, 3.5)
    assert run.sink.results == []


async def test_a_stop_from_another_thread_before_the_run_sends_nothing() -> None:
    run = make_run(total=3)
    run.pool.stop_from_thread(StopReason.LEASE, "taken over")
    await drive(run, 3)
    assert (run.stop.reason, run.provider.sent, run.sink.results) == (StopReason.LEASE, [], [])


# --- several keys ---------------------------------------------------------------------------------


class KeyProvider:
    """One key's adapter: every reply `after_s` later; `bad` keys fail authentication, and the key's
    `quota_at`-th send (1-based) finds its daily quota spent, resetting in `reset_s`."""

    def __init__(self, clock: FakeClock, env: str, log: list[tuple[float, str, str]], *, bad: bool = False,
                 quota_at: int | None = None, reset_s: float | None = None, after_s: float = 1.0,
                 limited_s: float | None = None) -> None:
        self.clock, self.env, self.log, self.bad = clock, env, log, bad
        self.quota_at, self.reset_s, self.after_s, self.limited_s = quota_at, reset_s, after_s, limited_s

    async def send(self, client: httpx.AsyncClient, record: RequestRecord) -> ProviderReply:
        self.log.append((self.clock.now(), self.env, record.request_id))
        await self.clock.sleep(self.after_s)
        if self.bad:
            return error(Outcome.STOP_AUTH, 400, ErrorKind.AUTH, message="API key not valid").reply
        if self.quota_at is not None and sum(env == self.env for _, env, _ in self.log) == self.quota_at:
            return error(Outcome.STOP_QUOTA, 429, ErrorKind.DAILY_QUOTA, retry_after_s=self.reset_s).reply
        if self.limited_s is not None:  # every request refused, with this retry delay
            return error(Outcome.RETRY, 429, ErrorKind.RATE_LIMITED, retry_after_s=self.limited_s).reply
        return ok(after_s=0.0).reply


def make_key_run(providers: dict[str, dict[str, object]], *, total: int, concurrency: int = 1,
                 requests_per_minute: float | None = None, **settings: object) -> tuple[Run, list[tuple[float, str, str]]]:
    clock, sink = FakeClock(), MemorySink()
    sends: list[tuple[float, str, str]] = []
    lanes = [KeyLane(env, KeyProvider(clock, env, sends, **options),  # type: ignore[arg-type]
                     Limiter(concurrency=concurrency, requests_per_minute=requests_per_minute, clock=clock,
                             unpaced_until_429=True))
             for env, options in providers.items()]
    progress = Progress(total=total, started=0.0, clock=clock.now)
    pool = WorkerPool(
        keys=KeyPool(lanes, clock), client=None, policy=RetryPolicy(initial_s=0.0, max_wait_s=0.0, rng=random.Random(0)),
        sink=sink, progress=progress, clock=clock, account=SpendingAccount(FreePrices()),
        settings=PoolSettings(concurrency=concurrency, epoch_s=EPOCH, **settings),  # type: ignore[arg-type]
    )
    return Run(clock, ScriptedProvider(clock), sink, progress, pool), sends


def sends_by_key(sends: list[tuple[float, str, str]]) -> dict[str, list[float]]:
    by_key: dict[str, list[float]] = {}
    for at, env, _ in sends:
        by_key.setdefault(env, []).append(round(at, 4))
    return by_key


async def test_three_keys_each_paced_at_its_own_limit_send_three_times_as_fast_as_one() -> None:
    run, sends = make_key_run({"KEY_A": {}, "KEY_B": {}, "KEY_C": {}}, total=9, concurrency=3, requests_per_minute=60)
    await drive(run, 9)
    step = round(1 / 0.98, 4)  # each key's own bucket, paced at 98% of 60/min
    assert sends_by_key(sends) == {key: [0.0, step, round(2 / 0.98, 4)] for key in ("KEY_A", "KEY_B", "KEY_C")}
    assert [row[1] for row in run.sink.rows()] == ["ok"] * 9


async def test_unlimited_keys_share_the_requests_evenly() -> None:
    run, sends = make_key_run({"KEY_A": {}, "KEY_B": {}}, total=6, concurrency=1)
    await drive(run, 6)
    assert [env for _, env, _ in sends] == ["KEY_A", "KEY_B"] * 3


async def test_a_bad_key_is_dropped_with_one_warning_and_its_requests_are_sent_with_the_others(caplog) -> None:
    run, sends = make_key_run({"KEY_A": {}, "KEY_B": {"bad": True, "after_s": 0.5}, "KEY_C": {}}, total=6, concurrency=3)
    with caplog.at_level("WARNING", logger="batchrun.running.keys"):
        await drive(run, 6)
    assert run.stop == PoolStop()
    # r2, refused with KEY_B at t=0.5, is sent again with KEY_A at once: neither recorded nor an attempt
    assert sends[:4] == [(0.0, "KEY_A", "r1"), (0.0, "KEY_B", "r2"), (0.0, "KEY_C", "r3"), (0.5, "KEY_A", "r2")]
    assert sorted(rid for _, env, rid in sends if env == "KEY_B") == ["r2"]
    assert sorted((rid, status, attempts) for rid, status, attempts, _, _ in run.sink.rows()) == [
        (f"r{n}", "ok", 1) for n in range(1, 7)]
    assert [r.getMessage() for r in caplog.records] == [
        "the key in KEY_B failed authentication (HTTP 400 auth): dropped for this run; sending goes on with 2 keys (KEY_A, KEY_C)"]


async def test_when_every_key_fails_authentication_the_run_stops_as_with_one_key() -> None:
    run, sends = make_key_run({"KEY_A": {"bad": True}, "KEY_B": {"bad": True}}, total=4, concurrency=1)
    await drive(run, 4)
    assert (run.stop.reason, run.stop.message) == (StopReason.AUTH, "API key not valid")
    assert sends == [(0.0, "KEY_A", "r1"), (1.0, "KEY_B", "r1")]  # r1 tried with each key, then the run stops
    assert (run.sink.results, run.stop.abandoned) == ([], 1)


async def test_a_key_whose_daily_quota_is_spent_is_set_aside_until_its_reset(caplog) -> None:
    run, sends = make_key_run({"KEY_A": {"quota_at": 1, "reset_s": 3.0}, "KEY_B": {}}, total=6, concurrency=1)
    with caplog.at_level("WARNING", logger="batchrun.running.keys"):
        await drive(run, 6)
    assert run.stop == PoolStop()
    # KEY_A's quota reply at t=1 sets it aside until t=4; r1 goes to KEY_B meanwhile, not recorded twice;
    # back, KEY_A takes turns with KEY_B again
    assert sends_by_key(sends) == {"KEY_A": [0.0, 4.0, 6.0], "KEY_B": [1.0, 2.0, 3.0, 5.0]}
    assert sorted(row[:3] for row in run.sink.rows()) == [(f"r{n}", "ok", 1) for n in range(1, 7)]
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith("the key in KEY_A spent its daily quota: set aside until ")
    assert warning.endswith("(in 3s), when it resets; sending goes on with 1 key (KEY_B)")


async def test_when_every_key_has_spent_its_quota_the_run_stops_for_the_quota() -> None:
    run, _ = make_key_run({"KEY_A": {"quota_at": 1, "reset_s": 600.0}, "KEY_B": {"quota_at": 1, "reset_s": 600.0}},
                          total=3, concurrency=1)
    await drive(run, 3)
    assert (run.stop.reason, run.stop.message) == (StopReason.QUOTA, "daily quota exhausted")
    assert run.sink.results == []


async def test_with_wait_quota_every_key_spent_parks_the_run_until_the_first_reset() -> None:
    keys = {"KEY_A": {"quota_at": 1, "reset_s": 600.0}, "KEY_B": {"quota_at": 1, "reset_s": 300.0}}
    run, sends = make_key_run(keys, total=2, concurrency=1, wait_quota=True)
    await drive(run, 2)
    assert run.stop == PoolStop()
    assert sends_by_key(sends) == {"KEY_A": [0.0], "KEY_B": [1.0, 302.0, 303.0]}


async def test_a_server_delay_past_the_cap_sets_that_key_aside_while_the_others_send(caplog) -> None:
    run, sends = make_key_run({"KEY_A": {"limited_s": 3600.0, "after_s": 0.5}, "KEY_B": {}}, total=4, concurrency=2)
    with caplog.at_level("WARNING", logger="batchrun.running.keys"):
        await drive(run, 4)
    assert run.stop == PoolStop()
    assert [env for _, env, _ in sends].count("KEY_A") == 1
    assert sorted(row[:3] for row in run.sink.rows()) == [(f"r{n}", "ok", 1) for n in range(1, 5)]
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith("the key in KEY_A was asked to wait 1h00m: set aside until ")


async def test_a_429_storm_on_one_key_holds_back_that_key_only_and_the_run_is_not_shown_paused() -> None:
    keys = {"KEY_A": {"limited_s": 30.0, "after_s": 0.0}, "KEY_B": {"after_s": 0.0}}
    run, sends = make_key_run(keys, total=40, concurrency=16)
    await drive(run, 40, at=((5.0, run.pool.interrupt),))  # KEY_A only ever answers 429: stop at t=5
    key_a, key_b = run.pool.keys.lanes
    assert (key_a.limiter.grant_wait(), key_b.limiter.grant_wait()) == (25.0, 0.0)  # KEY_A paused to t=30
    assert run.progress.pause_reason is None  # the run was not paused: KEY_B sent on
    answered_by_b = [rid for _, env, rid in sends if env == "KEY_B"]
    assert sorted(r.request_id for r in run.sink.results) == sorted(answered_by_b)
    # the rest were KEY_A's 429s, each waiting out its own 30 s retry delay when the run stopped
    assert (len(answered_by_b), run.stop.abandoned) == (28, 12)
