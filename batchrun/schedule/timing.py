"""When a scheduled job starts: `--at HH:MM`, `--days`, and `--until HH:MM` checked once, rendered twice.

Inputs: the flags' text. Outputs: a `Timing` and its crontab fields / systemd OnCalendar value.
Invariant: both renderings name the same minutes of the same weekdays; a bad flag is a UsageError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from batchrun.errors import UsageError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
CRON_DAY = {0: 1, 1: 2, 2: 3, 3: 4, 4: 5, 5: 6, 6: 0}  # cron counts Sunday as 0
DAY_ALIASES = {"daily": "mon-sun", "weekdays": "mon-fri", "weekends": "sat-sun"}
CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


@dataclass(frozen=True)
class Timing:
    hour: int
    minute: int
    days: tuple[int, ...]  # 0 = Monday; sorted, distinct


def parse_timing(at: str, days: str | None = None) -> Timing:
    """`--at 01:30 --days mon-fri` as a Timing; UsageError naming the flag and the fix."""
    hour, minute = parse_clock(at, "--at")
    return Timing(hour, minute, parse_days(days or "daily"))


def parse_clock(text: str, flag: str) -> tuple[int, int]:
    match = CLOCK.fullmatch(text.strip())
    if not match:
        raise UsageError(f"{flag} {text}: give a local time as HH:MM, e.g. {flag} 01:30")
    return int(match.group(1)), int(match.group(2))


def parse_days(text: str) -> tuple[int, ...]:
    """`mon-fri`, `mon,wed,fri`, `sat-sun`, `daily`, `weekdays` as Monday-based day numbers."""
    days: set[int] = set()
    for part in DAY_ALIASES.get(text.strip().lower(), text.strip().lower()).split(","):
        first, _, last = part.strip().partition("-")
        start, end = _day(first, text), _day(last or first, text)
        days.update(range(start, end + 1) if start <= end else [*range(start, 7), *range(0, end + 1)])
    return tuple(sorted(days))


def _day(name: str, text: str) -> int:
    if len(name) < 3 or not any(full.startswith(name) for full in FULL_NAMES):
        raise UsageError(f"--days {text}: name days as mon tue wed thu fri sat sun, in ranges and lists, "
                         f"e.g. --days mon-fri or --days mon,wed,fri (or daily, weekdays, weekends)")
    return DAY_NAMES.index(name[:3])


def window_minutes(timing: Timing, until: tuple[int, int]) -> int:
    """Minutes from the start to --until, the same night (01:30 to 07:00: 330; 23:00 to 06:00: 420)."""
    minutes = (until[0] * 60 + until[1] - timing.hour * 60 - timing.minute) % (24 * 60)
    return minutes or 24 * 60


def cron_fields(timing: Timing) -> str:
    """The five crontab time fields, e.g. `30 1 * * 1-5`."""
    days = "*" if len(timing.days) == 7 else _ranges([CRON_DAY[d] for d in timing.days], str, "-")
    return f"{timing.minute} {timing.hour} * * {days}"


def on_calendar(timing: Timing) -> str:
    """The systemd OnCalendar value, e.g. `Mon..Fri *-*-* 01:30:00`."""
    clock = f"*-*-* {timing.hour:02d}:{timing.minute:02d}:00"
    if len(timing.days) == 7:
        return clock
    return f"{_ranges(list(timing.days), lambda d: DAY_NAMES[d].title(), '..')} {clock}"


def _ranges(numbers: list[int], name, dash: str) -> str:
    """Sorted day numbers as a list of runs: [1, 2, 3, 5] -> `1-3,5`."""
    runs: list[list[int]] = []
    for number in sorted(numbers):
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    return ",".join(name(r[0]) if len(r) == 1 else f"{name(r[0])}{dash}{name(r[-1])}" for r in runs)
