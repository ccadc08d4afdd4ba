"""Per-minute sliding windows and the per-day quota, on a clock the test controls."""

from __future__ import annotations

from batchrun.simulator.faults import Limits
from batchrun.simulator.limits import DayQuota, LimitBook, SlidingWindow


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
