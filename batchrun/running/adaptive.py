"""The request rate learnt from 429s when no limit is configured, and which 429s it learns from.

Input: every reply, as the epoch of its permit (the rate's decrease count when it was granted) and
whether it was a 429. Output: the rate to pace at, and, at the end of a trial, a `Step` for the
limiter (undo a decrease, lower the rate again, or forget a ceiling that background 429s set).

Not every 429 is about the sending rate. A server's own limit refuses more the faster it is sent to:
its 429s rise with the rate and come in bursts at the ceiling. Gemini's shared-capacity 429s come at a
steady share whatever the rate, and cutting the rate for them only loses throughput (at 5% of them, a
limiter that cut on each went from 10.7 to 2.6 req/s). So every decrease is on trial (`RateJudge`),
and the rate holds while it is judged, so that each share of 429s is counted at one rate:

1. The decrease stays if, over the next `TRIAL_REPLIES` replies, the 429s are (almost) gone, fell to
   a third of their share before it, or fell significantly; or if they are too many to be background
   (above `MAX_BACKGROUND`). After a lone 429, `CLEAN_REPLIES` replies without one end the trial early.
2. Otherwise it is undone, and the old rate counted again over `TRIAL_REPLIES` replies. A share
   significantly higher there than at the lower rate: the 429s are about the rate, which is lowered
   again, for good. The same share: both are the server's background. It is learnt, and the ceiling
   those 429s set is forgotten.
3. A 429 lowers the rate when the share of 429s over the last `WINDOW_REPLIES` replies at the current
   rate is significantly above the background learnt (at first, any 429 does). While a trial runs,
   only a share significantly above MAX_BACKGROUND does, or a 429 storm.

With a true limit and no background, the first 429 at the ceiling lowers the rate, the 429s stop and
the decrease stays: plain AIMD, but for the rate holding CLEAN_REPLIES replies before it climbs again.
Shares are compared with binomial standard deviations (`SIGNIFICANT_SD`); the judge keeps counts only,
no clock, so tests replay it reply by reply.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

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

# Which 429s are about the rate (see RateJudge).
WINDOW_REPLIES = 200  # the share of 429s at the current rate is counted over its last replies
TRIAL_REPLIES = 200  # replies at the lowered rate before a decrease is judged...
CLEAN_REPLIES = 30  # ...or this many without a 429 after a lone one (see Trial.clean)
HELPED = 1 / 3  # a decrease stays if it cut the share of 429s to this part or less...
ROUGH_BEFORE = 50  # ...counted over this many replies before it; over fewer, if it did not raise it
MAX_BACKGROUND = 0.10  # a share of 429s above this is never taken for background...
MIN_BACKGROUND = 0.01  # ...nor one below this: too few to tell from a limit's edge, and cheap to cut for
BACKGROUND_MEMORY = 1000  # the background share is learnt over about this many recent replies
MIN_SAMPLE = 20  # the fewest replies at a rate whose share cuts a trial short (429s come back first)
SIGNIFICANT_SD = 3.0  # "significantly above a share": by this many binomial standard deviations
LIKELY_SD = 1.0  # "likely above": by one; a limit overshot is seen even in a small sample
HIGHER_SD = 2.0  # the old rate's share above the lower one's: a limit mistaken for background costs more


@dataclass(frozen=True, slots=True)
class RateState:
    """What a decrease changes in an AdaptiveRate, kept to undo it."""

    rate: float
    ceiling: float | None
    probe: float


class AdaptiveRate:
    """A request rate learnt from 429s: additive increase, multiplicative decrease.

    Classic AIMD halves on loss and so saws between 50% and 100% of the limit (75% on average). Here
    the rate of the last counted 429 is kept as the ceiling: below 95% of it the rate climbs fast (10%
    of the ceiling per second of successes), near it slowly (1% per second, halved each time a 429
    confirms the same ceiling, down to 0.05%), and a 429 takes it back by only 10% (or by the share of
    the recent replies refused, when more, at most half: a strict limit refuses what is sent above
    it). The rate so spends nearly all its time between 95% and 100% of the limit and meets a 429
    rarer and rarer: against a simulated server allowing 20 req/s (tests/test_runner_limiter.py) it
    holds about 97% of the limit with under 1% 429s. More than 5% past the ceiling with no 429, the
    limit has risen, and the probe goes back to full speed.

    Before the first 429 the rate is unknown: it starts at START_RATE and grows by one request per
    second per success (doubling every round trip), then halves on the first 429. A run unpaced until
    its first 429 starts from the rate it granted instead (`start_from`).

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

    def on_rate_limited(self, epoch: int, refused: float = 0.0) -> bool:
        """A 429 for a permit of `epoch`: step back unless that epoch's rate was already cut.

        `refused`: the share of recent replies that were 429s. A strict limit refuses what is sent
        above it, so the step back is at least that share (at most half).
        """
        if epoch != self.epoch:
            return False
        ceiling = self.ceiling
        first = ceiling is None
        if ceiling is not None and abs(self.rate - ceiling) <= SAME_CEILING * ceiling:
            self._probe = max(MIN_PROBE, self._probe / 2)
        else:
            self._probe = PROBE_CLIMB
        self.ceiling = self.rate
        self.rate = max(FLOOR_RATE, self.rate * (SLOW_START_EXIT if first else _step_back(refused)))
        self.epoch += 1
        return True

    def start_from(self, granted: float, refused: float = 0.0) -> None:
        """Unpaced until a 429: `granted` requests per second went out, all concurrency allowed, not
        a doubling's overshoot. That is the ceiling; the step back as for any later 429."""
        self.ceiling = max(FLOOR_RATE, granted)
        self.rate = max(FLOOR_RATE, self.ceiling * _step_back(refused))
        self._probe = PROBE_CLIMB
        self.epoch += 1

    def state(self) -> RateState:
        """The rate, ceiling and probe speed now (before a decrease, to undo it)."""
        return RateState(self.rate, self.ceiling, self._probe)

    def undo(self, before: RateState) -> None:
        """Go back to `before` a decrease that did not help, keeping any rate climbed since."""
        self.rate = max(self.rate, before.rate)
        self.ceiling, self._probe = before.ceiling, before.probe
        self.epoch += 1  # permits granted at the cut rate no longer answer for the rate

    def forget_ceiling(self) -> None:
        """The 429s that set the ceiling came whatever the rate: climb as if none had come."""
        self.ceiling = self.cap  # as at the start: the configured limit, or none
        self._probe = PROBE_CLIMB


def _step_back(refused: float) -> float:
    """The factor a 429 lowers the rate by: DECREASE, or 1 - `refused` down to SLOW_START_EXIT."""
    return min(DECREASE, max(SLOW_START_EXIT, 1.0 - refused))


class ReplyWindow:
    """The 429s among the last `size` replies."""

    __slots__ = ("size", "limited", "_outcomes")

    def __init__(self, size: int) -> None:
        self.size = size
        self.limited = 0
        self._outcomes: deque[bool] = deque(maxlen=size)

    def add(self, limited: bool) -> None:
        if len(self._outcomes) == self.size:
            self.limited -= self._outcomes[0]
        self._outcomes.append(limited)
        self.limited += limited

    def clear(self) -> None:
        self._outcomes.clear()
        self.limited = 0

    @property
    def replies(self) -> int:
        return len(self._outcomes)


@dataclass(slots=True)
class Counts:
    """Replies and the 429s among them."""

    replies: int = 0
    limited: int = 0

    def add(self, limited: bool) -> None:
        self.replies += 1
        self.limited += limited

    @property
    def share(self) -> float:
        return self.limited / self.replies if self.replies else 0.0


Undo = TypeVar("Undo")


class Step(enum.Enum):
    """What the end of a trial asks of the limiter."""

    UNDO = "undo"  # the decrease bought nothing: back to the state before it, and check that rate again
    REDO = "redo"  # the 429s rose again at the old rate: lower it again, for good
    BACKGROUND = "background"  # as many 429s at both rates: they are the server's, and set no ceiling


@dataclass(slots=True)
class Trial(Generic[Undo]):
    """A decrease on probation and, if it seemed to buy nothing, the old rate counted again."""

    undo: Undo  # the limiter's state before the decrease
    epoch: int  # permits of this epoch on answer for the rate on trial; earlier ones for the one before
    before: Counts  # the recent window at the decrease, then the old rate's late replies
    after: Counts = field(default_factory=Counts)  # at the lowered rate
    again: Counts | None = None  # at the old rate again, once the decrease was undone

    @property
    def background_possible(self) -> bool:
        """Whether the 429s before the decrease were few enough to be rate-independent background."""
        return not significantly_above(self.before, MAX_BACKGROUND, LIKELY_SD)

    @property
    def clean(self) -> bool:
        """The 429 that set the decrease off came alone, and CLEAN_REPLIES after it none: a limit's edge.

        (After many 429s a server's window may let the first replies at a lower rate through, and
        refuse again once it is full: that trial runs its whole length.)
        """
        after = self.after
        return (self.again is None and after.replies == CLEAN_REPLIES and after.limited == 0
                and self.before.share < MIN_BACKGROUND)


class RateJudge(Generic[Undo]):
    """Which 429s say the rate is too high; decreases on trial (see the module docstring)."""

    def __init__(self) -> None:
        self.epoch = 0  # the rate's: replies of permits of this epoch answer for the current rate
        self.recent = ReplyWindow(WINDOW_REPLIES)  # the last replies at the current rate
        self.learnt = Counts()  # fair samples of the background (see `_conclude`), recent ones weighing most
        self.trial: Trial[Undo] | None = None

    @property
    def background(self) -> float:
        """The share of 429s that comes whatever the rate, as learnt so far (0 until learnt)."""
        return self.learnt.share

    def record(self, epoch: int, limited: bool) -> Step | None:
        """Count one reply; at the end of a trial, what the limiter must do (the undo is in `trial`)."""
        if epoch == self.epoch:
            self.recent.add(limited)
        trial = self.trial
        if trial is None:
            return None
        if epoch < trial.epoch:
            if trial.again is None:
                trial.before.add(limited)
            return None
        counts = trial.after if trial.again is None else trial.again
        counts.add(limited)
        return self._conclude(trial) if counts.replies >= TRIAL_REPLIES or trial.clean else None

    def _conclude(self, trial: Trial[Undo]) -> Step | None:
        """The verdict at the end of the probation, or of the check of the old rate after an undo.

        `after` and `again` are fair samples of the share at one rate each (`before` was counted
        because a 429 came, and is biased high): the background is learnt from them alone.
        """
        if trial.again is None:
            if not self._helped(trial):
                trial.again = Counts()
                return Step.UNDO
            self.trial = None
            if trial.after.share < self.background:
                self._learn(trial.after)  # a share measured below it: the background can be no higher
            return None
        self.trial = None
        after, again = trial.after, trial.again
        both = Counts(after.replies + again.replies, after.limited + again.limited)
        if significantly_higher(again, after) or again.share > MAX_BACKGROUND or both.share < MIN_BACKGROUND:
            return Step.REDO
        self._learn(trial.after)
        self._learn(trial.again)
        return Step.BACKGROUND

    def _helped(self, trial: Trial[Undo]) -> bool:
        """Whether a decrease lowered the share of 429s, or there were too many to be background."""
        before, after, background = trial.before, trial.after, self.background
        if not trial.background_possible or after.share > MAX_BACKGROUND:
            return True  # too many 429s for background: the rate has to come down
        if after.share < MIN_BACKGROUND:
            return True  # (almost) none left: under a limit now
        if background > 0:
            # `before` crossed the threshold set by the background: judge `after` against it alone
            return significantly_below(after, background)
        if before.replies < ROUGH_BEFORE:
            return after.share <= before.share  # too little seen before to judge more finely
        if after.share <= HELPED * before.share:
            return True  # most 429s went with the old rate
        return significantly_above(before, after.share)  # fewer, if not by two thirds: far above a limit

    def _learn(self, sample: Counts) -> None:
        """Fold a fair sample into the background share, older samples weighing less."""
        learnt = self.learnt
        learnt.replies += sample.replies
        learnt.limited += sample.limited
        if learnt.replies > BACKGROUND_MEMORY:
            self.learnt = Counts(learnt.replies // 2, learnt.limited // 2)

    def over_limit(self) -> Counts | None:
        """The share of 429s that set off the decrease on trial, if too high to be background (a
        limit's), unless MIN_SAMPLE replies at the rate on trial already show no more than that."""
        trial = self.trial
        if trial is None or trial.background_possible:
            return None
        window = Counts(self.recent.replies, self.recent.limited)
        if window.replies >= MIN_SAMPLE and not significantly_above(window, MAX_BACKGROUND, LIKELY_SD):
            return None
        return trial.before

    def lowers_rate(self, storming: bool) -> bool:
        """Whether a 429 answering for the current rate says that rate is too high."""
        if storming:
            return True
        trial = self.trial
        window = Counts(self.recent.replies, self.recent.limited)
        if trial is not None and trial.background_possible:
            # wait for the verdict on the last decrease, unless the rate on trial is far too high
            return window.replies >= MIN_SAMPLE and significantly_above(window, MAX_BACKGROUND)
        return significantly_above(window, self.background)

    def cut(self, undo: Undo, epoch: int) -> None:
        """A 429 lowered the rate (permits of `epoch` on answer for it): put the decrease on trial.

        The 429 that prompted it is left out of the share before: counted, it would make every
        window that ends in a 429 look worse than the rate it was sent at.
        """
        before = Counts(self.recent.replies - 1, self.recent.limited - 1)
        self.trial = Trial(undo, epoch, before)
        self.new_rate(epoch)

    def undone(self, epoch: int) -> None:
        """The limiter went back to the old rate (permits of `epoch` on answer for it): count it again."""
        assert self.trial is not None and self.trial.again is not None
        self.trial.epoch = epoch
        self.new_rate(epoch)

    def new_rate(self, epoch: int) -> None:
        """The rate changed: replies of permits of `epoch` on answer for it."""
        self.epoch = epoch
        self.recent.clear()


def significantly_above(counts: Counts, share: float, deviations: float = SIGNIFICANT_SD) -> bool:
    """Whether `counts` hold more 429s than `share` explains, by more than `deviations` (binomial)."""
    expected = counts.replies * share
    return counts.limited > expected + deviations * math.sqrt(expected * (1 - share))


def significantly_higher(high: Counts, low: Counts) -> bool:
    """Whether `high` has a share of 429s above `low`'s by more than HIGHER_SD (two samples)."""
    pooled = (high.limited + low.limited) / (high.replies + low.replies)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / high.replies + 1 / low.replies))
    return high.share - low.share > HIGHER_SD * spread


def significantly_below(counts: Counts, share: float) -> bool:
    """Whether `counts` hold fewer 429s than `share` explains, by more than SIGNIFICANT_SD deviations."""
    expected = counts.replies * share
    return counts.limited < expected - SIGNIFICANT_SD * math.sqrt(expected * (1 - share))
