"""A cluster worker's limiter: the pool's `acquire`/`release`, served by the job's one desk in leases.

Inputs: the pool's acquire calls (tokens, images), its releases (with what each reply taught), its
server delays and pauses; a desk (`desk.LimiterDesk`, in-process or behind a Ray actor handle).
Outputs: permits, and reports to the desk. Invariants:
- one lease call is in flight at a time: it asks for up to `lease_size` of the requests waiting, in
  order, and grants go to them first come, first served;
- one report call is in flight at a time and carries every release made since the last: releases
  never wait for a lease, so a worker never holds the cluster's slots while it waits for one;
- a request cancelled while it waits (a stop) gives its grant back unused, whether or not the grant
  had come; nothing is granted twice;
- with a key pool, a grant names its key; server delays are reported per key, and so are keys that
  failed (`set_aside`); what the desk answers of its keys (`KeyNews`) goes to `on_news`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import anyio

from batchrun.cluster.desk import Grant, Return, Want
from batchrun.cluster.deskkeys import Aside, KeyNews
from batchrun.records import Headroom
from batchrun.running.clock import Clock
from batchrun.running.limiter import Pause, Permit

LEASE_SIZE = 16  # requests a lease asks grants for, at most


class Desk(Protocol):
    """What a worker needs of the limiter desk."""

    async def lease(self, worker: str, wants: list[Want]) -> list[Grant]: ...

    async def report(self, returns: list[Return], hold_backs: dict[int, float] | None = None,
                     pause: tuple[float, str] | None = None, asides: list[Aside] | None = None) -> KeyNews | None: ...


@dataclass(eq=False)
class _Waiter:
    want: Want
    granted: anyio.Event
    grant: Grant | None = None
    withdrawn: bool = False


class LeasedLimiter:
    """Permits leased from a desk; serve it (`async with limiter.serving()`) while the pool runs."""

    def __init__(self, desk: Desk, worker: str, *, clock: Clock, lease_size: int = LEASE_SIZE,
                 on_news: Callable[[KeyNews], None] | None = None) -> None:
        self._desk, self._worker, self._clock, self._lease_size = desk, worker, clock, lease_size
        self._on_news = on_news
        self._waiting: deque[_Waiter] = deque()
        self._returns: list[Return] = []
        self._hold_backs: dict[int, float] = {}
        self._asides: list[Aside] = []
        self._pause: tuple[float, str] | None = None
        self._wanted = anyio.Event()
        self._to_report = anyio.Event()
        self.leases = 0  # lease calls made: the remote calls of the grant path

    async def acquire(self, tokens: int = 0, images: int = 0) -> Permit:
        """Wait for a grant from the desk."""
        return (await self.acquire_keyed(tokens, images))[1]

    async def acquire_keyed(self, tokens: int = 0, images: int = 0) -> tuple[int, Permit]:
        """Wait for a grant from the desk: the key to send with (its index in the pool), and the permit."""
        waiter = _Waiter(Want(tokens, images), anyio.Event())
        self._waiting.append(waiter)
        self._wanted.set()
        try:
            await waiter.granted.wait()
        except BaseException:
            self._withdraw(waiter)
            raise
        assert waiter.grant is not None
        return waiter.grant.key, Permit(tokens, images, self._clock.now(), 0, number=waiter.grant.number)

    def _withdraw(self, waiter: _Waiter) -> None:
        waiter.withdrawn = True
        if waiter.grant is not None:
            self._give_back(Return(waiter.grant.number))
        elif waiter in self._waiting:
            self._waiting.remove(waiter)

    def release(self, permit: Permit, *, actual_tokens: int | None = None, rate_limited: bool = False,
                headroom: Headroom | None = None) -> None:
        """Give a permit back, with what its reply taught; reported to the desk with the next report."""
        if permit.released:
            raise RuntimeError("this permit was already released")
        permit.released = True
        self._give_back(Return(permit.number, actual_tokens, rate_limited, headroom))

    def hold_back(self, seconds: float, key: int = 0) -> Pause | None:
        """A server delay: the desk decides whether every worker waits it out (this request's retry does)."""
        self._hold_backs[key] = max(seconds, self._hold_backs.get(key, 0.0))
        self._to_report.set()
        return None

    def set_aside(self, aside: Aside) -> None:
        """A key failed (authentication, a spent quota): the desk drops it or sets it aside for every worker."""
        self._asides.append(aside)
        self._to_report.set()

    def pause_all(self, seconds: float, reason: str = "the server asked to wait") -> None:
        self._pause = (seconds, reason)
        self._to_report.set()

    def _give_back(self, back: Return) -> None:
        self._returns.append(back)
        self._to_report.set()

    # -- serving --------------------------------------------------------------------------------

    async def serve(self) -> None:
        """Lease for the waiting requests and report releases, until cancelled."""
        async with anyio.create_task_group() as group:
            group.start_soon(self._lease_loop)
            group.start_soon(self._report_loop)

    async def _lease_loop(self) -> None:
        while True:
            await self._wanted.wait()
            asked = [self._waiting.popleft() for _ in range(min(self._lease_size, len(self._waiting)))]
            if not asked:
                self._wanted = anyio.Event()
                continue
            self.leases += 1
            grants = await self._desk.lease(self._worker, [waiter.want for waiter in asked])
            for waiter, grant in zip(asked, grants):
                self._hand(waiter, grant)
            self._waiting.extendleft(reversed([w for w in asked[len(grants):] if not w.withdrawn]))

    def _hand(self, waiter: _Waiter, grant: Grant) -> None:
        if waiter.withdrawn:
            self._give_back(Return(grant.number))
            return
        waiter.grant = grant
        waiter.granted.set()

    async def _report_loop(self) -> None:
        while True:
            await self._to_report.wait()
            self._to_report = anyio.Event()
            await self.flush()

    async def flush(self) -> None:
        """Report every release, delay, pause and failed key not yet reported; hand on the desk's news."""
        returns, hold_backs, pause, asides = self._returns, self._hold_backs, self._pause, self._asides
        self._returns, self._hold_backs, self._pause, self._asides = [], {}, None, []
        if returns or hold_backs or pause is not None or asides:
            news = await self._desk.report(returns, hold_backs or None, pause, asides or None)
            if news is not None and self._on_news is not None:
                self._on_news(news)
