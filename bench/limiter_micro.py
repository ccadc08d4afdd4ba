"""Micro-benchmark: Limiter acquire+release pairs per second, and send_with_retries calls per second.

Run by hand: `python bench/limiter_micro.py [--seconds 3] [--workers 64]`. Real clock, no network:
each worker loops acquire -> one checkpoint (a stand-in for the send) -> release.
"""

from __future__ import annotations

import argparse
import time

import anyio
import anyio.lowlevel

from batchrun.records import Outcome, ProviderReply
from batchrun.running.clock import MonotonicClock
from batchrun.running.limiter import Limiter
from batchrun.running.retry import RetryPolicy, send_with_retries


async def pairs_per_second(limiter: Limiter, workers: int, seconds: float) -> float:
    """acquire+release pairs per second of wall time across `workers` tasks."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            permit = await limiter.acquire(tokens=100, images=1)
            await anyio.lowlevel.checkpoint()
            limiter.release(permit, actual_tokens=90)
            done += 1

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(workers):
            tg.start_soon(worker)
    return done / (time.perf_counter() - start)


async def retries_per_second(workers: int, seconds: float) -> float:
    """send_with_retries calls per second whose send answers OK at once."""
    done = 0
    deadline = time.perf_counter() + seconds
    ok = ProviderReply(outcome=Outcome.OK, http_status=200)
    policy, clock = RetryPolicy(), MonotonicClock()

    async def send() -> ProviderReply:
        await anyio.lowlevel.checkpoint()
        return ok

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await send_with_retries(send, policy, clock)
            done += 1

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(workers):
            tg.start_soon(worker)
    return done / (time.perf_counter() - start)


async def main(seconds: float, workers: int) -> None:
    clock = MonotonicClock()
    cases = {
        "no limits (concurrency only)": Limiter(concurrency=workers, adaptive=False, clock=clock),
        "rpm, tpm, ipm set, never binding": Limiter(
            concurrency=workers, requests_per_minute=1e9, tokens_per_minute=1e12,
            images_per_minute=1e9, clock=clock,
        ),
        "rpm 60,000 (binding: paced at 980/s)": Limiter(
            concurrency=workers, requests_per_minute=60_000, clock=clock
        ),
        "adaptive, no rpm (slow start from 1/s)": Limiter(concurrency=workers, clock=clock),
    }
    for name, limiter in cases.items():
        rate = await pairs_per_second(limiter, workers, seconds)
        print(f"{name:42s} {rate:12,.0f} acquire+release/s")
    rate = await retries_per_second(workers, seconds)
    print(f"{'send_with_retries, first reply OK':42s} {rate:12,.0f} calls/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=64)
    args = parser.parse_args()
    anyio.run(main, args.seconds, args.workers)
