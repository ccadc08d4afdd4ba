"""A key pool on the limiter desk: each key's limiter state for the whole cluster, and which keys are out.

Inputs: grants to make (tokens, images), releases and server delays per key, and the keys workers saw
fail (`Aside`: authentication, or a spent quota). Outputs: a key and its permit for each grant, and
`KeyNews` for the workers: the warnings to log, and which keys can't send now and for how long.
Invariants: the decisions are `running.keys.KeyPool`'s, as in one process (the soonest key, equal
shares, a bad key dropped while another can send, a spent key set aside until its reset), held once
for the cluster: a key dropped on any worker is dropped on every worker, with one warning naming
its variable (never the key), and the last usable key is never dropped (its failure is the run's).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from batchrun.records import Headroom
from batchrun.running.clock import Clock
from batchrun.running.keys import KeyLane, KeyPool
from batchrun.running.limiter import Limiter, Permit


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """One key of the pool: its variable, and its per-minute limits (the key's own, else the job's)."""

    env: str
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    images_per_minute: float | None = None


@dataclass(frozen=True, slots=True)
class Aside:
    """A key a worker saw fail: authentication (`seconds` None: for the run) or a wait (a spent quota)."""

    key: int
    why: str
    auth: bool = False
    seconds: float | None = None


@dataclass(frozen=True, slots=True)
class KeyNews:
    """What a worker learns with a report: warnings to log (once each, cluster-wide), and the keys that can't
    send now with the seconds until they can (inf: dropped for the run)."""

    warnings: list[str] = field(default_factory=list)
    out_for_s: dict[int, float] = field(default_factory=dict)


class _Unsent:
    """The desk sends nothing: a lane's provider is the worker's."""


class DeskKeys:
    """The cluster's key pool; see the module docstring. Made on the event loop that serves the desk."""

    def __init__(self, keys: Sequence[KeyLimits], concurrency: int, clock: Clock, pace: float = 1.0) -> None:
        self._clock = clock
        self._warnings: list[str] = []
        self.issued: list[str] = []  # every warning of the run: the driver logs any a stopping worker never passed on
        lanes = [KeyLane(key.env, _Unsent(), _limiter(key, concurrency, clock, pace)) for key in keys]  # type: ignore[arg-type]
        self.pool = KeyPool(lanes, clock, warn=self._warn)

    def _warn(self, text: str) -> None:
        self._warnings.append(text)
        self.issued.append(text)

    async def acquire(self, tokens: int, images: int) -> tuple[int, Permit]:
        """A permit from the key that can grant soonest, and the key's index."""
        lane, permit = await self.pool.acquire(tokens=tokens, images=images)
        return self.pool.lanes.index(lane), permit

    def release(self, key: int, permit: Permit, *, actual_tokens: int | None = None, rate_limited: bool = False,
                headroom: Headroom | None = None) -> None:
        self.pool.lanes[key].limiter.release(permit, actual_tokens=actual_tokens, rate_limited=rate_limited,
                                             headroom=headroom)

    def hold_back(self, key: int, seconds: float) -> None:
        self.pool.lanes[key].limiter.hold_back(seconds)

    def pause_all(self, seconds: float, reason: str) -> None:
        self.pool.pause_all(seconds, reason)

    def set_aside(self, asides: Sequence[Aside]) -> None:
        """Drop or set aside each key a worker saw fail, as one process would (while another key can send)."""
        for aside in asides:
            lane = self.pool.lanes[aside.key]
            if aside.auth:
                self.pool.drop(lane, aside.why)
            else:
                self.pool.set_aside(lane, aside.seconds, aside.why)

    def news(self) -> KeyNews:
        """The warnings since the last news, and the keys that can't send now."""
        warnings, self._warnings[:] = list(self._warnings), []
        now = self._clock.now()
        out = {index: (math.inf if lane.dropped else lane.set_aside_until - now)
               for index, lane in enumerate(self.pool.lanes) if not lane.usable(now)}
        return KeyNews(warnings, out)


def _limiter(key: KeyLimits, concurrency: int, clock: Clock, pace: float) -> Limiter:
    rpm = None if key.requests_per_minute is None else key.requests_per_minute * pace
    return Limiter(concurrency=concurrency, requests_per_minute=rpm, tokens_per_minute=key.tokens_per_minute,
                   images_per_minute=key.images_per_minute, clock=clock, unpaced_until_429=True)
