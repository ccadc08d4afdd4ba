"""A key pool on a cluster: the desk's keys, and worker pools sending with the keys its grants name.

Every test runs on a fake clock, the desk in process: what a Ray actor would hold, without Ray.
"""

from __future__ import annotations

import math
import random
from collections import Counter

import anyio
import httpx
import pytest
from test_pool_unit import EPOCH, MemorySink, error, ok, records

from batchrun.cluster.desk import DeskLimits, Grant, LimiterDesk, Return, Want
from batchrun.cluster.deskkeys import Aside, KeyLimits, KeyNews
from batchrun.cluster.leased import LeasedLimiter
from batchrun.cluster.leasedkeys import LeasedKeys
from batchrun.outcomes import ErrorKind, Outcome
from batchrun.output.progress import Progress
from batchrun.records import ProviderReply, RequestRecord
from batchrun.running.account import FreePrices, SpendingAccount
from batchrun.running.clock import FakeClock
from batchrun.running.pool import PoolSettings, PoolStop, StopReason, WorkerPool
from batchrun.running.retry import RetryPolicy

pytestmark = pytest.mark.anyio

THREE = (KeyLimits("KEY_A"), KeyLimits("KEY_B"), KeyLimits("KEY_C"))
BAD_KEY = "HTTP 400 auth"


def keyed_desk(concurrency: int = 100, keys: tuple[KeyLimits, ...] = THREE, clock: FakeClock | None = None) -> LimiterDesk:
    return LimiterDesk(DeskLimits(concurrency, keys=keys), clock or FakeClock())


# --- the desk's keys ------------------------------------------------------------------------------


async def test_grants_of_a_lease_are_spread_over_the_keys_in_equal_shares() -> None:
    desk = keyed_desk()

    grants = await desk.lease("w1", [Want()] * 6)

    assert grants == [Grant(1, 0), Grant(2, 1), Grant(3, 2), Grant(4, 0), Grant(5, 1), Grant(6, 2)]


async def test_the_clusters_concurrency_holds_across_keys() -> None:
    desk = keyed_desk(concurrency=2)

    assert len(await desk.lease("w1", [Want()] * 5)) == 2
    assert await desk.in_flight() == 2


async def test_each_key_keeps_its_own_rate_limit() -> None:
    # KEY_A 60 a minute, KEY_B 6: one a second and one every ten seconds (each paced a little below)
    clock = FakeClock()
    desk = keyed_desk(keys=(KeyLimits("KEY_A", requests_per_minute=60), KeyLimits("KEY_B", requests_per_minute=6)),
                      clock=clock)
    keys: list[int] = []

    async with clock.autojump():
        while clock.now() < 20.0:
            [grant] = await desk.lease("w1", [Want()])
            keys.append(grant.key)
            await desk.report([Return(grant.number)])

    assert 17 <= keys.count(0) <= 21 and 2 <= keys.count(1) <= 3  # about ten times as many on KEY_A


async def test_a_key_that_failed_authentication_is_dropped_for_every_worker_with_one_warning() -> None:
    desk = keyed_desk()

    news = await desk.report([], asides=[Aside(1, BAD_KEY, auth=True)])
    again = await desk.report([], asides=[Aside(1, BAD_KEY, auth=True)])  # another worker saw it fail too

    assert news == KeyNews(["the key in KEY_B failed authentication (HTTP 400 auth): dropped for this run; sending "
                            "goes on with 2 keys (KEY_A, KEY_C)"], {1: math.inf})
    assert again == KeyNews([], {1: math.inf})
    assert {grant.key for grant in await desk.lease("w2", [Want()] * 6)} == {0, 2}


async def test_the_last_usable_key_is_never_dropped() -> None:
    desk = keyed_desk(keys=THREE[:2])

    news = await desk.report([], asides=[Aside(0, BAD_KEY, auth=True), Aside(1, BAD_KEY, auth=True)])

    assert news is not None and news.out_for_s == {0: math.inf}  # KEY_B's failure is the run's
    assert len(news.warnings) == 1


async def test_a_key_whose_quota_is_spent_is_set_aside_until_its_reset() -> None:
    clock = FakeClock()
    desk = keyed_desk(clock=clock)

    news = await desk.report([], asides=[Aside(0, "spent its daily quota", seconds=3600.0)])

    assert news is not None and news.out_for_s == {0: 3600.0}
    assert "the key in KEY_A spent its daily quota: set aside until" in news.warnings[0]
    assert {grant.key for grant in await desk.lease("w1", [Want()] * 4)} == {1, 2}


async def test_a_lost_workers_permits_go_back_to_the_cluster_and_to_their_keys() -> None:
    desk = keyed_desk(concurrency=3, keys=(KeyLimits("KEY_A"), KeyLimits("KEY_B")))
    await desk.lease("w1", [Want()] * 3)

    assert await desk.forget("w1") == 3
    assert await desk.in_flight() == 0
    keys = desk.keys
    assert keys is not None and [lane.limiter.in_flight for lane in keys.pool.lanes] == [0, 0]


# --- worker pools sending with the desk's keys ----------------------------------------------------


class KeyedProvider:
    """Answers every request ok, or (a revoked key) 400 API_KEY_INVALID; logs each send's key."""

    def __init__(self, clock: FakeClock, env: str, sends: list[tuple[str, str]], revoked: bool = False) -> None:
        self.clock, self.env, self.sends, self.revoked = clock, env, sends, revoked

    async def send(self, client: httpx.AsyncClient, record: RequestRecord) -> ProviderReply:
        self.sends.append((self.env, record.request_id))
        step = error(Outcome.STOP_AUTH, 400, ErrorKind.AUTH, message="API key not valid") if self.revoked else ok()
        await self.clock.sleep(step.after_s)
        return step.reply


async def run_workers(envs: list[str], revoked: set[str], shards: dict[str, list[RequestRecord]]):
    """A pool per shard, each with a `LeasedKeys` over one desk; each pool's stop and sink, the sends, the warnings."""
    clock = FakeClock()
    desk = keyed_desk(keys=tuple(KeyLimits(env) for env in envs), clock=clock)
    sends: list[tuple[str, str]] = []
    warnings: list[str] = []
    stops: dict[str, PoolStop] = {}
    sinks = {name: MemorySink() for name in shards}

    async def run(name: str) -> None:
        leased = LeasedLimiter(desk, name, clock=clock, on_news=lambda news: keys.hear(news))
        keys = LeasedKeys(leased, [(env, KeyedProvider(clock, env, sends, env in revoked)) for env in envs], clock,
                          warnings.append)
        pool = WorkerPool(keys=keys, client=None, policy=RetryPolicy(initial_s=0.0, max_wait_s=0.0, rng=random.Random(0)),
                          sink=sinks[name], progress=Progress(total=0, started=0.0, clock=clock.now), clock=clock,
                          account=SpendingAccount(FreePrices()), settings=PoolSettings(concurrency=2, epoch_s=EPOCH))
        async with anyio.create_task_group() as serving:
            serving.start_soon(leased.serve)
            stops[name] = await pool.run(shards[name])
            await leased.flush()
            serving.cancel_scope.cancel()

    async with clock.autojump():
        async with anyio.create_task_group() as group:
            for name in shards:
                group.start_soon(run, name)
    return stops, sinks, sends, warnings


async def test_two_workers_send_every_request_over_the_good_keys_and_a_revoked_key_is_dropped_once() -> None:
    every = records(12)
    stops, sinks, sends, warnings = await run_workers(["KEY_A", "KEY_BAD", "KEY_B"], {"KEY_BAD"},
                                                       {"w1": every[:6], "w2": every[6:]})

    assert stops == {"w1": PoolStop(), "w2": PoolStop()}
    assert sorted(r.request_id for sink in sinks.values() for r in sink.results) == sorted(r.request_id for r in every)
    assert {r.status for sink in sinks.values() for r in sink.results} == {"ok"}
    ok_by_key = Counter(env for env, _ in sends if env != "KEY_BAD")
    assert sorted(ok_by_key) == ["KEY_A", "KEY_B"] and sum(ok_by_key.values()) == 12
    assert 1 <= Counter(env for env, _ in sends)["KEY_BAD"] <= 2  # one per worker at most, before the news
    assert len(warnings) == 1 and "KEY_BAD failed authentication" in warnings[0]


async def test_when_every_key_is_revoked_the_run_stops_for_authentication() -> None:
    every = records(6)
    stops, sinks, _, warnings = await run_workers(["KEY_BAD_1", "KEY_BAD_2"], {"KEY_BAD_1", "KEY_BAD_2"},
                                                  {"w1": every[:3], "w2": every[3:]})

    assert StopReason.AUTH in {stop.reason for stop in stops.values()}
    assert [r for sink in sinks.values() for r in sink.results] == []
    assert len(warnings) <= 1  # the first key's drop; the last key's failure is the run's
