"""The clock the runner reads and sleeps on, passed in so tests control time.

`MonotonicClock` is the real one (time.monotonic, anyio.sleep). `FakeClock` keeps virtual time for
tests: `sleep` registers a wake-up time and blocks; time moves only when a test calls `advance`, or,
inside `async with clock.autojump():`, when every task of the event loop is blocked, in which case a
driver task jumps to the earliest wake-up. Sleepers due at the same instant wake in the order they
went to sleep, so schedules are exact and the same on every run.

A task waiting on real I/O counts as blocked, so keep sockets out of fake-clock tests.
Under `autojump`, a test orders its own steps with `await clock.sleep(...)`; `settle()` (wait until
every other task is blocked) is for the manual mode, where only `advance` moves time.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

import anyio
import anyio.lowlevel


class Clock(Protocol):
    """Monotonic seconds and a way to wait for them to pass."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """The real clock: `time.monotonic` and `anyio.sleep`."""

    def now(self) -> float:
        """Seconds from an arbitrary, fixed origin; never goes back."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of real time."""
        await anyio.sleep(seconds)


class _Sleeper:
    """One pending `FakeClock.sleep`; ordered by wake-up time, then by arrival."""

    __slots__ = ("wake_at", "seq", "event", "cancelled")

    def __init__(self, wake_at: float, seq: int) -> None:
        self.wake_at = wake_at
        self.seq = seq
        self.event = anyio.Event()
        self.cancelled = False

    def __lt__(self, other: _Sleeper) -> bool:
        return (self.wake_at, self.seq) < (other.wake_at, other.seq)


class FakeClock:
    """Virtual time for tests; see the module docstring for how it moves."""

    # Checkpoints taken before asking anyio whether every task is blocked: they let chains of
    # hand-offs (a release waking a waiter waking another) settle without anyio's 0.1 s re-poll.
    SETTLE_CHECKPOINTS = 16

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._sleepers: list[_Sleeper] = []
        self._seq = 0
        self._sleeper_added: anyio.Event | None = None

    def now(self) -> float:
        """The current virtual time."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Block until virtual time reaches now + seconds (a plain checkpoint if seconds <= 0)."""
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        sleeper = _Sleeper(self._now + seconds, self._seq)
        self._seq += 1
        heapq.heappush(self._sleepers, sleeper)
        if self._sleeper_added is not None:
            self._sleeper_added.set()
        try:
            await sleeper.event.wait()
        except BaseException:
            sleeper.cancelled = True  # a cancelled sleep must not pull time forward
            raise

    @property
    def next_wake_at(self) -> float | None:
        """The earliest pending wake-up, or None when nothing sleeps."""
        self._drop_cancelled()
        return self._sleepers[0].wake_at if self._sleepers else None

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, waking every sleeper due by then, earliest first."""
        if seconds < 0:
            raise ValueError("a clock cannot go back")
        self._advance_to(self._now + seconds)

    def _advance_to(self, when: float) -> None:
        # Woken tasks run after this returns, so all of them read `when` as the time.
        self._now = max(self._now, when)
        while self._sleepers and self._sleepers[0].wake_at <= when:
            sleeper = heapq.heappop(self._sleepers)
            if not sleeper.cancelled:
                sleeper.event.set()

    def _drop_cancelled(self) -> None:
        while self._sleepers and self._sleepers[0].cancelled:
            heapq.heappop(self._sleepers)

    @asynccontextmanager
    async def autojump(self) -> AsyncIterator[FakeClock]:
        """Run a driver that jumps to the next wake-up whenever every task is blocked."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._drive)
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()

    async def _drive(self) -> None:
        while True:
            await settle()
            wake_at = self.next_wake_at
            if wake_at is None:
                self._sleeper_added = anyio.Event()
                await self._sleeper_added.wait()
                self._sleeper_added = None
                continue
            self._advance_to(wake_at)


async def settle() -> None:
    """Return once every other task of the event loop is blocked."""
    for _ in range(FakeClock.SETTLE_CHECKPOINTS):
        await anyio.lowlevel.checkpoint()
    await anyio.wait_all_tasks_blocked()
