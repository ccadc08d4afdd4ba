"""The rate limiter every worker passes through before it sends a request.

Input: the job's limits (concurrency, requests/tokens/images per minute) and a clock.
Output: `Permit`s, handed out no faster than the limits allow, and taken back with what the reply
taught (actual token usage, whether it was a 429).

Invariants:
- At most `concurrency` permits are out at once.
- No `acquire` returns before the end of a `pause_all`, whichever worker's reply asked for it.
- Waiters are served first come, first served: one waiter at a time (the holder of the gate) sleeps
  on the clock until the pause and every bucket allow it; the rest queue behind it. No polling, no
  task per call; a call that needs no waiting costs a few attribute reads.

Buckets refill continuously. Each holds `max(1 unit, BURST_SECONDS of its rate)`: a server that
counts a sliding window is never sent a burst above its limit, and at high rates the burst still
saves a wake-up per request. A single request bigger than the bucket is let through when the bucket
is full and leaves it in debt, which later requests wait out; corrections by actual token usage move
the level the same way. Configured limits are paced at `PACE_FRACTION` of their value: grants reach
the server shifted by event-loop and network jitter, and a pace exactly at a server's limit would
put about every other request over it in a strict window.

With no requests-per-minute limit the request rate adapts to 429s (see `AdaptiveRate`). A run
passes `unpaced_until_429`: until the first 429 only concurrency binds, so a job that never meets a
limit is never slowed by a guessed one (a slow start from 1 req/s cost 7 s of a 20,000-request run,
bench/RESULTS.md); that 429 then starts the adaptive rate from the pace granted over the last second.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import anyio

from batchrun.runner.clock import Clock

log = logging.getLogger(__name__)

PACE_FRACTION = 0.98  # 2% = 20 ms per second of slack against a strict one-second window
BURST_SECONDS = 0.05  # a bucket holds 50 ms of its rate, and never less than one unit
NEGLIGIBLE_WAIT_S = 1e-6  # a shortfall refilled within this counts as none (float rounding)
NUDGE_MIN_S = 0.05  # a rate rise wakes the sleeping waiter only if it would sleep longer than this

# Adaptive rate, in requests per second (see AdaptiveRate for the reasoning).
START_RATE = 1.0  # 60/min: low enough for small image quotas, doubles every round trip
FLOOR_RATE = 1.0 / 60  # 1/min: a storm of 429s never stops a run
SLOW_START_EXIT = 0.5  # first 429: a doubling may have overshot by up to 2x
DECREASE = 0.9  # later 429s: the ceiling is known, a gentle step back suffices
NEAR_CEILING = 0.95  # below this share of the ceiling, climb fast
FAST_CLIMB = 0.10  # share of the ceiling gained per second while far below it
PROBE_CLIMB = 0.01  # share of the ceiling gained per second near and above it
MIN_PROBE = 0.0005  # the slowest probe: 0.05%/s, 100 s from 95% to 100% of the ceiling
SAME_CEILING = 0.05  # a 429 within 5% of the last ceiling confirms it


@dataclass(slots=True)
class Permit:
    """A right to send one request; give it back with `Limiter.release`."""

    tokens: int
    images: int
    acquired_at: float
    epoch: int  # the adaptive rate's decrease count when this permit was granted
    released: bool = False


class TokenBucket:
    """A continuously refilled allowance of `rate` units per second."""

    __slots__ = ("rate", "capacity", "level", "_updated_at")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate * BURST_SECONDS)
        self.level = self.capacity
        self._updated_at = now

    def _refill(self, now: float) -> None:
        if now > self._updated_at:
            self.level = min(self.capacity, self.level + (now - self._updated_at) * self.rate)
            self._updated_at = now

    def wait_time(self, amount: float, now: float) -> float:
        """Seconds until `amount` may be taken (0 if now); an oversized amount needs a full bucket."""
        self._refill(now)
        wait = (min(amount, self.capacity) - self.level) / self.rate
        return wait if wait > NEGLIGIBLE_WAIT_S else 0.0

    def take(self, amount: float, now: float) -> None:
        """Take `amount` units, going into debt if the level is short."""
        self._refill(now)
        self.level -= amount

    def correct(self, extra: float, now: float) -> None:
        """Take `extra` more units (give back if negative), never above capacity."""
        self._refill(now)
        self.level = min(self.capacity, self.level - extra)

    def set_rate(self, rate: float, now: float) -> None:
        """Refill at the old rate up to now, then continue at `rate`."""
        self._refill(now)
        self.rate = rate
        self.capacity = max(1.0, rate * BURST_SECONDS)
        self.level = min(self.level, self.capacity)


class AdaptiveRate:
    """A request rate learnt from 429s: additive increase, multiplicative decrease.

    Classic AIMD halves on loss and so saws between 50% and 100% of the limit (75% on average), and
    every 429 also pauses all workers for the server's retry delay. Here the rate of the last counted
    429 is kept as the ceiling: below 95% of it the rate climbs fast (10% of the ceiling per second of
    successes), near it slowly (1% per second, halved each time a 429 confirms the same ceiling, down
    to 0.05%), and a 429 takes it back by only 10%. The rate so spends nearly all its time between 95%
    and 100% of the limit and meets a 429 rarer and rarer, which matters because each 429 may pause
    every worker: against a simulated server allowing 20 req/s (tests/test_runner_limiter.py) it holds
    about 97% of the limit with under 1% 429s. More than 5% past the ceiling with no 429, the limit
    has risen, and the probe goes back to full speed.

    Before the first 429 the rate is unknown: it starts at START_RATE and grows by one request per
    second per success (doubling every round trip), then halves on the first 429.

    Only one 429 per round trip counts: a permit granted before the last decrease answers for the
    old rate, so the burst of 429s one overload provokes lowers the rate once, not to the floor.
    """

    def __init__(self, *, start: float, cap: float | None = None) -> None:
        self.rate = start
        self.cap = cap
        self.ceiling: float | None = start if cap is not None else None
        self.epoch = 0
        self._probe = PROBE_CLIMB

    def on_success(self) -> None:
        """One success while the rate was what held sends back: climb."""
        rate = self.rate + self._slope() / self.rate
        self.rate = rate if self.cap is None else min(rate, self.cap)

    def _slope(self) -> float:
        """Requests per second gained per second of successes at the current rate."""
        if self.ceiling is None:
            return self.rate
        if self.rate < NEAR_CEILING * self.ceiling:
            return FAST_CLIMB * self.ceiling
        if self.rate > (1 + SAME_CEILING) * self.ceiling:
            return PROBE_CLIMB * self.ceiling  # no 429 well past the ceiling: the limit has risen
        return self._probe * self.ceiling

    def on_rate_limited(self, epoch: int) -> bool:
        """A 429 for a permit of `epoch`: step back unless that epoch's rate was already cut."""
        if epoch != self.epoch:
            return False
        first = self.ceiling is None
        if not first and abs(self.rate - self.ceiling) <= SAME_CEILING * self.ceiling:
            self._probe = max(MIN_PROBE, self._probe / 2)
        else:
            self._probe = PROBE_CLIMB
        self.ceiling = self.rate
        self.rate = max(FLOOR_RATE, self.rate * (SLOW_START_EXIT if first else DECREASE))
        self.epoch += 1
        return True


class GrantRate:
    """Grants per second over the last second, from two one-second counters (no per-grant list)."""

    __slots__ = ("_second", "_current", "_previous")

    def __init__(self) -> None:
        self._second, self._current, self._previous = -1, 0, 0

    def count(self, now: float) -> None:
        self._roll(now)
        self._current += 1

    def per_second(self, now: float) -> float:
        """The count of this second, plus the previous one weighted by how much of it is still in."""
        self._roll(now)
        return self._previous * (1.0 - (now - self._second)) + self._current

    def _roll(self, now: float) -> None:
        second = int(now)
        if second != self._second:
            self._previous = self._current if second == self._second + 1 else 0
            self._current, self._second = 0, second


class Limiter:
    """Concurrency, a shared pause, and request/token/image buckets; see the module docstring."""

    def __init__(
        self,
        *,
        concurrency: int,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        images_per_minute: float | None = None,
        adaptive: bool | None = None,
        unpaced_until_429: bool = False,
        clock: Clock,
    ) -> None:
        """`unpaced_until_429`: with an adaptive rate and no rpm, only concurrency binds until the
        first 429 (a limit never met never slows a run); the adaptive rate then starts from the pace
        granted over the last second, an upper bound of what the server accepted."""
        _check_limits(concurrency, requests_per_minute, tokens_per_minute, images_per_minute)
        self._clock = clock
        now = clock.now()
        self._slots = anyio.Semaphore(concurrency, fast_acquire=True)
        self._gate = anyio.Lock(fast_acquire=True)
        self._in_flight = 0
        self._pause_until = -math.inf
        self._nap: anyio.CancelScope | None = None
        self._nap_until = -math.inf
        self._rate_bound = False
        self._adaptive = _adaptive_rate(requests_per_minute, adaptive)
        self._requests = _bucket(requests_per_minute, now)
        self._unpaced = unpaced_until_429 and self._adaptive is not None and requests_per_minute is None
        self._grants = GrantRate()
        if self._adaptive is not None and not self._unpaced:
            self._requests = TokenBucket(self._adaptive.rate, now)
        self._tokens = _bucket(tokens_per_minute, now)
        self._images = _bucket(images_per_minute, now)
        self._gated = any(b is not None for b in (self._requests, self._tokens, self._images))

    @property
    def in_flight(self) -> int:
        """Permits granted and not yet released."""
        return self._in_flight

    @property
    def current_rate_per_minute(self) -> float | None:
        """The request pace in use (adaptive or configured), or None when only concurrency binds."""
        return None if self._requests is None else self._requests.rate * 60

    async def acquire(self, tokens: int = 0, images: int = 0) -> Permit:
        """Wait for a concurrency slot, the end of any pause, and room in every bucket."""
        await self._slots.acquire()
        try:
            if self._gated or self._pause_until > self._clock.now():
                async with self._gate:
                    await self._wait_for_turn(tokens, images)
        except BaseException:
            self._slots.release()
            raise
        self._in_flight += 1
        now = self._clock.now()
        if self._unpaced:
            self._grants.count(now)
        epoch = 0 if self._adaptive is None else self._adaptive.epoch
        return Permit(tokens, images, now, epoch)

    async def _wait_for_turn(self, tokens: int, images: int) -> None:
        """Sleep (holding the gate) until the pause is over and every bucket has room; take it."""
        rate_bound = False
        while True:
            now = self._clock.now()
            request_wait = 0.0 if self._requests is None else self._requests.wait_time(1, now)
            rate_bound = rate_bound or request_wait > 0
            wait = max(request_wait, self._pause_until - now, self._other_waits(tokens, images, now))
            if wait <= 0:
                break
            await self._nap_for(wait, now)
        self._rate_bound = rate_bound
        for bucket, amount in ((self._requests, 1), (self._tokens, tokens), (self._images, images)):
            if bucket is not None:
                bucket.take(amount, now)

    def _other_waits(self, tokens: int, images: int, now: float) -> float:
        token_wait = 0.0 if self._tokens is None else self._tokens.wait_time(tokens, now)
        image_wait = 0.0 if self._images is None else self._images.wait_time(images, now)
        return max(token_wait, image_wait)

    async def _nap_for(self, seconds: float, now: float) -> None:
        """Sleep, cut short by `_nudge` when a release makes room sooner than planned."""
        self._nap_until = now + seconds
        try:
            with anyio.CancelScope() as self._nap:
                await self._clock.sleep(seconds)
        finally:
            self._nap = None

    def _nudge(self, now: float) -> None:
        if self._nap is not None and self._nap_until - now > NUDGE_MIN_S:
            self._nap.cancel()

    def release(
        self, permit: Permit, *, actual_tokens: int | None = None, rate_limited: bool = False
    ) -> None:
        """Give a permit back, with the actual token usage and whether the reply was a 429."""
        if permit.released:
            raise RuntimeError("this permit was already released")
        permit.released = True
        self._in_flight -= 1
        self._slots.release()
        now = self._clock.now()
        if actual_tokens is not None and self._tokens is not None:
            self._tokens.correct(actual_tokens - permit.tokens, now)
            if actual_tokens < permit.tokens:
                self._nudge(now)
        if self._adaptive is not None:
            self._adapt(permit, rate_limited, now)

    def _adapt(self, permit: Permit, rate_limited: bool, now: float) -> None:
        assert self._adaptive is not None
        if self._requests is None:  # unpaced until this first 429
            if rate_limited:
                self._start_pacing(permit, now)
            return
        if rate_limited:
            if self._adaptive.on_rate_limited(permit.epoch):
                self._requests.set_rate(self._adaptive.rate, now)
                log.info("rate limited: pacing at %.1f requests/min", self._adaptive.rate * 60)
        elif self._rate_bound:
            self._adaptive.on_success()
            self._requests.set_rate(self._adaptive.rate, now)
            self._nudge(now)

    def _start_pacing(self, permit: Permit, now: float) -> None:
        """The first 429 while unpaced: adapt from the rate granted over the last second."""
        assert self._adaptive is not None
        self._adaptive.rate = max(FLOOR_RATE, self._grants.per_second(now))
        self._adaptive.on_rate_limited(permit.epoch)
        self._requests = TokenBucket(self._adaptive.rate, now)
        self._unpaced, self._gated = False, True
        log.info("rate limited: pacing at %.1f requests/min", self._adaptive.rate * 60)

    def pause_all(self, seconds: float) -> None:
        """Let no acquire return before now + seconds (a longer pause already set stands)."""
        until = self._clock.now() + seconds
        if until > self._pause_until:
            self._pause_until = until
            log.info("server asked to wait: pausing all sends for %.1f s", seconds)


def _check_limits(concurrency: int, *per_minute: float | None) -> None:
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    for limit in per_minute:
        if limit is not None and not limit > 0:
            raise ValueError(f"a per-minute limit must be above 0, got {limit}")


def _bucket(per_minute: float | None, now: float) -> TokenBucket | None:
    return None if per_minute is None else TokenBucket(per_minute / 60 * PACE_FRACTION, now)


def _adaptive_rate(requests_per_minute: float | None, adaptive: bool | None) -> AdaptiveRate | None:
    """None: adaptive iff no rpm. With an rpm, adaptive starts at it and never goes above it."""
    if adaptive is False or (adaptive is None and requests_per_minute is not None):
        return None
    if requests_per_minute is None:
        return AdaptiveRate(start=START_RATE)
    paced = requests_per_minute / 60 * PACE_FRACTION
    return AdaptiveRate(start=paced, cap=paced)
