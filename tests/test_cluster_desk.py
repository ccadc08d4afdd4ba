"""The limiter desk: leases on a fake clock, the cluster's concurrency, 429 feedback, a lost worker's slots."""

from __future__ import annotations

import anyio
import pytest

from batchrun.cluster.desk import CLUSTER_PACE, DeskLimits, Grant, LimiterDesk, Return, Want
from batchrun.running.clock import FakeClock, settle
from batchrun.running.limiter import PACE_FRACTION, STORM_LIMITED

pytestmark = pytest.mark.anyio


async def test_a_lease_without_a_rate_limit_grants_every_want_the_concurrency_allows_at_once() -> None:
    desk = LimiterDesk(DeskLimits(concurrency=5), FakeClock())

    assert [g.number for g in await desk.lease("w1", [Want()] * 8)] == [1, 2, 3, 4, 5]  # not more than the concurrency
    assert await desk.in_flight() == 5


async def test_a_paced_lease_returns_its_first_grant_and_never_holds_one_back_for_the_next() -> None:
    clock = FakeClock()
    desk = LimiterDesk(DeskLimits(concurrency=50, requests_per_minute=1200), clock)  # 20/s: one at a time
    leases: list[tuple[float, int]] = []

    async with clock.autojump():
        for _ in range(3):
            granted = await desk.lease("w1", [Want()] * 4)
            leases.append((clock.now(), len(granted)))

    gap = 60 / (1200 * CLUSTER_PACE * PACE_FRACTION)
    assert gap == pytest.approx(0.05128, abs=1e-5)  # 19.6/s paced 0.5% lower: a grant every 51.3 ms
    assert leases == [(0.0, 1), (pytest.approx(gap), 1), (pytest.approx(2 * gap), 1)]


async def test_the_cluster_concurrency_holds_across_workers_until_a_report_gives_a_slot_back() -> None:
    desk = LimiterDesk(DeskLimits(concurrency=2), FakeClock())
    first = await desk.lease("w1", [Want(), Want()])
    got: list[int] = []

    async with anyio.create_task_group() as group:
        group.start_soon(lambda: _append(got, desk.lease("w2", [Want()])))
        await settle()
        assert got == []  # every slot of the cluster is out
        await desk.report([Return(first[0].number)])
    assert got == [[Grant(3)]]


async def test_a_lost_workers_slots_go_back_to_the_cluster() -> None:
    desk = LimiterDesk(DeskLimits(concurrency=3), FakeClock())
    await desk.lease("w1", [Want()] * 2)
    await desk.lease("w2", [Want()])

    assert await desk.forget("w1") == 2
    assert await desk.in_flight() == 1
    assert len(await desk.lease("w2", [Want()] * 5)) == 2


async def test_a_429_storm_reported_by_one_worker_holds_back_every_worker() -> None:
    clock = FakeClock()
    desk = LimiterDesk(DeskLimits(concurrency=40), clock)
    grants = await desk.lease("w1", [Want()] * STORM_LIMITED)
    await desk.report([Return(g.number, rate_limited=True) for g in grants], hold_backs={0: 7.0})

    async with clock.autojump():
        await desk.lease("w2", [Want()])
    assert clock.now() == pytest.approx(7.0)


async def test_a_pause_any_worker_reports_delays_the_next_grant_of_every_worker() -> None:
    clock = FakeClock()
    desk = LimiterDesk(DeskLimits(concurrency=4), clock)
    await desk.report([], pause=(30.0, "daily quota spent"))

    async with clock.autojump():
        await desk.lease("w3", [Want()])
    assert clock.now() == pytest.approx(30.0)


async def _append(into: list, awaitable) -> None:
    into.append(await awaitable)


async def test_the_desk_counts_its_grants_and_the_leases_they_were_made_in() -> None:
    desk = LimiterDesk(DeskLimits(concurrency=8), FakeClock())
    await desk.lease("w1", [Want()] * 3)
    await desk.lease("w2", [Want()] * 2)

    assert await desk.counts() == (5, 2)
