"""The worker pool's own CPU per request: an in-process provider that answers at once, a sink that keeps nothing.

    python bench/pool_micro.py [--requests 20000] [--runs 5]
    PYTHONPATH=/path/to/other/checkout python bench/pool_micro.py   # the same figure for another checkout

No HTTP, no files: what is left is the pool (limiter, retry check, spending account, recording) and
`save_finished`. Prints the median of the runs, as one JSON line, in microseconds of process CPU time
per request. Works against the pool before and after it took a SpendingAccount and PoolSettings.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import anyio

from batchrun.output.progress import Progress
from batchrun.records import Outcome, ProviderReply, RequestRecord, TokenEstimate, Usage
from batchrun.running import pool as pool_module
from batchrun.running.clock import MonotonicClock
from batchrun.running.limiter import Limiter
from batchrun.running.retry import RetryPolicy

CONCURRENCY = 64


class InstantProvider:
    async def send(self, client, record: RequestRecord) -> ProviderReply:
        await anyio.lowlevel.checkpoint()
        return ProviderReply(Outcome.OK, http_status=200, text="fine", usage=Usage(prompt=10, output_text=5, total=15))


class NullSink:
    out_dir = Path("memory")

    def record_sent(self, request_id: str) -> None: ...

    def write_result(self, result) -> None: ...


def make_pool(requests: int):
    clock = MonotonicClock()
    common = dict(provider=InstantProvider(), client=None, limiter=Limiter(concurrency=CONCURRENCY, clock=clock,
                  unpaced_until_429=True), policy=RetryPolicy(), sink=NullSink(), progress=Progress(total=requests),
                  clock=clock)
    if hasattr(pool_module, "Budget"):  # the pool before the spending account
        return pool_module.WorkerPool(**common, concurrency=CONCURRENCY, cost=lambda r, u: 0.0001,
                                      worst_case=lambda r: 0.001, budget=pool_module.Budget(1e9))
    from batchrun.running.account import SpendingAccount

    class Prices:
        def worst_case(self, record): return 0.001
        def cost(self, record, usage, served=None): return 0.0001

    return pool_module.WorkerPool(**common, account=SpendingAccount(Prices(), cap_usd=1e9),
                                  settings=pool_module.PoolSettings(concurrency=CONCURRENCY))


def one_run(requests: int) -> float:
    records = [RequestRecord(request_id=f"{n:032x}", seq=n, model="m", body={}, variables={},
                             estimate=TokenEstimate(input_text=10)) for n in range(requests)]
    pool = make_pool(requests)
    started = time.process_time()
    anyio.run(pool.run, records)
    return (time.process_time() - started) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    figures = [one_run(args.requests) for _ in range(args.runs)]
    print(json.dumps({"benchmark": "pool_micro", "pool": pool_module.__file__, "requests": args.requests,
                      "cpu_us_per_request": round(statistics.median(figures), 1),
                      "all_runs": [round(f, 1) for f in figures]}))


if __name__ == "__main__":
    main()
