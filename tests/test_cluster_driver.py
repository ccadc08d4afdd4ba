"""The driver's bookkeeping without Ray: the cluster's requests in flight, as the progress line shows them."""

from __future__ import annotations

from pathlib import Path

from batchrun.cluster.desk import DeskLimits
from batchrun.cluster.driver import ClusterDriver, ClusterJob
from batchrun.cluster.shards import ShardBook
from batchrun.cluster.worker import Delivery
from batchrun.output.progress import Progress
from batchrun.records import Outcome, ProviderReply, RequestRecord
from batchrun.running.saving import Finished


class MemorySink:
    out_dir = Path(".")

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.results: list[object] = []

    def record_sent(self, request_id: str) -> None:
        self.sent.append(request_id)

    def write_result(self, result: object) -> None:
        self.results.append(result)


def records(count: int) -> list[RequestRecord]:
    return [RequestRecord(request_id=f"q{i}", seq=i, model="m", body=None, variables={}, row_id=f"r{i}")  # type: ignore[arg-type]
            for i in range(count)]


def finished(record: RequestRecord) -> Finished:
    return Finished(record, ProviderReply(Outcome.OK, 200, text="hi"), "ok", 1, 0.0, 1.0, None)  # type: ignore[arg-type]


def driver_of(jobs: list[RequestRecord], workers: list[str]) -> ClusterDriver:
    job = ClusterJob(jobs, setup=None, limits=DeskLimits(4), deadline_s=None)  # type: ignore[arg-type]
    driver = ClusterDriver(None, job, MemorySink(), Progress(total=len(jobs)))  # type: ignore[arg-type]
    driver.book = ShardBook(jobs, size=4)
    driver.book.first_shards(workers)
    return driver


def test_the_progress_shows_the_requests_every_worker_sent_and_has_not_delivered_as_in_flight() -> None:
    jobs = records(8)
    driver = driver_of(jobs, ["w1", "w2"])

    driver._save("w1", Delivery(sent=["q0", "q2"]))
    driver._save("w2", Delivery(sent=["q1"]))
    assert driver.progress.in_flight == 3

    driver._save("w1", Delivery(sent=["q4"], finished=[finished(jobs[0]), finished(jobs[2])]))
    assert driver.progress.in_flight == 2
    assert (driver.progress.ok, driver.sink.sent) == (2, ["q0", "q2", "q1", "q4"])  # type: ignore[attr-defined]

