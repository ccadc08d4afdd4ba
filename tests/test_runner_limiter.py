"""Limiter: exact grant schedules on a fake clock for every limit, the shared pause and the adaptive rate."""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable

import anyio
import pytest

from batchrun.running.adaptive import (
    CLEAN_REPLIES,
    DECREASE,
    FLOOR_RATE,
    PROBE_CLIMB,
    TRIAL_REPLIES,
    AdaptiveRate,
)
from batchrun.running.clock import FakeClock, settle
from batchrun.running.limiter import (
    PACE_FRACTION,
    PACE_SAMPLE,
    STORM_LIMITED,
    Limiter,
    Pause,
    TokenBucket,
)

pytestmark = pytest.mark.anyio


def paced(per_minute: float) -> float:
    """Seconds between grants for a configured per-minute limit."""
    return 60 / (per_minute * PACE_FRACTION)


async def run_workers(clock: FakeClock, *workers: Callable[[], Awaitable[None]]) -> None:
    async with clock.autojump():
        async with anyio.create_task_group() as tg:
            for worker in workers:
                tg.start_soon(worker)


# --- requests per minute ---------------------------------------------------------------------


async def test_rpm_60_grants_one_request_per_paced_second() -> None:
    clock = FakeClock()
    limiter = Limiter(concurrency=8, requests_per_minute=60, clock=clock)
    granted: list[float] = []

    async def worker() -> None:
        for _ in range(2):
            permit = await limiter.acquire()
            granted.append(clock.now())
            limiter.release(permit)

    await run_workers(clock, worker, worker, worker)
    # The bucket holds one request (60/min is far below the 20/s where BURST_SECONDS adds more).
    assert granted == pytest.approx([k * paced(60) for k in range(6)], abs=1e-9)


async def test_rpm_grants_go_to_waiters_in_arrival_order() -> None:
    clock = FakeClock()
    limiter = Limiter(concurrency=8, requests_per_minute=60, clock=clock)
    order: list[str] = []

    def worker(name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            limiter.release(await limiter.acquire())
            order.append(name)

        return run

    await run_workers(clock, *(worker(name) for name in "abcde"))
    assert order == list("abcde")


async def test_a_high_rpm_allows_a_burst_of_fifty_milliseconds_then_paces() -> None:
    clock = FakeClock()
    limiter = Limiter(concurrency=100, requests_per_minute=12_000, clock=clock)  # 196/s paced
    granted: list[float] = []

    async def worker() -> None:
        limiter.release(await limiter.acquire())
        granted.append(clock.now())

    await run_workers(clock, *([worker] * 12))
    rate = 12_000 / 60 * PACE_FRACTION
    burst = rate * 0.05  # 9.8 requests: nine at once, then one every 1/rate as the level refills
    expected = [0.0] * 9 + [(k + 1 - (burst - 9)) / rate for k in range(3)]
    assert granted == pytest.approx(expected, abs=1e-9)


async def test_current_rate_reports_the_paced_rpm() -> None:
    limiter = Limiter(concurrency=1, requests_per_minute=1200, clock=FakeClock())
    assert limiter.current_rate_per_minute == pytest.approx(1200 * PACE_FRACTION)


async def test_no_limits_and_no_adaptation_report_no_rate() -> None:
    limiter = Limiter(concurrency=1, adaptive=False, clock=FakeClock())
    assert limiter.current_rate_per_minute is None


# --- tokens and images per minute ------------------------------------------------------------


async def test_tpm_lets_one_big_request_through_then_waits_out_its_debt() -> None:
    clock = FakeClock()
    limiter = Limiter(concurrency=4, tokens_per_minute=60_000, adaptive=False, clock=clock)
    rate = 60_000 / 60 * PACE_FRACTION  # 980 tokens/s, bucket of 49
    granted: list[float] = []

    async def worker() -> None:
        limiter.release(await limiter.acquire(tokens=980))
        granted.append(clock.now())

    await run_workers(clock, worker, worker, worker)
    assert granted == pytest.approx([0.0, 980 / rate, 2 * 980 / rate], abs=1e-9)
    assert granted[1] == pytest.approx(1.0)


@pytest.mark.parametrize(("actual", "next_grant"), [(1960, 2.0), (490, 0.5), (980, 1.0)])
async def test_tpm_is_corrected_by_the_actual_usage(actual: int, next_grant: float) -> None:
    clock = FakeClock()
    limiter = Limiter(concurrency=4, tokens_per_minute=60_000, adaptive=False, clock=clock)
    limiter.release(await limiter.acquire(tokens=980), actual_tokens=actual)
    async with clock.autojump():
        limiter.release(await limiter.acquire(tokens=980))
    assert clock.now() == pytest.approx(next_grant)


async def test_a_smaller_actual_usage_wakes_a_sleeping_waiter_early() -> None:
    clock = FakeClock()
    limiter = Limiter(concurrency=4, tokens_per_minute=60_000, adaptive=False, clock=clock)
    first = await limiter.acquire(tokens=980)
    granted: list[float] = []

    async def waiter() -> None:
        limiter.release(await limiter.acquire(tokens=980))
        granted.append(clock.now())

    async with clock.autojump():
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await clock.sleep(0.1)  # the waiter sleeps until t=1.0 for 931 tokens of debt
            limiter.release(first, actual_tokens=490)  # 490 back: the debt is paid by t=0.5
    assert granted == pytest.approx([0.5])


async def test_ipm_paces_image_requests_and_lets_text_requests_pass() -> None:
    clock = FakeClock()
    limiter = Limiter(concurrency=8, images_per_minute=60, adaptive=False, clock=clock)
    granted: list[tuple[int, float]] = []

    async def worker(images: int) -> None:
        limiter.release(await limiter.acquire(images=images))
        granted.append((images, clock.now()))

    async with clock.autojump():
        for images in (1, 1, 0, 1):
            await worker(images)
    assert granted == [(1, 0.0), (1, pytest.approx(paced(60))), (0, pytest.approx(paced(60))),
                       (1, pytest.approx(2 * paced(60)))]


def test_token_bucket_refills_continuously_up_to_its_capacity() -> None:
    bucket = TokenBucket(rate=100.0, now=0.0)  # capacity 5
    bucket.take(5, now=0.0)
    assert bucket.wait_time(1, now=0.0) == pytest.approx(0.01)
    assert bucket.wait_time(1, now=0.01) == 0.0
    assert bucket.wait_time(5, now=10.0) == 0.0
    bucket.take(5, now=10.0)
    assert bucket.level == pytest.approx(0.0)


# --- concurrency and the shared pause --------------------------------------------------------


async def test_concurrency_caps_permits_in_flight() -> None:
    clock = FakeClock()
    limiter = Limiter(concurrency=2, adaptive=False, clock=clock)
    first, second = await limiter.acquire(), await limiter.acquire()
    got: list[object] = []

    async def third() -> None:
        got.append(await limiter.acquire())

    async with anyio.create_task_group() as tg:
        tg.start_soon(third)
        await settle()
        assert limiter.in_flight == 2 and got == []
        limiter.release(first)
        await settle()
        assert limiter.in_flight == 2 and len(got) == 1
    limiter.release(second)
    assert limiter.in_flight == 1


async def test_releasing_a_permit_twice_is_refused() -> None:
    limiter = Limiter(concurrency=1, adaptive=False, clock=FakeClock())
    permit = await limiter.acquire()
    limiter.release(permit)
    with pytest.raises(RuntimeError):
        limiter.release(permit)


async def test_a_cancelled_acquire_gives_its_slot_back() -> None:
    clock = FakeClock()
    limiter = Limiter(concurrency=1, requests_per_minute=60, clock=clock)
    limiter.release(await limiter.acquire())  # the bucket is now empty until t≈1.02
    with anyio.move_on_after(0):
        await limiter.acquire()
    assert limiter.in_flight == 0
    async with clock.autojump():
        limiter.release(await limiter.acquire())
    assert clock.now() == pytest.approx(paced(60))


@pytest.mark.parametrize("rpm", [None, 600])
async def test_a_429_with_retry_delay_7s_holds_every_worker_back_7s(rpm: float | None) -> None:
    clock = FakeClock()
    limiter = Limiter(concurrency=8, requests_per_minute=rpm, adaptive=False, clock=clock)
    granted: list[float] = []

    async def unlucky() -> None:
        permit = await limiter.acquire()
        await clock.sleep(0.5)  # the reply: 429 with RetryInfo.retryDelay "7s"
        limiter.release(permit, rate_limited=True)
        limiter.pause_all(7.0)

    async def worker() -> None:
        await clock.sleep(1.0)
        limiter.release(await limiter.acquire())
        granted.append(clock.now())

    await run_workers(clock, unlucky, *([worker] * 4))
    if rpm is None:
        assert granted == [7.5] * 4
    else:
        assert granted == pytest.approx([7.5 + k * paced(rpm) for k in range(4)], abs=1e-9)


async def test_a_shorter_pause_does_not_cut_a_longer_one() -> None:
    clock = FakeClock()
    limiter = Limiter(concurrency=2, adaptive=False, clock=clock)
    limiter.pause_all(7.0)
    limiter.pause_all(2.0)
    async with clock.autojump():
        limiter.release(await limiter.acquire())
    assert clock.now() == 7.0


async def test_a_pause_set_while_a_worker_waits_for_the_bucket_holds_it_too() -> None:
    clock = FakeClock()
    limiter = Limiter(concurrency=2, requests_per_minute=60, clock=clock)
    limiter.release(await limiter.acquire())
    granted: list[float] = []

    async def waiter() -> None:
        limiter.release(await limiter.acquire())
        granted.append(clock.now())

    async with clock.autojump():
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await clock.sleep(0.5)  # the waiter sleeps until t≈1.02 for the bucket
            limiter.pause_all(3.0)
    assert granted == [3.5]


# --- a server's delay: a lone 429 delays its own retry, a 429 storm every worker --------------


async def test_a_lone_429_with_a_retry_delay_holds_no_other_worker_back() -> None:
    clock = FakeClock()
    limiter = Limiter(concurrency=8, adaptive=False, clock=clock)
    granted: list[float] = []
    held: list[object] = []

    async def unlucky() -> None:
        permit = await limiter.acquire()
        await clock.sleep(0.5)  # the reply: 429 with RetryInfo.retryDelay "7s"
        limiter.release(permit, rate_limited=True)
        held.append(limiter.hold_back(7.0))

    async def worker() -> None:
        await clock.sleep(1.0)
        limiter.release(await limiter.acquire())
        granted.append(clock.now())

    await run_workers(clock, unlucky, *([worker] * 4))
    assert held == [None] and granted == [1.0] * 4


async def test_a_429_storm_holds_every_worker_back_for_the_servers_delay() -> None:
    clock = FakeClock()
    limiter = Limiter(concurrency=32, adaptive=False, clock=clock)
    permits = [await limiter.acquire() for _ in range(STORM_LIMITED)]
    held = []
    for permit in permits:
        limiter.release(permit, rate_limited=True)
        held.append(limiter.hold_back(7.0))
    assert held[:-1] == [None] * (STORM_LIMITED - 1)
    assert held[-1] == Pause(7.0, "a 429 storm (10 of the last 10 replies); the server asked for 7s")
    async with clock.autojump():
        limiter.release(await limiter.acquire())
    assert clock.now() == 7.0


async def test_a_429_storm_ends_when_half_the_last_twenty_replies_are_no_longer_429s() -> None:
    limiter = Limiter(concurrency=32, adaptive=False, clock=FakeClock())
    for limited in [True] * STORM_LIMITED + [False] * 10:
        limiter.release(await limiter.acquire(), rate_limited=limited)
    assert limiter.storming  # 10 of the last 20
    limiter.release(await limiter.acquire())
    assert not limiter.storming  # 9 of the last 20
    limiter.release(await limiter.acquire(), rate_limited=True)
    assert limiter.hold_back(7.0) is None


# --- adaptive rate ---------------------------------------------------------------------------


async def test_adaptive_is_the_default_without_rpm_and_starts_at_60_per_minute() -> None:
    limiter = Limiter(concurrency=4, clock=FakeClock())
    assert limiter.current_rate_per_minute == pytest.approx(60.0)


async def test_adaptive_slow_start_adds_one_request_per_second_per_bound_success() -> None:
    clock = FakeClock()
    limiter = Limiter(concurrency=4, clock=clock)
    granted: list[float] = []
    async with clock.autojump():
        for _ in range(4):
            limiter.release(await limiter.acquire())
            granted.append(clock.now())
    # t=0 found the bucket full (not bound: no climb); then 1/s -> 2/s -> 3/s.
    assert granted == pytest.approx([0.0, 1.0, 1.5, 1.5 + 1 / 3])
    assert limiter.current_rate_per_minute == pytest.approx(4 * 60)


async def test_adaptive_does_not_climb_when_the_rate_is_not_what_holds_sends_back() -> None:
    clock = FakeClock()
    limiter = Limiter(concurrency=1, clock=clock)
    async with clock.autojump():
        for _ in range(3):
            permit = await limiter.acquire()
            await clock.sleep(2.0)  # slow replies: the bucket is full again at each acquire
            limiter.release(permit)
    assert limiter.current_rate_per_minute == pytest.approx(60.0)


async def test_adaptive_halves_on_the_first_429_once_per_round_trip() -> None:
    clock = FakeClock()
    limiter = Limiter(concurrency=8, clock=clock)
    async with clock.autojump():
        sent_at_old_rate = [await limiter.acquire() for _ in range(3)]
        for permit in sent_at_old_rate:
            limiter.release(permit, rate_limited=True)
        assert limiter.current_rate_per_minute == pytest.approx(30.0)
        limiter.release(await limiter.acquire(), rate_limited=True)  # sent at the new rate
    assert limiter.current_rate_per_minute == pytest.approx(30.0 * DECREASE)


async def test_adaptive_with_an_rpm_starts_there_and_never_climbs_above() -> None:
    clock = FakeClock()
    limiter = Limiter(concurrency=4, requests_per_minute=120, adaptive=True, clock=clock)
    async with clock.autojump():
        for _ in range(5):
            limiter.release(await limiter.acquire())
    assert limiter.current_rate_per_minute == pytest.approx(120 * PACE_FRACTION)
    async with clock.autojump():
        limiter.release(await limiter.acquire(), rate_limited=True)
    assert limiter.current_rate_per_minute == pytest.approx(120 * PACE_FRACTION * DECREASE)


def test_adaptive_rate_never_falls_below_the_floor() -> None:
    rate = AdaptiveRate(start=1.0)
    for _ in range(200):
        rate.on_rate_limited(rate.epoch)
    assert rate.rate == FLOOR_RATE


def test_adaptive_rate_climbs_fast_far_below_the_ceiling_and_slowly_near_it() -> None:
    rate = AdaptiveRate(start=20.0)
    rate.on_rate_limited(rate.epoch)  # leaves slow start: ceiling 20, rate 10
    assert (rate.ceiling, rate.rate) == (20.0, 10.0)
    rate.on_success()
    assert rate.rate == pytest.approx(10.0 + 0.10 * 20.0 / 10.0)  # fast: 2 req/s per second
    rate.rate = 19.5
    rate.on_success()
    assert rate.rate == pytest.approx(19.5 + PROBE_CLIMB * 20.0 / 19.5)  # probe: 0.2 req/s per second


def test_adaptive_rate_probes_slower_each_time_the_same_ceiling_is_confirmed() -> None:
    rate = AdaptiveRate(start=20.0)
    rate.on_rate_limited(rate.epoch)
    slopes = []
    for _ in range(3):
        rate.rate = 20.3  # climbed back to just above the ceiling, then another 429
        rate.on_rate_limited(rate.epoch)
        rate.rate = 20.0
        before = rate.rate
        rate.on_success()
        slopes.append((rate.rate - before) * before / 20.3)
    assert slopes == pytest.approx([PROBE_CLIMB / 2, PROBE_CLIMB / 4, PROBE_CLIMB / 8])


def test_adaptive_rate_probes_at_full_speed_again_when_the_ceiling_moves() -> None:
    rate = AdaptiveRate(start=20.0)
    rate.on_rate_limited(rate.epoch)
    rate.rate = 20.3
    rate.on_rate_limited(rate.epoch)  # confirmed: probe halved
    rate.rate = 30.0
    rate.on_rate_limited(rate.epoch)  # a new ceiling: probe back to full speed
    rate.rate = 30.0
    rate.on_success()
    assert rate.rate == pytest.approx(30.0 + PROBE_CLIMB * 30.0 / 30.0)


async def test_a_decrease_on_trial_holds_its_rate_then_climbs_after_thirty_clean_replies() -> None:
    clock = FakeClock()
    limiter = Limiter(concurrency=4, requests_per_minute=600, adaptive=True, clock=clock)
    async with clock.autojump():
        limiter.release(await limiter.acquire(), rate_limited=True)  # 588/min -> 529.2/min
        for _ in range(CLEAN_REPLIES - 1):
            limiter.release(await limiter.acquire())
        assert limiter.current_rate_per_minute == pytest.approx(600 * PACE_FRACTION * DECREASE)
        limiter.release(await limiter.acquire())  # the 30th clean reply: the decrease stays
        limiter.release(await limiter.acquire())  # and the rate climbs again
    assert limiter.current_rate_per_minute > 600 * PACE_FRACTION * DECREASE


async def test_429s_as_frequent_at_half_the_rate_are_taken_for_background_and_the_pace_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="batchrun.running.limiter")
    clock = FakeClock()
    limiter = Limiter(concurrency=4, unpaced_until_429=True, clock=clock)
    rates = []
    async with clock.autojump():
        for phase in range(3):  # before the first 429, the decrease on trial, the old rate again
            for k in range(20 if phase == 0 else TRIAL_REPLIES):
                limiter.release(await limiter.acquire(), rate_limited=(k + 1) % 20 == 0)  # 5%
            rates.append(limiter.current_rate_per_minute)
    assert rates == [20 * DECREASE * 60, None, None]  # 10% off 20 grants, then unpaced again
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "rate limited", "429s came as often at a lower rate", "429s came as often at both rates"]
    assert "taking 5.0% of replies as the server's background 429s" in caplog.records[-1].getMessage()


async def test_a_limit_with_no_background_is_paced_after_its_first_429_as_before() -> None:
    clock = FakeClock()
    limiter = Limiter(concurrency=4, unpaced_until_429=True, clock=clock)
    async with clock.autojump():
        for k in range(20):
            limiter.release(await limiter.acquire(), rate_limited=k == 19)
        for _ in range(TRIAL_REPLIES):  # under the limit now: no 429
            limiter.release(await limiter.acquire())
    assert limiter.current_rate_per_minute is not None


# --- limits are checked ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "limits",
    [{"concurrency": 0}, {"concurrency": 1, "requests_per_minute": 0},
     {"concurrency": 1, "tokens_per_minute": -5}],
)
def test_limits_below_one_are_refused(limits: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Limiter(clock=FakeClock(), **limits)  # type: ignore[arg-type]


# --- against a simulated server allowing 20 requests in any one second ----------------------


class SlidingWindowServer:
    """Accepts a request unless `limit` were accepted in the past second; a 429 says when to retry.

    `background`: also refuses that share of requests at random (seeded), whatever the rate, with a
    1 s retry delay, as Gemini's shared-capacity 429s come. `limit=None`: no limit, only those.
    """

    def __init__(self, limit: int | None, background: float = 0.0, seed: int = 1) -> None:
        self.limit, self.background = limit, background
        self.rng = random.Random(seed)
        self.accepted: list[float] = []
        self.refused = 0  # by the limit
        self.refused_at_random = 0

    def answer(self, now: float) -> float | None:
        """None if accepted, else the retry delay (until the window frees a place)."""
        if self.background and self.rng.random() < self.background:
            self.refused_at_random += 1
            return 1.0
        recent = [] if self.limit is None else [t for t in self.accepted[-self.limit :] if t > now - 1.0]
        if self.limit is None or len(recent) < self.limit:
            self.accepted.append(now)
            return None
        self.refused += 1
        return recent[0] + 1.0 - now


async def drive(limiter: Limiter, clock: FakeClock, server: SlidingWindowServer,
                seconds: float, workers: int = 64, latency: float = 0.2) -> None:
    """Workers as the runner drives them: a 429 is released as rate limited, may hold every worker
    back (a storm), and its request waits out the server's delay before it is sent again."""

    async def worker() -> None:
        while clock.now() < seconds:
            permit = await limiter.acquire()
            retry_after = server.answer(clock.now())
            if retry_after is None:
                await clock.sleep(latency)  # a 429 comes back at once
            limiter.release(permit, rate_limited=retry_after is not None)
            if retry_after is not None:
                limiter.hold_back(retry_after)
                await clock.sleep(retry_after)

    await run_workers(clock, *([worker] * workers))


def share_of_limit(server: SlidingWindowServer, start: float, end: float) -> float:
    accepted = sum(1 for t in server.accepted if start <= t < end)
    return accepted / ((end - start) * server.limit)


async def test_a_known_limit_is_reached_without_429s() -> None:
    clock, server = FakeClock(), SlidingWindowServer(limit=20)
    limiter = Limiter(concurrency=64, requests_per_minute=1200, clock=clock)
    await drive(limiter, clock, server, seconds=60.0)
    assert share_of_limit(server, 0.0, 60.0) >= 0.95
    assert server.refused == 0


async def test_an_unknown_limit_is_found_and_kept_with_few_429s() -> None:
    clock, server = FakeClock(), SlidingWindowServer(limit=20)
    limiter = Limiter(concurrency=64, clock=clock)
    await drive(limiter, clock, server, seconds=90.0)
    assert share_of_limit(server, 30.0, 90.0) >= 0.85
    assert server.refused <= 0.05 * (len(server.accepted) + server.refused)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_429s_at_5_percent_keep_four_fifths_of_the_throughput(seed: int) -> None:
    async def requests_in(server: SlidingWindowServer) -> int:
        clock = FakeClock()
        limiter = Limiter(concurrency=64, unpaced_until_429=True, clock=clock)
        await drive(limiter, clock, server, seconds=40.0, latency=0.5)
        return len(server.accepted)

    clean = await requests_in(SlidingWindowServer(limit=None))
    with_429s = await requests_in(SlidingWindowServer(limit=None, background=0.05, seed=seed))
    assert with_429s >= 0.8 * clean


async def test_a_limit_is_found_and_kept_under_background_429s() -> None:
    clock, server = FakeClock(), SlidingWindowServer(limit=20, background=0.05)
    limiter = Limiter(concurrency=64, unpaced_until_429=True, clock=clock)
    await drive(limiter, clock, server, seconds=90.0)
    assert share_of_limit(server, 30.0, 90.0) >= 0.85
    assert server.refused <= 0.1 * (len(server.accepted) + server.refused + server.refused_at_random)


def test_adaptive_rate_probes_at_full_speed_well_past_a_stale_ceiling() -> None:
    rate = AdaptiveRate(start=20.0)
    rate.on_rate_limited(rate.epoch)
    for _ in range(3):
        rate.rate = 20.3
        rate.on_rate_limited(rate.epoch)  # confirmed three times: the probe is slow
    rate.rate = 1.06 * rate.ceiling  # type: ignore[operator]
    before = rate.rate
    rate.on_success()
    assert (rate.rate - before) * before == pytest.approx(PROBE_CLIMB * rate.ceiling)  # type: ignore[operator]


# --- unpaced until the first 429 (what a run uses when no rpm is given) ------------------------


async def test_unpaced_until_the_first_429_then_paced_from_the_granted_rate() -> None:
    clock = FakeClock()
    limiter = Limiter(concurrency=32, unpaced_until_429=True, clock=clock)
    assert limiter.current_rate_per_minute is None
    permits = [await limiter.acquire() for _ in range(PACE_SAMPLE)]
    assert clock.now() == 0  # only concurrency binds: twenty grants at once
    for permit in permits[1:]:
        limiter.release(permit)
    limiter.release(permits[0], rate_limited=True)
    # twenty granted in the last second, what concurrency allowed (not a doubling's overshoot): less 10%
    assert limiter.current_rate_per_minute == pytest.approx(20 * DECREASE * 60)
    granted: list[float] = []

    async def worker() -> None:
        for _ in range(3):
            permit = await limiter.acquire()
            granted.append(clock.now())
            limiter.release(permit)

    await run_workers(clock, worker)
    # paced at 18/s from the 429 on, and held there while the decrease is on trial
    assert granted == pytest.approx([0.0, 1 / 18, 2 / 18], abs=1e-9)


async def test_unpaced_a_429_before_twenty_replies_starts_no_pace_unless_429s_storm() -> None:
    limiter = Limiter(concurrency=32, unpaced_until_429=True, clock=FakeClock())
    permits = [await limiter.acquire() for _ in range(5 + STORM_LIMITED)]
    for permit in permits[:5]:
        limiter.release(permit)
    for permit in permits[5:-1]:
        limiter.release(permit, rate_limited=True)
    assert limiter.current_rate_per_minute is None  # 9 of 14 replies: too few to measure, no storm
    limiter.release(permits[-1], rate_limited=True)
    assert limiter.storming and limiter.current_rate_per_minute == pytest.approx(15 * DECREASE * 60)


async def test_unpaced_limiter_never_paces_without_a_429() -> None:
    clock = FakeClock()
    limiter = Limiter(concurrency=4, unpaced_until_429=True, clock=clock)
    granted: list[float] = []

    async def worker() -> None:
        for _ in range(50):
            permit = await limiter.acquire()
            granted.append(clock.now())
            limiter.release(permit)

    await run_workers(clock, worker, worker)
    assert granted == [0.0] * 100 and limiter.current_rate_per_minute is None
