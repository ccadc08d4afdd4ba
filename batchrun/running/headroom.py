"""The server's own count of what is left of its limits, from the `x-ratelimit-*` headers of its replies.

Input: each reply's Headroom (remaining requests and tokens, the limit, the time until the window is
full again), the permits in flight when it came, and a clock reading. Output: how long the next grant
must wait so that it does not meet a 429, and the count taken down by each grant.

A remaining count is taken not to cover the requests in flight when the reply came (they may have
reached the server after it counted), so the allowance is the remaining count less those (and less their
tokens): it may wait a little early, never send into a window the server said was spent. The limiter
takes a reply's counts only if its request was granted after the one whose counts are in force: a slow
reply's count is older than a quick one's to a later request, and would forget what that one counted.

When the count runs out, the wait is until enough of the window has refilled at the pace the headers
imply (limit less remaining over the reset time: a window that refills continuously, as OpenAI's does),
or until the reset when the limit is unknown. A wait shorter than NEGLIGIBLE_WAIT_S is none (float
rounding). A reset of 0, or a remaining count at or above the limit, is a full window. A reply without
the headers changes nothing, and a server that never sends them never makes a grant wait.

The refill pace assumes a window that refills as it goes. A server that counts a fixed window but sends
its limit would be sent into early; the first 429 that comes while the headers are in use turns the pace
off (`refused`): from then on a spent window waits for its whole reset, which suits both kinds.
"""

from __future__ import annotations

from dataclasses import dataclass

from batchrun.records import Headroom

NEGLIGIBLE_WAIT_S = 1e-6  # a shortfall refilled within this counts as none: a float-rounding wait never ends


@dataclass(slots=True)
class _Window:
    """One of the server's limits: what is left as of `at`, and its refill pace (units per second)."""

    left: float
    at: float
    refill: float | None  # None: unknown, wait for the whole reset
    full_at: float

    def wait_time(self, amount: float, now: float) -> float:
        if now >= self.full_at:
            return 0.0
        left = self.left + (0.0 if self.refill is None else self.refill * (now - self.at))
        if left >= amount:
            return 0.0
        if self.refill is None or self.refill <= 0:
            return self.full_at - now
        wait = min(self.full_at - now, (amount - left) / self.refill)
        return wait if wait > NEGLIGIBLE_WAIT_S else 0.0

    def take(self, amount: float, now: float) -> None:
        if now < self.full_at:
            self.left -= amount


class ServerHeadroom:
    """What the server's headers say is left, as one allowance per limit (requests, tokens)."""

    def __init__(self) -> None:
        self._requests: _Window | None = None
        self._tokens: _Window | None = None
        self.refills = True  # False once a 429 came within the stated headroom: a fixed window

    def refused(self) -> None:
        """A 429 came although the headers said there was room: the server's window does not refill as it
        goes (a fixed window), so from now on a spent window waits for its whole reset."""
        self.refills = False
        for window in (self._requests, self._tokens):
            if window is not None:
                window.refill = None

    @property
    def known(self) -> bool:
        """Whether any reply has told a remaining count yet."""
        return self._requests is not None or self._tokens is not None

    def update(self, headroom: Headroom, in_flight: int, now: float, in_flight_tokens: int = 0) -> None:
        """Take a reply's counts as the latest, less the `in_flight` requests (and their tokens) they may
        not cover yet."""
        if headroom.requests is not None and headroom.requests_reset_s is not None:
            limit = headroom.requests_limit if self.refills else None
            self._requests = _window(headroom.requests - in_flight, headroom.requests, limit,
                                     headroom.requests_reset_s, now)
        if headroom.tokens is not None and headroom.tokens_reset_s is not None:
            limit = headroom.tokens_limit if self.refills else None
            self._tokens = _window(headroom.tokens - in_flight_tokens, headroom.tokens, limit,
                                   headroom.tokens_reset_s, now)

    def wait_time(self, tokens: int, now: float) -> float:
        """Seconds until one more request of `tokens` fits in what the server said is left."""
        request_wait = 0.0 if self._requests is None else self._requests.wait_time(1, now)
        token_wait = 0.0 if self._tokens is None or not tokens else self._tokens.wait_time(tokens, now)
        return max(request_wait, token_wait)

    def take(self, tokens: int, now: float) -> None:
        """Count a grant against the allowance."""
        if self._requests is not None:
            self._requests.take(1, now)
        if self._tokens is not None and tokens:
            self._tokens.take(tokens, now)


def _window(left: int, remaining: int, limit: int | None, reset_s: float, now: float) -> _Window:
    if reset_s <= 0 or (limit is not None and remaining >= limit):  # the window is full: nothing to wait for
        return _Window(left=float(left), at=now, refill=None, full_at=now)
    refill = None if limit is None else (limit - remaining) / reset_s
    return _Window(left=float(left), at=now, refill=refill, full_at=now + reset_s)
