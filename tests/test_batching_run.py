"""The batch run: `SinkTarget` writes collected replies as a synchronous run does, and `run_batches` plans
what is pending within the budget and advances it, against the simulator in process on a fake clock."""

from __future__ import annotations

from collections import Counter

import anyio
import httpx
import pytest
import yaml
from batch_fake import BASE as FAKE_BASE
from batch_fake import FakeBatchApi

from batchrun.batching.chunks import BATCHES_DIR, ChunkLimits
from batchrun.batching.exchange import BatchApi, BatchApiError
from batchrun.batching.ledger import LEDGER_NAME, Ledger, Phase
from batchrun.batching.run import BatchRunSettings, SinkTarget, run_batches
from batchrun.errors import NoBatchRoute
from batchrun.output.images import ImageFile
from batchrun.output.progress import Progress
from batchrun.providers.gemini import GeminiProvider
from batchrun.records import Outcome, ProviderReply, RequestRecord, RowTarget, TokenEstimate, Usage
from batchrun.rendered import rendered_request
from batchrun.running.account import SpendingAccount
from batchrun.running.clock import FakeClock
from batchrun.simulator.requestlog import read_request_log
from batchrun.simulator.transport import SimulatorTransport

BASE = "http://simulator.batchrun.invalid"
MODEL = "gemini-2.5-flash"


class Writer:
    """An in-memory sink: result rows and images kept as written."""

    def __init__(self) -> None:
        self.rows: list = []
        self.images: list[tuple[bytes, str | None, str]] = []
        self.flushed = 0  # rows handed to the OS, as of the last flush

    def write_result(self, result) -> None:
        self.rows.append(result)

    def flush(self) -> None:
        self.flushed = len(self.rows)

    def write_image(self, data: bytes, mime: str, output_name: str | None, row_id: str) -> ImageFile:
        self.images.append((data, output_name, row_id))
        return ImageFile(f"images/{output_name or row_id}.png", f"sha-{row_id}", mime, len(data), 2, 2)


class Prices:
    """Every request costs at most $1; a reply costs $0.10 per 1,000 tokens at the batch tier, else $1."""

    def __init__(self) -> None:
        self.served: list[str | None] = []

    def worst_case(self, record: RequestRecord) -> float | None:
        return 1.0

    def cost(self, record: RequestRecord, usage: Usage | None, served: str | None = None) -> float | None:
        self.served.append(served)
        return (usage.total or 0) / 10_000 if served == "batch" and usage else 1.0


def record(n: int, *, shares: tuple[RowTarget, ...] = (), image: bool = False) -> RequestRecord:
    options = {"responseModalities": ["IMAGE"]} if image else {}
    body = rendered_request(None, [{"text": f"Write one line about topic {n}."}], options, None, {})
    return RequestRecord(request_id=f"r{n}", seq=n, model=MODEL, variables={}, body=body, shares=shares,
                         estimate=TokenEstimate())


def target_of(*records: RequestRecord, cap: float | None = None) -> tuple[SinkTarget, Writer, Progress, Prices]:
    writer, progress, prices = Writer(), Progress(total=10), Prices()
    account = SpendingAccount(prices, cap)
    target = SinkTarget(writer, {r.request_id: r for r in records}, account, progress, now=lambda: 1000.0)
    return target, writer, progress, prices


def ok_reply(*, image: bytes | None = None) -> ProviderReply:
    return ProviderReply(Outcome.OK, http_status=200, text=None if image else "an answer",
                         image=image, image_mime="image/png" if image else None, usage=Usage(total=2_000))


# ---------------------------------------------------------------- the target


def test_a_reply_is_written_for_its_row_and_each_row_sharing_its_request_at_the_batch_price():
    target, writer, progress, prices = target_of(record(1, shares=(RowTarget("row-b", None),)))

    target.accept("r1", ok_reply())

    assert [(r.row_id, r.status, r.cost_usd, r.shared_from, r.service_tier, r.total_tokens) for r in writer.rows] == [
        ("r1", "ok", 0.2, None, "batch", 2_000), ("row-b", "ok", 0.0, "r1", "batch", None)]
    assert prices.served == ["batch"]
    assert (progress.ok, progress.spend_usd) == (2, 0.2)


def test_each_reply_s_rows_are_handed_to_the_os_before_accept_returns_so_a_kill_after_keeps_them():
    target, writer, _, _ = target_of(record(1, shares=(RowTarget("row-b", None),)), record(2))

    target.accept("r1", ok_reply())
    assert writer.flushed == 2
    target.accept("r2", ok_reply())
    assert writer.flushed == 3


def test_an_image_reply_is_saved_under_each_row_s_name_as_a_synchronous_run_saves_it():
    target, writer, _, _ = target_of(record(1, image=True, shares=(RowTarget("row-b", "b/one"),)))

    assert target.wants_image("r1") and not target.wants_image("r9")
    target.accept("r1", ok_reply(image=b"PNG-bytes"))

    assert writer.images == [(b"PNG-bytes", None, "r1"), (b"PNG-bytes", "b/one", "row-b")]
    assert [r.image_path for r in writer.rows] == ["images/r1.png", "images/b/one.png"]


def test_a_reply_for_a_request_with_a_final_row_or_already_written_is_not_written_again():
    target, writer, progress, _ = target_of(record(1))

    target.accept("r1", ok_reply())
    target.accept("r1", ok_reply())  # the same results file collected again after a crash
    target.accept("r7", ok_reply())  # a request that had its final row before this run

    assert [r.row_id for r in writer.rows] == ["r1"]
    assert (target.skipped, progress.ok) == (2, 1)


def test_a_line_error_worth_retrying_is_written_failed_and_so_sent_again_by_the_next_run():
    target, writer, progress, _ = target_of(record(1))

    target.accept("r1", ProviderReply(Outcome.RETRY, http_status=503, error_kind="unavailable", error_message="busy"))

    assert [(r.status, r.error_kind) for r in writer.rows] == [("failed", "unavailable")]
    assert progress.failed == 1


# ---------------------------------------------------------------- the run, over the simulator in process


class World:
    """The simulator in process on one fake clock (alive for one `drive`), and the folder a job writes to."""

    def __init__(self, tmp_path, batch: dict) -> None:
        faults = tmp_path / "faults.yaml"
        faults.write_text(yaml.safe_dump({"batch": batch}))
        self.clock = FakeClock()
        self.log = tmp_path / "requests.jsonl"
        self.transport = SimulatorTransport(faults_file=str(faults), request_log=str(self.log), clock=self.clock.now)
        self.out = tmp_path / "out"
        self.encode = GeminiProvider(BASE, None, spec_dir=tmp_path).encode_body
        self.written: set[str] = set()
        self.api: BatchApi | None = None

    def drive(self, steps) -> None:
        """Run `steps(world)` with the simulator up; closing the client at the end closes the simulator."""
        async def go():
            async with httpx.AsyncClient(transport=self.transport) as client, self.clock.autojump():
                self.api = BatchApi(client, BASE, None)
                await steps(self)

        anyio.run(go)

    async def run(self, records: list[RequestRecord], *, cap: float | None = None, wait: bool = False,
                  deadline_s: float | None = None):
        """One `batchrun run`: the records without a final row are pending."""
        pending = [r for r in records if r.request_id not in self.written]
        target, writer, _, _ = target_of(*pending, cap=cap)
        settings = BatchRunSettings(job_name="job", wait=wait, deadline_s=deadline_s,
                                    limits=ChunkLimits(max_requests=2))
        assert self.api is not None
        outcome = await run_batches(self.api, self.out, target, self.encode, target.account, self.clock, settings)
        self.written |= target.written
        return outcome, writer

    def rpcs(self) -> Counter:
        return Counter(line["rpc"] for line in read_request_log(self.log))


def test_runs_advance_the_batches_until_every_request_is_written_once(tmp_path):
    records = [record(n) for n in range(5)]

    async def steps(world):
        first, written = await world.run(records)
        assert first.still_running and len(first.planned) == 3 and not written.rows
        world.clock.advance(60)
        second, written = await world.run(records)
        assert not second.still_running and not second.planned and second.in_flight_before == 5
        assert sorted(r.row_id for r in written.rows) == [f"r{n}" for n in range(5)]
        assert {r.service_tier for r in written.rows} == {"batch"}

    world = World(tmp_path, {"pending_s": 5, "running_s": 20})
    world.drive(steps)
    rpcs = world.rpcs()
    assert (rpcs["batches.create"], rpcs["batch.line"]) == (3, 5)


def test_the_chunk_s_file_goes_up_in_pieces_of_the_size_the_settings_give(tmp_path):
    records = [record(n) for n in range(2)]

    async def steps(world):
        target, _, _, _ = target_of(*records)
        settings = BatchRunSettings(job_name="job", upload_chunk_bytes=100)
        await run_batches(world.api, world.out, target, world.encode, target.account, world.clock, settings)

    world = World(tmp_path, {"pending_s": 5, "running_s": 20})
    world.drive(steps)
    [jsonl] = [path for path in (world.out / BATCHES_DIR).glob("*.jsonl") if path.name != LEDGER_NAME]
    assert world.rpcs()["files.upload"] == -(-jsonl.stat().st_size // 100) > 1


def test_wait_polls_on_the_clock_until_every_batch_is_done(tmp_path):
    async def steps(world):
        outcome, written = await world.run([record(n) for n in range(3)], wait=True)
        assert not outcome.still_running and outcome.passes > 2
        assert len(written.rows) == 3
        assert world.clock.now() >= 205

    World(tmp_path, {"pending_s": 5, "running_s": 200}).drive(steps)


def test_wait_stops_at_the_deadline_with_batches_still_running(tmp_path):
    async def steps(world):
        outcome, written = await world.run([record(n) for n in range(3)], wait=True, deadline_s=600)
        assert outcome.still_running and not written.rows
        assert world.clock.now() <= 600

    World(tmp_path, {"pending_s": 5, "running_s": 10_000}).drive(steps)


def test_a_chunk_whose_worst_case_passes_the_cap_is_not_planned_and_its_files_are_removed(tmp_path):
    async def steps(world):
        outcome, _ = await world.run([record(n) for n in range(5)], cap=2.5)  # $1 each: a chunk of 2 fits
        assert len(outcome.planned) == 1 and outcome.over_budget == 3
        assert [c.chunk_id for c in Ledger(world.out).read().chunks.values()] == outcome.planned
        assert sorted(p.stem for p in (world.out / BATCHES_DIR).glob("*.ids")) == outcome.planned

    World(tmp_path, {"pending_s": 0, "running_s": 1}).drive(steps)


def test_requests_in_flight_hold_their_worst_case_so_a_later_run_plans_only_what_still_fits(tmp_path):
    records = [record(n) for n in range(4)]

    async def steps(world):
        await world.run(records[:2], cap=3.0)
        outcome, _ = await world.run(records, cap=3.0)  # r0, r1 in flight ($2): a chunk of two more does not fit
        assert not outcome.planned and outcome.over_budget == 2
        assert [c.phase for c in Ledger(world.out).read().chunks.values()] == [Phase.CREATED]

    World(tmp_path, {"pending_s": 1000, "running_s": 1}).drive(steps)


@pytest.mark.parametrize("extra", [0, 1])
def test_no_request_in_flight_is_chunked_again(tmp_path, extra):
    records = [record(n) for n in range(2 + extra)]

    async def steps(world):
        await world.run(records[:2])
        outcome, _ = await world.run(records)
        assert len(outcome.planned) == extra

    world = World(tmp_path, {"pending_s": 1000, "running_s": 1})
    world.drive(steps)
    assert world.rpcs()["batches.create"] == 1 + extra


# ---------------------------------------------------------------- failures at the batch API (a scripted fake)


def fake_run(fake: FakeBatchApi, tmp_path, records: list[RequestRecord]):
    target, writer, _, _ = target_of(*records)
    settings = BatchRunSettings(job_name="job")
    encode = GeminiProvider(FAKE_BASE, None, spec_dir=tmp_path).encode_body

    async def go():
        async with fake.client() as client:
            return await run_batches(BatchApi(client, FAKE_BASE, None), tmp_path / "out", target, encode,
                                     target.account, FakeClock(), settings)

    return anyio.run(go)


def test_an_endpoint_without_the_batch_route_stops_the_run_with_the_line_that_says_so(tmp_path):
    with pytest.raises(NoBatchRoute, match="has no batch route .*use --tier flex or standard"):
        fake_run(FakeBatchApi(no_batch_route=True), tmp_path, [record(1)])


def test_a_listing_that_fails_after_a_lost_create_reply_leaves_the_batch_for_the_next_run_never_created_twice(tmp_path):
    fake = FakeBatchApi(lost_create_replies=1, faults={"list": [503]})
    records = [record(1), record(2)]

    first = fake_run(fake, tmp_path, records)  # created at the server, the reply lost: `creating`
    second = fake_run(fake, tmp_path, records)  # the listing answers 503: nothing decided
    third = fake_run(fake, tmp_path, records)  # the listing finds it: adopted

    assert first.still_running and [p.what.split()[0] for p in first.report.problems] == ["create"]
    assert second.still_running and [(p.chunk_id, p.error_kind) for p in second.report.problems] == [
        ("", "unavailable")]
    assert list(third.report.adopted) == first.planned
    assert len(fake.creates) == 1


def test_a_listing_the_server_refuses_stops_the_run(tmp_path):
    fake = FakeBatchApi(lost_create_replies=1, faults={"list": [400]})
    fake_run(fake, tmp_path, [record(1)])

    with pytest.raises(BatchApiError) as caught:
        fake_run(fake, tmp_path, [record(1)])
    assert caught.value.reply.outcome is Outcome.INVALID
