"""FakeClock: virtual time that moves only when every task is blocked, waking sleepers in order."""

from __future__ import annotations

import anyio
import pytest

from batchrun.running.clock import FakeClock, MonotonicClock, settle

pytestmark = pytest.mark.anyio


async def test_sleepers_wake_in_order_of_wake_time_then_arrival() -> None:
    clock = FakeClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    async with clock.autojump():
        async with anyio.create_task_group() as tg:
            for name, seconds in [("c", 3.0), ("a", 1.0), ("b1", 2.0), ("b2", 2.0)]:
                tg.start_soon(sleeper, name, seconds)
    assert woke == [("a", 1.0), ("b1", 2.0), ("b2", 2.0), ("c", 3.0)]


async def test_successive_sleeps_add_up_per_task() -> None:
    clock = FakeClock(start=10.0)
    seen: list[tuple[str, float]] = []

    async def ticker(name: str, period: float) -> None:
        for _ in range(3):
            await clock.sleep(period)
            seen.append((name, clock.now()))

    async with clock.autojump():
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker, "slow", 1.5)
            tg.start_soon(ticker, "fast", 1.0)
    assert seen == [
        ("fast", 11.0),
        ("slow", 11.5),
        ("fast", 12.0),
        ("slow", 13.0),  # both due at 13.0: "slow" went to sleep first, at 11.5
        ("fast", 13.0),
        ("slow", 14.5),
    ]


async def test_manual_advance_wakes_only_the_sleepers_due() -> None:
    clock = FakeClock()
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper, "early", 1.0)
        tg.start_soon(sleeper, "late", 5.0)
        await settle()
        clock.advance(2.0)
        await settle()
        assert woke == ["early"]
        assert clock.now() == 2.0
        assert clock.next_wake_at == 5.0
        clock.advance(3.0)
    assert woke == ["early", "late"]


async def test_a_cancelled_sleep_does_not_pull_time_forward() -> None:
    clock = FakeClock()
    async with clock.autojump():
        with anyio.move_on_after(0) as scope:  # real-time 0: cancels at the first checkpoint
            await clock.sleep(100.0)
        assert scope.cancelled_caught
        await clock.sleep(1.0)
    assert clock.now() == 1.0


async def test_sleep_of_zero_or_less_does_not_move_time() -> None:
    clock = FakeClock(start=3.0)
    await clock.sleep(0)
    await clock.sleep(-1)
    assert clock.now() == 3.0


def test_advance_refuses_to_go_back() -> None:
    with pytest.raises(ValueError):
        FakeClock().advance(-1.0)


async def test_monotonic_clock_never_goes_back() -> None:
    clock = MonotonicClock()
    first = clock.now()
    await clock.sleep(0)
    assert clock.now() >= first
