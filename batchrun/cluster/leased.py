"""A cluster worker's limiter: the pool's `acquire`/`release`, served by the job's one desk in leases.

Inputs: the pool's acquire calls (tokens, images), its releases (with what each reply taught), its
server delays and pauses; a desk (`desk.LimiterDesk`, in-process or behind a Ray actor handle).
Outputs: permits, and reports to the desk. Invariants:
- one lease call is in flight at a time: it asks for up to `lease_size` of the requests waiting, in
  order, and grants go to them first come, first served;
- one report call is in flight at a time and carries every release made since the last: releases
  never wait for a lease, so a worker never holds the cluster's slots while it waits for one;
- a request cancelled while it waits (a stop) gives its grant back unused, whether or not the grant
  had come; nothing is granted twice.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Protocol

import anyio

from batchrun.cluster.desk import Return, Want
from batchrun.records import Headroom
from batchrun.running.clock import Clock
from batchrun.running.limiter import Pause, Permit

LEASE_SIZE = 16  # requests a lease asks grants for, at most


class Desk(Protocol):
    """What a worker needs of the limiter desk."""

    async def lease(self, worker: str, wants: list[Want]) -> list[int]: ...

    async def report(self, returns: list[Return], hold_back_s: float | None = None,
                     pause: tuple[float, str] | None = None) -> None: ...


@dataclass(eq=False)
class _Waiter:
    want: Want
    granted: anyio.Event
    number: int | None = None
    withdrawn: bool = False


class LeasedLimiter:
    """Permits leased from a desk; serve it (`async with limiter.serving()`) while the pool runs."""

    def __init__(self, desk: Desk, worker: str, *, clock: Clock, lease_size: int = LEASE_SIZE) -> None:
        self._desk, self._worker, self._clock, self._lease_size = desk, worker, clock, lease_size
        self._waiting: deque[_Waiter] = deque()
        self._returns: list[Return] = []
        self._hold_back_s: float | None = None
        self._pause: tuple[float, str] | None = None
        self._wanted = anyio.Event()
        self._to_report = anyio.Event()
        self.leases = 0  # lease calls made: the remote calls of the grant path

    async def acquire(self, tokens: int = 0, images: int = 0) -> Permit:
        """Wait for a grant from the desk."""
        waiter = _Waiter(Want(tokens, images), anyio.Event())
        self._waiting.append(waiter)
        self._wanted.set()
        try:
            await waiter.granted.wait()
        except BaseException:
            self._withdraw(waiter)
            raise
        assert waiter.number is not None
        return Permit(tokens, images, self._clock.now(), 0, number=waiter.number)

    def _withdraw(self, waiter: _Waiter) -> None:
        waiter.withdrawn = True
        if waiter.number is not None:
            self._give_back(Return(waiter.number))
        elif waiter in self._waiting:
            self._waiting.remove(waiter)

    def release(self, permit: Permit, *, actual_tokens: int | None = None, rate_limited: bool = False,
                headroom: Headroom | None = None) -> None:
        """Give a permit back, with what its reply taught; reported to the desk with the next report."""
        if permit.released:
            raise RuntimeError("this permit was already released")
        permit.released = True
        self._give_back(Return(permit.number, actual_tokens, rate_limited, headroom))

    def hold_back(self, seconds: float) -> Pause | None:
        """A server delay: the desk decides whether every worker waits it out (this request's retry does)."""
        self._hold_back_s = max(seconds, self._hold_back_s or 0.0)
        self._to_report.set()
        return None

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
            numbers = await self._desk.lease(self._worker, [waiter.want for waiter in asked])
            for waiter, number in zip(asked, numbers):
                self._hand(waiter, number)
            self._waiting.extendleft(reversed([w for w in asked[len(numbers):] if not w.withdrawn]))

    def _hand(self, waiter: _Waiter, number: int) -> None:
        if waiter.withdrawn:
            self._give_back(Return(number))
            return
        waiter.number = number
        waiter.granted.set()

    async def _report_loop(self) -> None:
        while True:
            await self._to_report.wait()
            self._to_report = anyio.Event()
            await self.flush()

    async def flush(self) -> None:
        """Report every release, delay and pause not yet reported."""
        returns, hold_back_s, pause = self._returns, self._hold_back_s, self._pause
        self._returns, self._hold_back_s, self._pause = [], None, None
        if returns or hold_back_s is not None or pause is not None:
            await self._desk.report(returns, hold_back_s, pause)
