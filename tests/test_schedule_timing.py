"""--at / --days rendered as crontab fields and systemd OnCalendar values that name the same times."""

from __future__ import annotations

import pytest

from batchrun.errors import UsageError
from batchrun.schedule.timing import cron_fields, on_calendar, parse_clock, parse_days, parse_timing, window_minutes


@pytest.mark.parametrize("days, cron, calendar", [
    (None, "30 1 * * *", "*-*-* 01:30:00"),
    ("daily", "30 1 * * *", "*-*-* 01:30:00"),
    ("mon-fri", "30 1 * * 1-5", "Mon..Fri *-*-* 01:30:00"),
    ("weekdays", "30 1 * * 1-5", "Mon..Fri *-*-* 01:30:00"),
    ("mon,wed,fri", "30 1 * * 1,3,5", "Mon,Wed,Fri *-*-* 01:30:00"),
    ("sat-sun", "30 1 * * 0,6", "Sat..Sun *-*-* 01:30:00"),
    ("fri-mon", "30 1 * * 0-1,5-6", "Mon,Fri..Sun *-*-* 01:30:00"),
    ("Tuesday,thu", "30 1 * * 2,4", "Tue,Thu *-*-* 01:30:00"),
    ("sun", "30 1 * * 0", "Sun *-*-* 01:30:00"),
])
def test_days_give_the_same_weekdays_to_cron_and_systemd(days, cron, calendar):
    timing = parse_timing("01:30", days)

    assert cron_fields(timing) == cron
    assert on_calendar(timing) == calendar


def test_at_accepts_one_or_two_digit_hours():
    assert parse_clock("7:05", "--at") == (7, 5)
    assert cron_fields(parse_timing("23:59")) == "59 23 * * *"
    assert on_calendar(parse_timing("0:00")) == "*-*-* 00:00:00"


@pytest.mark.parametrize("at", ["24:00", "1:3", "0130", "01:60", "", "noon"])
def test_a_bad_at_names_the_flag_and_an_example(at):
    with pytest.raises(UsageError, match=r"^--at .*: give a local time as HH:MM, e.g. --at 01:30$"):
        parse_timing(at)


@pytest.mark.parametrize("days", ["mo", "mon-funday", "mon..fri", "1-5", ""])
def test_bad_days_name_the_flag_and_the_day_names(days):
    with pytest.raises(UsageError, match=r"^--days .*: name days as mon tue wed thu fri sat sun"):
        parse_days(days)


@pytest.mark.parametrize("at, until, minutes", [("01:30", "07:00", 330), ("23:00", "06:00", 420),
                                                ("01:30", "01:29", 1439), ("01:30", "01:30", 1440)])
def test_the_window_runs_from_at_to_the_next_until(at, until, minutes):
    assert window_minutes(parse_timing(at), parse_clock(until, "--until")) == minutes
