"""Adaptive rate and RateJudge: which 429s lower the rate, and trials of each decrease, reply by reply."""

from __future__ import annotations

import pytest

from batchrun.running.adaptive import (
    CLEAN_REPLIES,
    TRIAL_REPLIES,
    AdaptiveRate,
    Counts,
    RateJudge,
    Step,
    significantly_above,
    significantly_below,
    significantly_higher,
)


def pattern(replies: int, every: int = 0) -> list[bool]:
    """`replies` replies, every `every`-th of them a 429 (none with 0)."""
    return [every > 0 and (k + 1) % every == 0 for k in range(replies)]


def feed(judge: RateJudge[str], epoch: int, outcomes: list[bool]) -> list[Step]:
    """Record the replies; the steps the judge asked for on the way."""
    return [step for limited in outcomes if (step := judge.record(epoch, limited)) is not None]


def cut_after(judge: RateJudge[str], outcomes: list[bool]) -> None:
    """Replies at epoch 0 ending in a 429 that lowers the rate: epoch 1 answers for the new rate."""
    assert outcomes[-1] and feed(judge, 0, outcomes) == []
    assert judge.lowers_rate(storming=False)
    judge.cut("the state before", 1)


# --- which 429s lower the rate ----------------------------------------------------------------


def test_while_no_background_is_learnt_any_429_lowers_the_rate() -> None:
    judge: RateJudge[str] = RateJudge()
    feed(judge, 0, pattern(150) + [True])
    assert judge.lowers_rate(storming=False)


def test_the_429_that_prompted_a_decrease_is_left_out_of_the_share_before_it() -> None:
    judge: RateJudge[str] = RateJudge()
    cut_after(judge, pattern(99) + [True])
    assert judge.trial is not None and judge.trial.before == Counts(99, 0)


def test_replies_of_permits_granted_before_a_decrease_count_for_the_old_rate() -> None:
    judge: RateJudge[str] = RateJudge()
    cut_after(judge, pattern(99) + [True])
    feed(judge, 0, [True, False])  # in flight when the rate was cut
    feed(judge, 1, [False])
    assert judge.trial is not None
    assert (judge.trial.before, judge.trial.after) == (Counts(101, 1), Counts(1, 0))


def test_on_trial_a_lone_429_waits_for_the_verdict_and_a_storm_does_not() -> None:
    judge: RateJudge[str] = RateJudge()
    cut_after(judge, pattern(100, every=20))
    feed(judge, 1, pattern(20, every=20))
    assert not judge.lowers_rate(storming=False)
    assert judge.lowers_rate(storming=True)


def test_on_trial_a_share_far_above_any_background_lowers_the_rate_again_once_twenty_came() -> None:
    judge: RateJudge[str] = RateJudge()
    cut_after(judge, pattern(100, every=20))
    feed(judge, 1, [True] * 6)  # 429s come back before successes: six of six says little yet
    assert not judge.lowers_rate(storming=False)
    feed(judge, 1, [False] * 14)  # 6 of 20: 2 expected at 10%, 4.0 over it is chance
    assert not judge.lowers_rate(storming=False)
    feed(judge, 1, [True])
    assert judge.lowers_rate(storming=False)  # 7 of 21


# --- a decrease on trial ------------------------------------------------------------------------


def test_a_decrease_after_which_the_429s_stop_stays_after_thirty_clean_replies() -> None:
    judge: RateJudge[str] = RateJudge()
    cut_after(judge, pattern(199) + [True])
    assert feed(judge, 1, pattern(CLEAN_REPLIES - 1)) == [] and judge.trial is not None
    assert feed(judge, 1, pattern(1)) == [] and judge.trial is None
    assert judge.background == 0


def test_a_decrease_that_leaves_the_share_of_429s_unchanged_is_undone() -> None:
    judge: RateJudge[str] = RateJudge()
    cut_after(judge, pattern(200, every=20))  # 5%
    assert feed(judge, 1, pattern(TRIAL_REPLIES - 1, every=20)) == []
    assert feed(judge, 1, pattern(1)) == [Step.UNDO]
    assert judge.trial is not None and judge.trial.undo == "the state before"


def test_the_same_share_at_the_old_rate_again_is_learnt_as_the_servers_background() -> None:
    judge: RateJudge[str] = RateJudge()
    cut_after(judge, pattern(200, every=20))
    assert feed(judge, 1, pattern(TRIAL_REPLIES, every=20)) == [Step.UNDO]
    judge.undone(2)
    assert feed(judge, 2, pattern(TRIAL_REPLIES, every=20)) == [Step.BACKGROUND]
    assert judge.trial is None and judge.background == pytest.approx(0.05)


def test_a_share_that_rises_again_at_the_old_rate_lowers_it_again_for_good() -> None:
    judge: RateJudge[str] = RateJudge()
    cut_after(judge, pattern(200, every=20))
    assert feed(judge, 1, pattern(TRIAL_REPLIES, every=20)) == [Step.UNDO]
    judge.undone(2)
    assert feed(judge, 2, pattern(TRIAL_REPLIES, every=6)) == [Step.REDO]  # 5% -> 16.5%
    assert judge.trial is None and judge.background == 0


def test_a_decrease_that_cut_the_share_to_a_third_stays() -> None:
    judge: RateJudge[str] = RateJudge()
    cut_after(judge, pattern(200, every=10))  # 10%, one of them the trigger
    assert feed(judge, 1, pattern(TRIAL_REPLIES, every=40)) == []  # 2.5%
    assert judge.trial is None and judge.background == 0


def test_a_share_too_high_for_background_keeps_the_decrease_whatever_followed() -> None:
    judge: RateJudge[str] = RateJudge()
    cut_after(judge, pattern(200, every=4))  # 25%
    assert feed(judge, 1, pattern(TRIAL_REPLIES, every=5)) == []  # 20%: not a third, but no background
    assert judge.trial is None and judge.background == 0


def test_with_a_background_learnt_a_429_lowers_the_rate_only_significantly_above_it() -> None:
    judge: RateJudge[str] = RateJudge()
    cut_after(judge, pattern(200, every=20))
    feed(judge, 1, pattern(TRIAL_REPLIES, every=20))
    judge.undone(2)
    feed(judge, 2, pattern(TRIAL_REPLIES, every=20))  # background 5%
    judge.new_rate(3)
    feed(judge, 3, pattern(181) + [True] * 19)  # 19 of 200: 10 expected, 9.2 over it is chance
    assert not judge.lowers_rate(storming=False)
    feed(judge, 3, [True])  # 20 of the last 200
    assert judge.lowers_rate(storming=False)


def test_the_share_at_a_new_rate_is_counted_afresh() -> None:
    judge: RateJudge[str] = RateJudge()
    feed(judge, 0, [True] * 5)
    judge.new_rate(1)
    assert (judge.recent.replies, judge.recent.limited) == (0, 0)
    feed(judge, 0, [True])  # a late reply for the old rate
    assert judge.recent.replies == 0


# --- binomial comparisons -----------------------------------------------------------------------


def test_significance_is_three_binomial_deviations() -> None:
    # 200 replies at 5%: 10 expected, deviation 3.08, so above 19.2 or below 0.8
    assert not significantly_above(Counts(200, 19), 0.05) and significantly_above(Counts(200, 20), 0.05)
    assert significantly_below(Counts(200, 0), 0.05) and not significantly_below(Counts(200, 1), 0.05)
    assert significantly_above(Counts(3, 1), 0.0)  # nothing expected: any 429 is above
    assert significantly_higher(Counts(200, 33), Counts(200, 10))
    assert not significantly_higher(Counts(200, 19), Counts(200, 10))


# --- the rate itself ------------------------------------------------------------------------------


def test_undo_goes_back_to_the_ceiling_before_the_decrease_and_a_new_epoch() -> None:
    rate = AdaptiveRate(start=20.0)
    rate.on_rate_limited(rate.epoch)  # ceiling 20, rate 10
    before = rate.state()
    rate.on_rate_limited(rate.epoch)  # ceiling 10, rate 9
    rate.undo(before)
    assert (rate.rate, rate.ceiling, rate.epoch) == (10.0, 20.0, 3)


def test_undo_keeps_a_rate_climbed_since_the_decrease() -> None:
    rate = AdaptiveRate(start=20.0)
    before = rate.state()
    rate.on_rate_limited(rate.epoch)
    rate.rate = 25.0
    rate.undo(before)
    assert (rate.rate, rate.ceiling) == (25.0, None)


def test_a_ceiling_set_by_background_429s_is_forgotten_and_the_rate_doubles_again() -> None:
    rate = AdaptiveRate(start=20.0)
    rate.on_rate_limited(rate.epoch)
    rate.on_rate_limited(rate.epoch)  # a slow probe near a ceiling of 10
    rate.forget_ceiling()
    before = rate.rate
    rate.on_success()
    assert rate.ceiling is None and rate.rate == pytest.approx(before + 1.0)  # slow start: +1/s per success


def test_with_a_configured_limit_a_forgotten_ceiling_is_that_limit_again() -> None:
    rate = AdaptiveRate(start=10.0, cap=10.0)
    rate.on_rate_limited(rate.epoch)  # rate 9, ceiling 10
    rate.on_rate_limited(rate.epoch)  # rate 8.1, ceiling 9
    rate.forget_ceiling()
    rate.on_success()
    assert rate.ceiling == 10.0 and rate.rate == pytest.approx(8.1 + 0.10 * 10.0 / 8.1)  # fast climb
