"""A worker's leased limiter against an in-process desk: grants in leases, releases in batched reports."""

from __future__ import annotations

import anyio
import pytest

from batchrun.cluster.desk import DeskLimits, Grant, LimiterDesk, Return, Want
from batchrun.cluster.leased import LeasedLimiter
from batchrun.running.clock import FakeClock, settle

pytestmark = pytest.mark.anyio


class CountingDesk(LimiterDesk):
    """A desk that records every call a worker makes to it."""

    def __init__(self, limits: DeskLimits, clock: FakeClock) -> None:
        super().__init__(limits, clock)
        self.lease_sizes: list[int] = []  # wants per lease call
        self.reports: list[list[Return]] = []

    async def lease(self, worker: str, wants: list[Want]) -> list[Grant]:
        self.lease_sizes.append(len(wants))
        return await super().lease(worker, wants)

    async def report(self, returns, hold_backs=None, pause=None, asides=None) -> None:
        self.reports.append(list(returns))
        await super().report(returns, hold_backs, pause, asides)


async def test_eight_requests_waiting_at_once_take_one_lease_and_their_releases_one_report() -> None:
    clock = FakeClock()
    desk = CountingDesk(DeskLimits(concurrency=8), clock)
    limiter = LeasedLimiter(desk, "w1", clock=clock)
    permits = []

    async with anyio.create_task_group() as group:
        group.start_soon(limiter.serve)
        async with anyio.create_task_group() as senders:
            for _ in range(8):
                senders.start_soon(lambda: _append(permits, limiter.acquire(tokens=10)))
        for permit in permits:
            limiter.release(permit, actual_tokens=12)
        await settle()
        group.cancel_scope.cancel()

    assert desk.lease_sizes == [8]
    assert sorted(p.number for p in permits) == list(range(1, 9))
    assert [len(r) for r in desk.reports] == [8]
    assert await desk.in_flight() == 0


async def test_a_request_cancelled_while_it_waits_gives_its_grant_back_unused() -> None:
    clock = FakeClock()
    desk = CountingDesk(DeskLimits(concurrency=1), clock)
    limiter = LeasedLimiter(desk, "w1", clock=clock)

    async with anyio.create_task_group() as group:
        group.start_soon(limiter.serve)
        held = await limiter.acquire()
        with anyio.move_on_after(0):  # waits for the one slot, and is cancelled meanwhile
            await limiter.acquire()
        limiter.release(held)
        await settle()
        group.cancel_scope.cancel()

    assert await desk.in_flight() == 0  # the cancelled request's grant, if it came, went back unused
    assert limiter.leases == len(desk.lease_sizes) == desk.leases


async def test_a_server_delay_and_a_pause_reach_the_desk_and_hold_back_the_other_workers() -> None:
    clock = FakeClock()
    desk = CountingDesk(DeskLimits(concurrency=4), clock)
    limiter = LeasedLimiter(desk, "w1", clock=clock)
    other = LeasedLimiter(desk, "w2", clock=clock)

    async with clock.autojump():
        async with anyio.create_task_group() as group:
            group.start_soon(limiter.serve)
            group.start_soon(other.serve)
            assert limiter.hold_back(5.0) is None  # the desk decides; this request's retry waits anyway
            limiter.pause_all(20.0, "daily quota spent")
            await settle()
            await other.acquire()
            group.cancel_scope.cancel()
    assert clock.now() == pytest.approx(20.0)


async def _append(into: list, awaitable) -> None:
    into.append(await awaitable)
