"""Per-minute sliding windows and the per-day quota, on a clock the test controls."""

from __future__ import annotations

from batchrun.simulator.faults import Limits
from batchrun.simulator.limits import DayQuota, LimitBook, SlidingWindow, TokenWindow


def test_window_admits_up_to_its_limit_then_says_when_a_slot_frees():
    window = SlidingWindow(3)
    assert [window.admit(t) for t in (0.0, 10.0, 20.0)] == [None, None, None]
    assert window.admit(30.0) == 30.0  # the request at t=0 leaves the window at t=60
    assert window.admit(60.0) is None
    assert window.admit(61.0) == 9.0


def test_refused_requests_do_not_fill_the_window():
    window = SlidingWindow(1)
    assert window.admit(0.0) is None
    assert [window.admit(t) for t in (1.0, 2.0, 3.0)] == [59.0, 58.0, 57.0]
    assert window.admit(60.0) is None


def test_window_asked_for_several_images_waits_for_enough_room():
    window = SlidingWindow(3)
    window.admit(0.0)
    window.admit(10.0)
    assert window.admit(20.0, count=2) == 40.0  # needs the t=0 slot free: at t=60


def test_day_quota_resets_at_midnight_pacific():
    quota = DayQuota(2)
    pacific_midnight = 1_800_000_000.0  # 08:00 UTC
    assert quota.admit(pacific_midnight - 10) is None
    assert quota.admit(pacific_midnight - 5) is None
    assert quota.admit(pacific_midnight - 1) == 1.0
    assert quota.admit(pacific_midnight) is None


def test_limit_book_checks_day_then_requests_then_images():
    book = LimitBook(Limits(requests_per_minute=2, images_per_minute=1, requests_per_day=3))
    assert book.check(0.0, images=1) is None
    assert book.check(1.0, images=1).quota_id == "GenerateContentOutputImagesPerMinutePerProjectPerModel"
    assert book.check(2.0, images=0).quota_id == "GenerateRequestsPerMinutePerProjectPerModel"
    refusal = book.check(3.0, images=0)
    assert refusal.per_day and refusal.quota_id == "GenerateRequestsPerDayPerProjectPerModel"


def test_a_token_window_counts_tokens_and_a_request_over_the_limit_waits_for_an_empty_window():
    window = TokenWindow(100)
    assert window.admit(0.0, 60) is None and window.admit(10.0, 30) is None
    assert window.admit(20.0, 20) == 40.0  # the 60 of t=0 must leave first
    assert window.room(20.0) == (10, 40.0)
    assert window.admit(60.0, 500) == 10.0  # counted as 100: the 30 of t=10 must leave too
    assert window.admit(70.0, 500) is None and window.room(70.0) == (0, 60.0)


def test_the_book_asks_for_tokens_only_when_a_token_limit_is_set():
    def never() -> int:
        raise AssertionError("tokens were counted with no token limit")

    assert LimitBook(Limits(requests_per_minute=5)).check(0.0, images=0, tokens=never) is None
    book = LimitBook(Limits(tokens_per_minute=10))
    assert book.check(0.0, images=0, tokens=lambda: 8) is None
    assert book.check(1.0, images=0, tokens=lambda: 8).quota_id == "GenerateContentInputTokensPerModelPerMinute"


def test_a_short_day_counts_from_the_first_request_and_resets_every_day_s():
    quota = DayQuota(1, day_s=10)
    assert quota.admit(100.0) is None
    assert quota.admit(104.0) == 6.0
    assert quota.admit(110.0) is None
