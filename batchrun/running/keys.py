"""A pool of API keys: which key sends the next request, and which keys are set aside.

Input: one lane per key (the variable it was read from, a provider adapter built with it, and a
limiter of its own) and the pool's clock. Output: a lane and its limiter's permit for each request.

Invariants:
- each key keeps its own limiter state: its adaptive rate, its per-minute limits, its pauses;
- a request takes the usable key whose limiter can grant soonest; on a tie, the one that has sent the
  fewest (then the one with fewest in flight), so keys with equal limits carry equal shares; a key back
  from a quota reset counts as having sent as many as the busiest, so it takes its share, not every
  request until it has caught up; concurrency stays the job's (the pool's workers);
- a key that fails authentication is dropped for the run, and one whose daily quota is spent is set
  aside until its reset, each with one warning naming its variable, never the key, and only while
  another key can still send: the last usable key's failure is the run's, as with a single key;
- a permit granted by a key that was set aside while its request waited is given back unused, and the
  request goes to another key.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import httpx

from batchrun.errors import duration_text
from batchrun.records import ProviderReply, RequestRecord
from batchrun.running.clock import Clock
from batchrun.running.limiter import Limiter, Permit

log = logging.getLogger(__name__)


class LaneProvider(Protocol):
    """An adapter built with one key: the pool's `PoolProvider`."""

    async def send(self, client: httpx.AsyncClient, record: RequestRecord) -> ProviderReply: ...


@dataclass(eq=False)
class KeyLane:
    """One key of the pool: where it was read from, the adapter that sends with it, its limiter."""

    env: str | None  # the variable the key came from (None: a provider that needs no key)
    provider: LaneProvider
    limiter: Limiter
    set_aside_until: float = -math.inf  # on the pool's clock; inf: dropped for the run
    sent: int = 0  # permits granted to this key (what a test or a benchmark counts)

    @property
    def name(self) -> str:
        return self.env or "the key"

    def usable(self, now: float) -> bool:
        return self.set_aside_until <= now

    @property
    def dropped(self) -> bool:
        return self.set_aside_until == math.inf


class KeyPool:
    """The lanes of a run's keys; see the module docstring."""

    def __init__(self, lanes: Sequence[KeyLane], clock: Clock, warn: Callable[[str], None] | None = None) -> None:
        """`warn`: where a dropped or set-aside key's warning goes (the log; a cluster's desk collects them)."""
        if not lanes:
            raise ValueError("a key pool needs at least one key")
        self.lanes = list(lanes)
        self._clock = clock
        self._warn = warn or log.warning

    @classmethod
    def single(cls, provider: LaneProvider, limiter: Limiter, clock: Clock, env: str | None = None) -> KeyPool:
        """A pool of one key: a run that behaves as it did before pools."""
        return cls([KeyLane(env, provider, limiter)], clock)

    async def acquire(self, tokens: int = 0, images: int = 0) -> tuple[KeyLane, Permit]:
        """A permit from the usable key that can grant soonest (a key set aside meanwhile: another)."""
        if len(self.lanes) == 1:  # never set aside (it is the last usable key): nothing to choose
            only = self.lanes[0]
            permit = await only.limiter.acquire(tokens=tokens, images=images)
            only.sent += 1
            return only, permit
        while True:
            lane = self.choose(tokens, images)
            if not lane.usable(self._clock.now()):  # every key set aside: wait for the first back
                await self._clock.sleep(lane.set_aside_until - self._clock.now())
                continue
            permit = await lane.limiter.acquire(tokens=tokens, images=images)
            if lane.usable(self._clock.now()):
                lane.sent += 1
                return lane, permit
            lane.limiter.release(permit)

    def choose(self, tokens: int = 0, images: int = 0) -> KeyLane:
        """The usable lane whose limiter grants soonest; with none usable, the one back soonest."""
        now = self._clock.now()
        usable = [lane for lane in self.lanes if lane.usable(now)]
        if not usable:
            soonest = min(self.lanes, key=lambda lane: lane.set_aside_until)
            if soonest.dropped:
                raise RuntimeError("every key of the pool was dropped")  # the last one never is: the run stops
            return soonest
        self._bring_back(usable)
        return min(usable, key=lambda lane: (lane.limiter.grant_wait(tokens, images), lane.sent,
                                             lane.limiter.in_flight))

    @staticmethod
    def _bring_back(usable: list[KeyLane]) -> None:
        """A key whose quota reset has come counts as having sent as many as the busiest usable key."""
        back = [lane for lane in usable if lane.set_aside_until > -math.inf]
        if not back:
            return
        busiest = max(lane.sent for lane in usable)
        for lane in back:
            lane.sent, lane.set_aside_until = busiest, -math.inf

    def drop(self, lane: KeyLane, why: str) -> bool:
        """A key failed authentication: drop it for the run if another key can send; whether one can."""
        if lane.dropped:
            return self._others_usable(lane)
        if not self._others_usable(lane):
            return False
        lane.set_aside_until = math.inf
        self._warn(f"the key in {lane.name} failed authentication ({why}): dropped for this run; sending goes on "
                   f"with {self._usable_text()}")
        return True

    def set_aside(self, lane: KeyLane, reset_in_s: float | None, why: str = "spent its daily quota") -> bool:
        """A key's daily quota is spent (or the server asked it to wait past the cap): set it aside until the
        reset if another key can send; whether one can."""
        now = self._clock.now()
        if not lane.usable(now):
            return self._others_usable(lane)
        if not self._others_usable(lane):
            return False
        seconds = math.inf if reset_in_s is None else reset_in_s
        lane.set_aside_until = now + seconds
        when = "for this run" if reset_in_s is None else (
            f"until {time.strftime('%H:%M', time.localtime(time.time() + reset_in_s))} "
            f"(in {duration_text(reset_in_s)}), when it resets")
        self._warn(f"the key in {lane.name} {why}: set aside {when}; sending goes on with {self._usable_text()}")
        return True

    def pause_all(self, seconds: float, reason: str) -> None:
        """Hold back every key (a spent quota parked the whole run)."""
        for lane in self.lanes:
            lane.limiter.pause_all(seconds, reason)

    def _others_usable(self, lane: KeyLane) -> bool:
        now = self._clock.now()
        return any(other.usable(now) for other in self.lanes if other is not lane)

    def _usable_text(self) -> str:
        now = self._clock.now()
        names = [lane.name for lane in self.lanes if lane.usable(now)]
        return f"{len(names)} key{'s' if len(names) != 1 else ''} ({', '.join(names)})"
