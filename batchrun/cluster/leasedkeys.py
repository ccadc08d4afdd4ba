"""A cluster worker's key pool: the pool's `KeyPool`, with the choices made by the desk for the cluster.

Inputs: the worker's keys (each key's variable and the adapter built with it), its `LeasedLimiter`, and
the desk's news of its keys. Outputs: for each request, the lane of the key the desk's grant names and
the permit; to the desk, the keys this worker saw fail. Invariants:
- the desk chooses each request's key (`deskkeys.DeskKeys`); the worker sends with the key its grant names;
- whether another key can send (so a bad key's request is sent again, not the run stopped) is judged on
  the worker's view of the pool: its own failures at once, every worker's from the desk's news; a key
  the desk kept (the last one usable) comes back with the next news, and its next failure stops the run;
- warnings are the desk's, once for the cluster (`on_warning` hands them on); a worker logs none;
- a key's value is never logged or put in a request id: a lane names its variable only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from batchrun.cluster.deskkeys import Aside, KeyNews
from batchrun.cluster.leased import LeasedLimiter
from batchrun.records import Headroom
from batchrun.running.clock import Clock
from batchrun.running.keys import KeyLane, KeyPool, LaneProvider
from batchrun.running.limiter import Pause, Permit


class LaneLimiter:
    """What the pool needs of a key's limiter, on a worker: releases and delays go to the desk, for that key."""

    def __init__(self, leased: LeasedLimiter, key: int) -> None:
        self._leased, self.key = leased, key

    def release(self, permit: Permit, *, actual_tokens: int | None = None, rate_limited: bool = False,
                headroom: Headroom | None = None) -> None:
        self._leased.release(permit, actual_tokens=actual_tokens, rate_limited=rate_limited, headroom=headroom)

    def hold_back(self, seconds: float) -> Pause | None:
        return self._leased.hold_back(seconds, self.key)

    def pause_all(self, seconds: float, reason: str = "the server asked to wait") -> None:
        self._leased.pause_all(seconds, reason)


class LeasedKeys(KeyPool):
    """The worker's lanes, granted by the desk; see the module docstring."""

    def __init__(self, leased: LeasedLimiter, keys: Sequence[tuple[str | None, LaneProvider]], clock: Clock,
                 on_warning: Callable[[str], None]) -> None:
        lanes = [KeyLane(env, provider, LaneLimiter(leased, index))  # type: ignore[arg-type]
                 for index, (env, provider) in enumerate(keys)]
        super().__init__(lanes, clock)
        self._leased, self._on_warning = leased, on_warning

    async def acquire(self, tokens: int = 0, images: int = 0) -> tuple[KeyLane, Permit]:
        """The lane of the key the desk's grant names, and its permit."""
        key, permit = await self._leased.acquire_keyed(tokens, images)
        lane = self.lanes[key]
        lane.sent += 1
        return lane, permit

    def drop(self, lane: KeyLane, why: str) -> bool:
        """A key failed authentication: the desk drops it for the cluster; whether another key can send."""
        others = self._others_usable(lane)
        if others:
            lane.set_aside_until = math.inf
        self._leased.set_aside(Aside(self.lanes.index(lane), why, auth=True))
        return others

    def set_aside(self, lane: KeyLane, reset_in_s: float | None, why: str = "spent its daily quota") -> bool:
        """A key's quota is spent: the desk sets it aside for the cluster; whether another key can send."""
        others = self._others_usable(lane)
        if others:
            lane.set_aside_until = self._clock.now() + (math.inf if reset_in_s is None else reset_in_s)
        self._leased.set_aside(Aside(self.lanes.index(lane), why, seconds=reset_in_s))
        return others

    def pause_all(self, seconds: float, reason: str) -> None:
        self._leased.pause_all(seconds, reason)

    def hear(self, news: KeyNews) -> None:
        """The desk's news: its warnings handed on, and each key usable or not as the desk holds it."""
        for warning in news.warnings:
            self._on_warning(warning)
        now = self._clock.now()
        for index, lane in enumerate(self.lanes):
            out_for = news.out_for_s.get(index)
            lane.set_aside_until = -math.inf if out_for is None else now + out_for
