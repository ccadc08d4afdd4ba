"""The rate limiter every worker passes through before it sends a request.

Input: the job's limits (concurrency, requests/tokens/images per minute) and a clock.
Output: `Permit`s, handed out no faster than the limits allow, and taken back with what the reply
taught (actual token usage, whether it was a 429).

Invariants:
- At most `concurrency` permits are out at once.
- No `acquire` returns before the end of a `pause_all` (or of a pause `hold_back` set), whichever
  worker's reply asked for it.
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

With no requests-per-minute limit the request rate adapts to 429s (see `adaptive.py`: only 429s
whose share rises with the rate lower it). A run passes `unpaced_until_429`: until the first 429 that
lowers the rate only concurrency binds, so a job that never meets a limit is never slowed by a guessed
one (a slow start from 1 req/s cost 7 s of a 20,000-request run, bench/RESULTS.md); that 429 then
starts the adaptive rate from the pace granted over the last second, and if that decrease proves
useless the limiter is unpaced again.

A server that tells what is left of its limits (`x-ratelimit-*` headers, OpenAI and some gateways) is
obeyed before its first 429: no grant goes into a window it said was spent (see `headroom.py`).

A server's delay (`RetryInfo.retryDelay`) holds back every sender (`hold_back`) only when whatever
is sent now would meet the same refusal: during a 429 storm (half of the last `STORM_REPLIES`
replies), and while 429s come too often to be background (a limit overshot). Otherwise a 429 delays
only the retry of its own request (the retry policy waits at least the delay): Gemini's
shared-capacity 429s come at random, and pausing every worker for each cost more than the 429s did.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import anyio

from batchrun.errors import duration_text
from batchrun.records import Headroom
from batchrun.running.adaptive import (
    START_RATE,
    AdaptiveRate,
    RateJudge,
    RateState,
    ReplyWindow,
    Step,
)
from batchrun.running.clock import Clock
from batchrun.running.headroom import ServerHeadroom

log = logging.getLogger(__name__)

PACE_FRACTION = 0.98  # 2% = 20 ms per second of slack against a strict one-second window
BURST_SECONDS = 0.05  # a bucket holds 50 ms of its rate, and never less than one unit
NEGLIGIBLE_WAIT_S = 1e-6  # a shortfall refilled within this counts as none (float rounding)
NUDGE_MIN_S = 0.05  # a rate rise wakes the sleeping waiter only if it would sleep longer than this

STORM_REPLIES = 20  # a 429 storm: at least STORM_LIMITED 429s among the last STORM_REPLIES replies
STORM_LIMITED = 10
PACE_SAMPLE = 20  # unpaced, the replies a 429 waits for before it starts the pace (see _lowers_rate)


@dataclass(slots=True)
class Permit:
    """A right to send one request; give it back with `Limiter.release`."""

    tokens: int
    images: int
    acquired_at: float
    epoch: int  # the adaptive rate's decrease count when this permit was granted
    released: bool = False
    number: int = 0  # the order of its grant (1, 2, ...): of two replies, the later-granted one was counted later


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

    def time_for(self, amount: float, now: float) -> float:
        """Seconds until `amount` units would have refilled, queued demand included (no capacity cap)."""
        self._refill(now)
        return max(0.0, (amount - self.level) / self.rate)

    def set_rate(self, rate: float, now: float) -> None:
        """Refill at the old rate up to now, then continue at `rate`."""
        self._refill(now)
        self.rate = rate
        self.capacity = max(1.0, rate * BURST_SECONDS)
        self.level = min(self.level, self.capacity)


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
        first 429 that lowers the rate (a limit never met never slows a run); the adaptive rate then
        starts from the pace granted over the last second, an upper bound of what the server accepted."""
        _check_limits(concurrency, requests_per_minute, tokens_per_minute, images_per_minute)
        self._clock = clock
        now = clock.now()
        self._slots = anyio.Semaphore(concurrency, fast_acquire=True)
        self._gate = anyio.Lock(fast_acquire=True)
        self._in_flight = 0
        self._waiting = 0  # acquires not yet granted
        self._pause_until = -math.inf
        self._nap: anyio.CancelScope | None = None
        self._nap_until = -math.inf
        self._rate_bound = False
        self._adaptive = _adaptive_rate(requests_per_minute, adaptive)
        self._judge: RateJudge[_Before] | None = None if self._adaptive is None else RateJudge()
        self._storm = ReplyWindow(STORM_REPLIES)
        self._requests = _bucket(requests_per_minute, now)
        self._unpaced = unpaced_until_429 and self._adaptive is not None and requests_per_minute is None
        self._grants = GrantRate()
        if self._adaptive is not None and not self._unpaced:
            self._requests = TokenBucket(self._adaptive.rate, now)
        self._tokens = _bucket(tokens_per_minute, now)
        self._images = _bucket(images_per_minute, now)
        self._server = ServerHeadroom()  # the server's own count, from x-ratelimit-* headers
        self._granted = 0
        self._tokens_in_flight = 0
        self._headroom_from = -1  # the number of the permit whose reply told the headroom in force
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
        self._waiting += 1
        try:
            await self._slots.acquire()
            try:
                if self._gated or self._pause_until > self._clock.now():
                    async with self._gate:
                        await self._wait_for_turn(tokens, images)
            except BaseException:
                self._slots.release()
                raise
        finally:
            self._waiting -= 1
        self._in_flight += 1
        self._tokens_in_flight += tokens
        now = self._clock.now()
        if self._unpaced:
            self._grants.count(now)
        epoch = 0 if self._adaptive is None else self._adaptive.epoch
        self._granted += 1
        return Permit(tokens, images, now, epoch, number=self._granted)

    def grant_wait(self, tokens: int = 0, images: int = 0) -> float:
        """About how long an acquire made now would wait, behind the acquires already waiting (reads only).

        What a key pool compares to pick a key: the pause left, and the request bucket's refill for
        every waiter ahead plus this one; token and image buckets for this request alone."""
        now = self._clock.now()
        request_wait = 0.0 if self._requests is None else self._requests.time_for(self._waiting + 1, now)
        return max(0.0, request_wait, self._pause_until - now, self._other_waits(tokens, images, now))

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
        self._server.take(tokens, now)

    def _other_waits(self, tokens: int, images: int, now: float) -> float:
        token_wait = 0.0 if self._tokens is None else self._tokens.wait_time(tokens, now)
        image_wait = 0.0 if self._images is None else self._images.wait_time(images, now)
        return max(token_wait, image_wait, self._server.wait_time(tokens, now))

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
        self, permit: Permit, *, actual_tokens: int | None = None, rate_limited: bool = False,
        headroom: Headroom | None = None,
    ) -> None:
        """Give a permit back, with the actual token usage, whether the reply was a 429, and what the
        server's rate-limit headers said is left."""
        if permit.released:
            raise RuntimeError("this permit was already released")
        permit.released = True
        self._in_flight -= 1
        self._tokens_in_flight -= permit.tokens
        self._slots.release()
        now = self._clock.now()
        self._storm.add(rate_limited)
        if actual_tokens is not None and self._tokens is not None:
            self._tokens.correct(actual_tokens - permit.tokens, now)
            if actual_tokens < permit.tokens:
                self._nudge(now)
        if rate_limited and self._server.known and self._server.refills:
            log.info("a 429 came within the headroom the server's x-ratelimit headers stated: its window is "
                     "fixed, so a spent window now waits for its whole reset")
            self._server.refused()
        if headroom is not None and permit.number > self._headroom_from:  # an older count is stale
            self._headroom_from = permit.number
            self._server.update(headroom, self._in_flight, now, in_flight_tokens=self._tokens_in_flight)
            self._gated = True
            self._nudge(now)
        if self._adaptive is not None:
            self._adapt(permit, rate_limited, now)

    def _adapt(self, permit: Permit, rate_limited: bool, now: float) -> None:
        assert self._adaptive is not None and self._judge is not None
        step = self._judge.record(permit.epoch, rate_limited)
        if step is Step.UNDO:
            self._undo_decrease(now)
        elif step is Step.REDO:
            self._redo_decrease(now)
        elif step is Step.BACKGROUND:
            self._adaptive.forget_ceiling()
            log.info("429s came as often at both rates: taking %.1f%% of replies as the server's background "
                     "429s, not a limit", self._judge.background * 100)
        elif rate_limited:
            if permit.epoch == self._adaptive.epoch and self._lowers_rate():
                self._decrease(permit, now)
        elif self._rate_bound and self._requests is not None and self._judge.trial is None:
            self._adaptive.on_success()  # a rate on trial holds: its 429 share is measured at one rate
            self._requests.set_rate(self._adaptive.rate, now)
            self._nudge(now)

    def _lowers_rate(self) -> bool:
        """Whether a 429 for the current rate lowers it. Unpaced, not before PACE_SAMPLE replies (or a
        storm): the pace starts from the grants of the last second, which an early 429 would catch
        at a handful."""
        assert self._judge is not None
        storming = self.storming
        if self._requests is None and not storming and self._judge.recent.replies < PACE_SAMPLE:
            return False
        return self._judge.lowers_rate(storming)

    def _decrease(self, permit: Permit, now: float) -> None:
        """Lower the rate for a 429 that says it is too high, and put the decrease on trial."""
        assert self._adaptive is not None and self._judge is not None
        before = _Before(paced=self._requests is not None, rate=self._adaptive.state())
        if self._requests is None:
            self._start_pacing(now)
        else:
            self._adaptive.on_rate_limited(permit.epoch, self._refused())
            self._requests.set_rate(self._adaptive.rate, now)
        self._judge.cut(before, self._adaptive.epoch)
        log.info("rate limited: pacing at %.1f requests/min", self._adaptive.rate * 60)

    def _start_pacing(self, now: float) -> None:
        """The first decrease while unpaced: adapt from the rate granted over the last second."""
        assert self._adaptive is not None
        self._adaptive.start_from(self._grants.per_second(now), self._refused())
        self._requests = TokenBucket(self._adaptive.rate, now)
        self._unpaced, self._gated = False, True

    def _undo_decrease(self, now: float) -> None:
        """A decrease that did not lower the share of 429s: back to the rate (or no pace) before it."""
        assert self._adaptive is not None and self._judge is not None and self._judge.trial is not None
        before = self._judge.trial.undo
        self._adaptive.undo(before.rate)
        if not before.paced:
            self._requests, self._unpaced = None, True
            self._gated = self._tokens is not None or self._images is not None or self._server.known
            pace = "no pace: only concurrency binds"
        else:
            assert self._requests is not None
            self._requests.set_rate(self._adaptive.rate, now)
            self._nudge(now)
            pace = f"pacing at {self._adaptive.rate * 60:.1f} requests/min"
        self._judge.undone(self._adaptive.epoch)
        log.info("429s came as often at a lower rate: back to %s, to see if they are the server's", pace)

    def _redo_decrease(self, now: float) -> None:
        """The 429s rose again when a decrease was undone: they are about the rate; lower it for good."""
        assert self._adaptive is not None and self._judge is not None
        if self._requests is None:
            self._start_pacing(now)
        else:
            self._adaptive.on_rate_limited(self._adaptive.epoch, self._refused())
            self._requests.set_rate(self._adaptive.rate, now)
        self._judge.new_rate(self._adaptive.epoch)
        log.info("429s rose again at the higher rate: pacing at %.1f requests/min", self._adaptive.rate * 60)

    def _refused(self) -> float:
        """The share of 429s among the last STORM_REPLIES replies (0 until that many came)."""
        storm = self._storm
        return storm.limited / storm.replies if storm.replies == STORM_REPLIES else 0.0

    @property
    def storming(self) -> bool:
        """Whether 429s storm: at least STORM_LIMITED of the last STORM_REPLIES replies."""
        return self._storm.limited >= STORM_LIMITED

    def hold_back(self, seconds: float) -> Pause | None:
        """A reply asked to wait `seconds`: hold back every sender when 429s storm, or come too often
        to be background (a limit's: whatever is sent now meets the same full window). Else only the
        retry of its request waits (the retry policy does that). Returns the pause set, if any."""
        over = None if self._judge is None else self._judge.over_limit()
        if self.storming:
            reason = f"a 429 storm ({self._storm.limited} of the last {self._storm.replies} replies)"
        elif over is not None:
            reason = f"over the server's limit ({over.limited} of {over.replies} replies were 429s)"
        else:
            return None
        reason += f"; the server asked for {duration_text(seconds)}"
        self.pause_all(seconds, reason)
        return Pause(seconds, reason)

    def pause_all(self, seconds: float, reason: str = "the server asked to wait") -> None:
        """Let no acquire return before now + seconds (a longer pause already set stands)."""
        now = self._clock.now()
        until = now + seconds
        if until > self._pause_until:
            if self._pause_until <= now:  # one line per pause, not per extension of it
                log.info("pausing all sends for %.1f s: %s", seconds, reason)
            self._pause_until = until


@dataclass(frozen=True, slots=True)
class Pause:
    """Every sender held back for `seconds`, and why, in words for a progress line."""

    seconds: float
    reason: str


@dataclass(frozen=True, slots=True)
class _Before:
    """The limiter before a decrease: whether it paced requests, and the adaptive rate's state."""

    paced: bool
    rate: RateState


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
