"""The pool holds each request's input image bytes of the budget while it is in flight."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
import pytest

from batchrun.output.progress import Progress
from batchrun.records import ImageRef, Outcome, ProviderReply, RequestRecord, Usage
from batchrun.running.account import FreePrices, SpendingAccount
from batchrun.running.clock import MonotonicClock
from batchrun.running.limiter import Limiter
from batchrun.running.pool import PoolSettings, WorkerPool
from batchrun.running.retry import RetryPolicy

pytestmark = pytest.mark.anyio


@dataclass
class MemorySink:
    out_dir: str = "memory"
    results: list = field(default_factory=list)

    def record_sent(self, request_id: str) -> None: ...

    def write_result(self, result) -> None:
        self.results.append(result)


class CountingProvider:
    """Answers OK after every request in flight has started; remembers the most image bytes at once."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0

    async def send(self, client, record: RequestRecord) -> ProviderReply:
        size = sum(ref.bytes for ref in record.images)
        self.in_flight += size
        self.peak = max(self.peak, self.in_flight)
        await anyio.wait_all_tasks_blocked()
        self.in_flight -= size
        return ProviderReply(Outcome.OK, http_status=200, text="ok", usage=Usage(total=1))


def record(n: int, megabytes: int) -> RequestRecord:
    image = ImageRef(f"p{n}.png", f"{n:064x}", "image/png", megabytes * 1_000_000, 10, 10)
    return RequestRecord(request_id=f"{n:032x}", seq=n, model="m", body={}, variables={}, images=[image])


async def run_pool(records: list[RequestRecord], budget_mb: int) -> tuple[CountingProvider, MemorySink]:
    provider, sink, clock = CountingProvider(), MemorySink(), MonotonicClock()
    pool = WorkerPool(provider=provider, client=None, limiter=Limiter(concurrency=16, clock=clock, unpaced_until_429=True),
                      policy=RetryPolicy(), sink=sink, progress=Progress(total=len(records)), clock=clock,
                      account=SpendingAccount(FreePrices()),
                      settings=PoolSettings(concurrency=16, input_image_bytes=budget_mb * 1_000_000))
    stop = await pool.run(records)
    assert stop.reason is None
    return provider, sink


async def test_input_image_bytes_in_flight_stay_within_the_budget_whatever_the_concurrency() -> None:
    provider, sink = await run_pool([record(n, 50) for n in range(12)], budget_mb=120)
    assert len(sink.results) == 12
    assert provider.peak == 100_000_000  # two 50 MB photos at once, not sixteen


async def test_a_photo_larger_than_the_budget_is_sent_alone() -> None:
    provider, sink = await run_pool([record(0, 10), record(1, 300), record(2, 10)], budget_mb=100)
    assert len(sink.results) == 3 and provider.peak == 300_000_000
