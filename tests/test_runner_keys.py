"""The key pool alone: which key a request takes, and which keys are set aside; on a fake clock."""

from __future__ import annotations

import math

import anyio
import pytest

from batchrun.running.clock import FakeClock
from batchrun.running.keys import KeyLane, KeyPool
from batchrun.running.limiter import PACE_FRACTION, Limiter

pytestmark = pytest.mark.anyio


def lane(env: str, clock: FakeClock, **limits: float) -> KeyLane:
    return KeyLane(env, provider=None, limiter=Limiter(concurrency=8, clock=clock, unpaced_until_429=True, **limits))


def pool_of(clock: FakeClock, *envs: str, **limits: float) -> KeyPool:
    return KeyPool([lane(env, clock, **limits) for env in envs], clock)


def test_a_pool_needs_a_key() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        KeyPool([], FakeClock())


async def test_grant_wait_counts_the_pause_and_the_refill_for_each_waiter_ahead() -> None:
    clock = FakeClock()
    limiter = Limiter(concurrency=8, requests_per_minute=60, clock=clock)
    assert limiter.grant_wait() == 0.0
    await limiter.acquire()
    assert limiter.grant_wait() == pytest.approx(1 / PACE_FRACTION)
    limiter.pause_all(5.0)
    assert limiter.grant_wait() == 5.0


async def test_a_request_takes_the_key_that_grants_soonest() -> None:
    clock = FakeClock()
    pool = pool_of(clock, "KEY_A", "KEY_B", "KEY_C", requests_per_minute=60)
    taken = [(await pool.acquire())[0].env for _ in range(3)]
    assert taken == ["KEY_A", "KEY_B", "KEY_C"]  # each key's bucket held one request
    clock.advance(0.5)
    assert pool.choose().env == "KEY_A"  # all three refill alike: the first that has sent no more


async def test_keys_without_limits_take_turns_by_what_they_sent_then_what_is_in_flight() -> None:
    clock = FakeClock()
    pool = pool_of(clock, "KEY_A", "KEY_B")
    lane_a, permit_a = await pool.acquire()
    assert (lane_a.env, pool.choose().env) == ("KEY_A", "KEY_B")
    lane_a.limiter.release(permit_a)
    assert pool.choose().env == "KEY_B"  # none in flight: the one that sent fewer
    await pool.acquire()
    assert pool.choose() is lane_a  # as many sent: the one with none in flight


def test_a_key_back_from_its_reset_takes_turns_rather_than_every_request_until_it_caught_up() -> None:
    clock = FakeClock()
    pool = pool_of(clock, "KEY_A", "KEY_B")
    first, second = pool.lanes
    first.sent, second.sent = 1, 500
    pool.set_aside(first, 30.0)
    clock.advance(30.0)
    assert pool.choose() is first
    assert (first.sent, first.set_aside_until) == (500, -math.inf)


def test_a_bad_key_is_dropped_only_while_another_can_send() -> None:
    clock = FakeClock()
    pool = pool_of(clock, "KEY_A", "KEY_B")
    first, second = pool.lanes
    assert pool.drop(first, "HTTP 401 auth") is True
    assert (first.dropped, first.usable(clock.now())) == (True, False)
    assert pool.drop(first, "HTTP 401 auth") is True  # a reply still in flight on it: sent again, no new warning
    assert pool.drop(second, "HTTP 401 auth") is False  # the last key: the run stops, as with one key
    assert second.usable(clock.now())
    assert pool.choose() is second


def test_a_spent_key_is_set_aside_until_its_reset() -> None:
    clock = FakeClock()
    pool = pool_of(clock, "KEY_A", "KEY_B")
    first, second = pool.lanes
    assert pool.set_aside(first, 30.0) is True
    assert first.set_aside_until == 30.0
    assert pool.choose() is second
    assert pool.set_aside(second, 60.0) is False  # no key left: the run parks or stops as with one key
    clock.advance(30.0)
    assert first.usable(clock.now()) and pool.choose() is first


def test_a_spent_key_with_no_reset_given_is_set_aside_for_the_run() -> None:
    clock = FakeClock()
    pool = pool_of(clock, "KEY_A", "KEY_B")
    assert pool.set_aside(pool.lanes[0], None) is True
    assert pool.lanes[0].set_aside_until == math.inf


async def test_with_no_key_usable_the_pool_waits_for_the_one_back_soonest() -> None:
    clock = FakeClock()
    pool = pool_of(clock, "KEY_A", "KEY_B", "KEY_C")
    a, b, c = pool.lanes
    a.set_aside_until, b.set_aside_until, c.set_aside_until = math.inf, 90.0, 40.0
    assert pool.choose() is c
    async with clock.autojump():
        lane, _ = await pool.acquire()
    assert (lane, clock.now()) == (c, 40.0)


def test_a_pool_whose_every_key_was_dropped_is_a_bug_not_a_wait() -> None:
    clock = FakeClock()
    pool = pool_of(clock, "KEY_A", "KEY_B")
    for lane in pool.lanes:
        lane.set_aside_until = math.inf
    with pytest.raises(RuntimeError, match="every key of the pool was dropped"):
        pool.choose()


async def test_a_permit_granted_to_a_key_set_aside_while_it_waited_is_given_back_and_another_key_sends() -> None:
    clock = FakeClock()
    pool = pool_of(clock, "KEY_A", "KEY_B")
    first, second = pool.lanes
    first.limiter.pause_all(10.0)
    second.limiter.pause_all(20.0)
    taken: list[str | None] = []

    async def take() -> None:
        chosen, _ = await pool.acquire()
        taken.append(chosen.env)

    async with clock.autojump():
        async with anyio.create_task_group() as group:
            group.start_soon(take)
            await clock.sleep(5.0)
            first.set_aside_until = math.inf  # dropped while the request waited on its pause
    assert taken == ["KEY_B"]
    assert (first.limiter.in_flight, second.limiter.in_flight, clock.now()) == (0, 1, 20.0)


def test_a_key_is_named_by_its_variable_never_by_its_value(caplog) -> None:
    clock = FakeClock()
    pool = pool_of(clock, "KEY_A", "KEY_B")
    with caplog.at_level("WARNING"):
        pool.drop(pool.lanes[0], "HTTP 400 auth")
        pool.set_aside(pool.lanes[1], 5.0)  # the last usable key: no warning, the run decides
    assert [r.getMessage() for r in caplog.records] == [
        "the key in KEY_A failed authentication (HTTP 400 auth): dropped for this run; sending goes on with 1 key (KEY_B)"]
