"""The budget of input image bytes in flight: never over capacity, first come first served, never stuck."""

from __future__ import annotations

import anyio
import pytest
from anyio.lowlevel import checkpoint

from batchrun.running.inputbytes import InputBytesBudget

pytestmark = pytest.mark.anyio


async def test_requests_hold_their_bytes_and_wait_in_order_while_the_budget_is_spent() -> None:
    budget = InputBytesBudget(100)
    order: list[str] = []
    gates = {name: anyio.Event() for name in "abcd"}

    async def request(name: str, size: int) -> None:
        await budget.hold(size)
        order.append(f"+{name}")
        assert budget.in_use <= budget.capacity or budget.in_use == size
        await gates[name].wait()
        budget.release(size)
        order.append(f"-{name}")

    async with anyio.create_task_group() as tg:
        for name, size in [("a", 60), ("b", 50), ("c", 10), ("d", 40)]:
            tg.start_soon(request, name, size)
            await checkpoint()
        await anyio.wait_all_tasks_blocked()
        assert order == ["+a"] and budget.in_use == 60  # b waits; c and d queue behind it, in order
        gates["a"].set()
        await anyio.wait_all_tasks_blocked()
        assert order == ["+a", "-a", "+b", "+c", "+d"] and budget.in_use == 100
        for name in "bcd":
            gates[name].set()
    assert budget.in_use == 0 and budget.peak == 100


async def test_a_request_larger_than_the_budget_goes_alone_once_nothing_else_holds_any() -> None:
    budget = InputBytesBudget(100)
    await budget.hold(30)
    got_big = anyio.Event()

    async def big() -> None:
        await budget.hold(500)
        got_big.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(big)
        await anyio.wait_all_tasks_blocked()
        assert not got_big.is_set()
        budget.release(30)
        await anyio.wait_all_tasks_blocked()
        assert got_big.is_set() and budget.in_use == 500
    budget.release(500)
    assert budget.in_use == 0


async def test_a_waiter_cancelled_while_waiting_takes_nothing() -> None:
    budget = InputBytesBudget(100)
    await budget.hold(100)
    async with anyio.create_task_group() as tg:
        tg.start_soon(budget.hold, 10)
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    budget.release(100)
    assert budget.in_use == 0
