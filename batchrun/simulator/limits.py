"""Counted limits the simulator enforces: requests, images and input tokens per minute, requests per day.

Per-minute limits are sliding 60 s windows over admitted requests; a refused request does not
count. The per-day quota counts every request that reached it and resets at midnight Pacific
(taken as UTC-8 all year, so a test can predict it), or every `day_s` seconds when set. Time comes from the caller, never read here.
Limits are counted for the whole simulator, or for each API key on its own (`limits.per_key`, or a
key's own `key_limits`), as for keys of different projects.
Input tokens are a request's prompt tokens (text and images); a request larger than the whole
per-minute token limit counts as the limit, so that it waits for an empty window rather than forever.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .faults import FaultConfig, Limits

WINDOW_S = 60.0
DAY_S = 86400.0
PACIFIC_OFFSET_S = -8 * 3600.0

REQUESTS_PER_MINUTE_QUOTA = "GenerateRequestsPerMinutePerProjectPerModel"
IMAGES_PER_MINUTE_QUOTA = "GenerateContentOutputImagesPerMinutePerProjectPerModel"
REQUESTS_PER_DAY_QUOTA = "GenerateRequestsPerDayPerProjectPerModel"
INPUT_TOKENS_PER_MINUTE_QUOTA = "GenerateContentInputTokensPerModelPerMinute"


class SlidingWindow:
    """At most `limit` admissions in any WINDOW_S seconds."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._times: deque[float] = deque()

    def admit(self, now: float, count: int = 1) -> float | None:
        """None if admitted (and recorded), else the seconds until `count` more would fit."""
        times = self._times
        while times and times[0] <= now - WINDOW_S:
            times.popleft()
        if len(times) + count <= self.limit:
            times.extend([now] * count)
            return None
        oldest_needed = times[len(times) + count - self.limit - 1]
        return max(0.0, oldest_needed + WINDOW_S - now)

    def room(self, now: float) -> tuple[int, float]:
        """Admissions left at `now`, and the seconds until the oldest admission leaves the window (0: none)."""
        times = self._times
        while times and times[0] <= now - WINDOW_S:
            times.popleft()
        reset = times[0] + WINDOW_S - now if times else 0.0
        return max(0, self.limit - len(times)), reset


class TokenWindow:
    """At most `limit` tokens admitted in any WINDOW_S seconds; one entry per request, not per token."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._entries: deque[tuple[float, int]] = deque()
        self._used = 0

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries and entries[0][0] <= now - WINDOW_S:
            self._used -= entries.popleft()[1]

    def admit(self, now: float, tokens: int) -> float | None:
        """None if admitted (and recorded), else the seconds until `tokens` more would fit."""
        self._expire(now)
        tokens = min(tokens, self.limit)
        if self._used + tokens <= self.limit:
            self._entries.append((now, tokens))
            self._used += tokens
            return None
        freed = self._used + tokens - self.limit
        for t, count in self._entries:
            freed -= count
            if freed <= 0:
                return max(0.0, t + WINDOW_S - now)
        return WINDOW_S  # unreachable: the whole window frees at least `tokens`

    def room(self, now: float) -> tuple[int, float]:
        """Tokens left at `now`, and the seconds until the oldest admission leaves the window (0: none)."""
        self._expire(now)
        reset = self._entries[0][0] + WINDOW_S - now if self._entries else 0.0
        return max(0, self.limit - self._used), reset


class DayQuota:
    """At most `limit` requests per Pacific calendar day, or per `day_s` seconds from the first request."""

    def __init__(self, limit: int, day_s: float | None = None) -> None:
        self.limit, self.day_s = limit, day_s
        self._day: float | None = None
        self._used = 0
        self._origin: float | None = None  # a short day's start: the first request's time

    def admit(self, now: float) -> float | None:
        """None if admitted, else the seconds until the quota resets."""
        shifted, length = self._position(now)
        day = shifted // length
        if day != self._day:
            self._day, self._used = day, 0
        if self._used < self.limit:
            self._used += 1
            return None
        return (day + 1) * length - shifted

    def _position(self, now: float) -> tuple[float, float]:
        """`now` on the quota's day scale, and the day's length."""
        if self.day_s is None:
            return now + PACIFIC_OFFSET_S, DAY_S
        if self._origin is None:
            self._origin = now
        return now - self._origin, self.day_s


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request refused by a counted limit: which quota, and when to retry."""

    quota_id: str
    per_day: bool
    retry_after_s: float


class LimitBook:
    """All counted limits of one simulator, checked in a fixed order: day, requests, images."""

    def __init__(self, limits: Limits) -> None:
        self.day = DayQuota(limits.requests_per_day, limits.day_s) if limits.requests_per_day is not None else None
        self.short_day = limits.day_s is not None
        rpm, ipm, tpm = limits.requests_per_minute, limits.images_per_minute, limits.tokens_per_minute
        self.requests = SlidingWindow(rpm) if rpm is not None else None
        self.images = SlidingWindow(ipm) if ipm is not None else None
        self.tokens = TokenWindow(tpm) if tpm is not None else None

    def check(self, now: float, images: int, tokens: Callable[[], int] = lambda: 0) -> Refusal | None:
        """None if the request may go on, else why it is refused; `tokens` is called only with a token limit."""
        if self.day is not None and (wait := self.day.admit(now)) is not None:
            return Refusal(REQUESTS_PER_DAY_QUOTA, True, wait)
        if self.requests is not None and (wait := self.requests.admit(now)) is not None:
            return Refusal(REQUESTS_PER_MINUTE_QUOTA, False, wait)
        if images and self.images is not None and (wait := self.images.admit(now, images)) is not None:
            return Refusal(IMAGES_PER_MINUTE_QUOTA, False, wait)
        if self.tokens is not None and (wait := self.tokens.admit(now, tokens())) is not None:
            return Refusal(INPUT_TOKENS_PER_MINUTE_QUOTA, False, wait)
        return None



class KeyedLimits:
    """The limit books of one simulator: one shared, or one per API key (see the module docstring)."""

    def __init__(self, config: FaultConfig) -> None:
        self.shared = LimitBook(config.limits)
        self._limits = config.limits
        self._own = dict(config.key_limits)
        self._books: dict[str, LimitBook] = {}
        self._numbers: dict[str, int] = {}

    def number(self, key: str | None) -> int | None:
        """With limits counted per key, a key's number in the order keys were first seen (1, 2, ...): what
        the request log shows of it, never the key itself. None without a key or per-key counting."""
        if key is None or not (self._limits.per_key or self._own):
            return None
        return self._numbers.setdefault(key, len(self._numbers) + 1)

    def book(self, key: str | None) -> LimitBook:
        """The book that counts a request sent with `key` (None: no key)."""
        if key is None or (key not in self._own and not self._limits.per_key):
            return self.shared
        book = self._books.get(key)
        if book is None:
            book = self._books[key] = LimitBook(self._own.get(key, self._limits))
        return book
