"""The cluster's one budget: the desk's account, a worker's batched reservations, pools sharing it.

Every test runs on a fake clock, the desk in process: what a Ray actor would hold, without Ray.
"""

from __future__ import annotations

import random

import anyio
import pytest
from test_pool_unit import EPOCH, FixedPrices, MemorySink, ScriptedProvider, records

from batchrun.cluster.budget import BudgetLimits, Reserved, Settlement
from batchrun.cluster.desk import DeskLimits, LimiterDesk
from batchrun.cluster.leasedbudget import LeasedBudget
from batchrun.output.progress import Progress
from batchrun.records import RequestRecord
from batchrun.running.account import SpendingAccount
from batchrun.running.clock import FakeClock, settle
from batchrun.running.limiter import Limiter
from batchrun.running.pool import PoolSettings, PoolStop, StopReason, WorkerPool
from batchrun.running.retry import RetryPolicy

pytestmark = pytest.mark.anyio


def budget_desk(cap_usd: float, spent_usd: float = 0.0) -> LimiterDesk:
    return LimiterDesk(DeskLimits(concurrency=100), FakeClock(), BudgetLimits(cap_usd, spent_usd=spent_usd))


class CountingDesk(LimiterDesk):
    """A desk that records every reserve and settle call a worker makes."""

    def __init__(self, cap_usd: float) -> None:
        super().__init__(DeskLimits(concurrency=100), FakeClock(), BudgetLimits(cap_usd))
        self.reserve_sizes: list[int] = []
        self.settle_sizes: list[int] = []

    async def reserve(self, worker: str, worsts: list[float | None]) -> Reserved:
        self.reserve_sizes.append(len(worsts))
        return await super().reserve(worker, worsts)

    async def settle(self, worker: str, settlements: list[Settlement]) -> None:
        self.settle_sizes.append(len(settlements))
        await super().settle(worker, settlements)


# --- the desk's account ---------------------------------------------------------------------------


async def test_a_reservation_call_reserves_the_prefix_of_worst_cases_that_fits_the_cap() -> None:
    desk = budget_desk(cap_usd=3.5)

    assert await desk.reserve("w1", [1.0, 1.0, 1.0, 1.0]) == Reserved(3)
    assert await desk.spending() == (0.0, 3.0)


async def test_what_earlier_runs_spent_counts_against_the_cap() -> None:
    desk = budget_desk(cap_usd=3.5, spent_usd=2.0)

    assert await desk.reserve("w1", [1.0, 1.0, 1.0]) == Reserved(1)


async def test_a_reservation_that_does_not_fit_waits_for_another_workers_settlement() -> None:
    desk = budget_desk(cap_usd=2.5)
    await desk.reserve("w1", [1.0, 1.0])
    got: list[Reserved] = []

    async with anyio.create_task_group() as group:
        group.start_soon(lambda: _append(got, desk.reserve("w2", [1.0])))
        await settle()
        assert got == []  # w1 holds the whole budget, and may still give some back
        await desk.settle("w1", [Settlement(1.0, 0.25)])
    assert got == [Reserved(1)]
    assert await desk.spending() == (0.25, 2.0)


async def test_the_run_stops_only_when_nothing_is_reserved_anywhere_and_the_next_still_does_not_fit() -> None:
    desk = budget_desk(cap_usd=2.0)
    await desk.reserve("w1", [1.0, 1.0])
    await desk.settle("w1", [Settlement(1.0, 0.8), Settlement(1.0, 0.8)])

    refused = await desk.reserve("w2", [1.0])

    assert refused == Reserved(0, "spent $1.6000 of the $2.0000 cap; the next request could cost up to $1.0000")


async def test_a_lost_workers_reservations_are_released_for_the_others() -> None:
    desk = budget_desk(cap_usd=2.0)
    await desk.reserve("w1", [1.0, 1.0])

    await desk.forget("w1")

    assert await desk.spending() == (0.0, 0.0)
    assert await desk.reserve("w2", [1.0, 1.0]) == Reserved(2)
    await desk.settle("w1", [Settlement(1.0, 1.0)])  # a late settlement of the lost worker's: already released
    assert await desk.spending() == (0.0, 2.0)


# --- a worker's reservations ----------------------------------------------------------------------


async def test_requests_waiting_at_once_reserve_in_one_call_and_settle_in_one_call() -> None:
    desk = CountingDesk(cap_usd=10.0)
    budget = LeasedBudget(desk, "w1")
    answers: list[str | None] = []

    async with anyio.create_task_group() as group:
        group.start_soon(budget.serve)
        async with anyio.create_task_group() as senders:
            for _ in range(6):
                senders.start_soon(lambda: _append(answers, budget.reserve(1.0)))
        for _ in range(6):
            budget.settle(1.0, 0.5)
        await settle()
        group.cancel_scope.cancel()

    assert answers == [None] * 6
    assert (desk.reserve_sizes, desk.settle_sizes) == ([6], [6])
    assert await desk.budget_counts() == (6, 1)
    assert await desk.spending() == (3.0, 0.0)


async def test_a_request_cancelled_while_it_waits_gives_its_reservation_back() -> None:
    desk = budget_desk(cap_usd=1.0)
    other = LeasedBudget(desk, "w2")
    budget = LeasedBudget(desk, "w1")
    await desk.reserve("w2", [1.0])

    async with anyio.create_task_group() as group:
        group.start_soon(budget.serve)
        group.start_soon(other.serve)
        async with anyio.create_task_group() as asking:
            asking.start_soon(budget.reserve, 1.0)
            await settle()
            asking.cancel_scope.cancel()  # a stop while w1 waits for w2's budget
        other.settle(1.0, 0.0)
        await settle()
        group.cancel_scope.cancel()

    assert await desk.spending() == (0.0, 0.0)  # the reservation that came for the cancelled request went back


async def test_every_waiting_request_is_refused_with_the_reason_when_the_whole_budget_is_spent() -> None:
    desk = budget_desk(cap_usd=1.5, spent_usd=1.0)
    budget = LeasedBudget(desk, "w1")
    answers: list[str | None] = []

    async with anyio.create_task_group() as group:
        group.start_soon(budget.serve)
        async with anyio.create_task_group() as senders:
            for _ in range(3):
                senders.start_soon(lambda: _append(answers, budget.reserve(1.0)))
        group.cancel_scope.cancel()

    assert answers == ["spent $1.0000 of the $1.5000 cap; the next request could cost up to $1.0000"] * 3


# --- pools sharing the desk's budget --------------------------------------------------------------


def shared_pool(clock: FakeClock, budget: LeasedBudget, sink: MemorySink) -> WorkerPool:
    return WorkerPool(
        provider=ScriptedProvider(clock), client=None, limiter=Limiter(concurrency=4, clock=clock, unpaced_until_429=True),
        policy=RetryPolicy(initial_s=0.0, max_wait_s=0.0, rng=random.Random(0)), sink=sink,
        progress=Progress(total=0, started=0.0, clock=clock.now), clock=clock,
        account=SpendingAccount(FixedPrices(worst=1.0, actual=1.0)), budget=budget,
        settings=PoolSettings(concurrency=4, epoch_s=EPOCH),
    )


Shards = dict[str, list[RequestRecord]]


async def run_shards(cap_usd: float, shards: Shards) -> tuple[dict[str, PoolStop], dict[str, MemorySink], LimiterDesk]:
    """A pool per shard, all reserving in one desk's budget; each pool's stop and sink."""
    clock = FakeClock()
    desk = LimiterDesk(DeskLimits(concurrency=100), clock, BudgetLimits(cap_usd))
    stops: dict[str, PoolStop] = {}
    sinks = {name: MemorySink() for name in shards}

    async def run(name: str) -> None:
        budget = LeasedBudget(desk, name)
        async with anyio.create_task_group() as serving:
            serving.start_soon(budget.serve)
            stops[name] = await shared_pool(clock, budget, sinks[name]).run(shards[name])
            await budget.flush()
            serving.cancel_scope.cancel()

    async with clock.autojump():
        async with anyio.create_task_group() as group:
            for name in shards:
                group.start_soon(run, name)
    return stops, sinks, desk


async def test_a_budget_that_fits_five_requests_lets_exactly_five_through_whichever_worker_sends_them() -> None:
    # $1 each, a $5 cap: w1 has one request, w2 nine. An even split ($2.50 each) would let w2 send 2.
    every = records(10)
    stops, sinks, desk = await run_shards(5.0, {"w1": every[:1], "w2": every[1:]})

    assert [len(sinks[name].results) for name in ("w1", "w2")] == [1, 4]
    assert stops["w1"] == PoolStop()  # its shard ran out, not the budget
    assert stops["w2"].reason is StopReason.BUDGET
    assert stops["w2"].message == "spent $5.0000 of the $5.0000 cap; the next request could cost up to $1.0000"
    assert await desk.spending() == (5.0, 0.0)


async def test_a_worker_with_no_requests_left_holds_no_budget() -> None:
    every = records(9)
    stops, sinks, desk = await run_shards(8.0, {"w1": every[:1], "w2": every[1:]})

    assert [len(sinks[name].results) for name in ("w1", "w2")] == [1, 7]
    assert desk.budget.account.holders == 0
    assert stops["w2"].reason is StopReason.BUDGET


async def _append(into: list, awaitable) -> None:  # type: ignore[type-arg]
    into.append(await awaitable)
