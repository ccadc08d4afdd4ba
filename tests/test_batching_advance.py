"""Advance: one pass submits, polls with backoff, collects and returns to pending; a crash after any
ledger write resumes without a second create for any display name."""

from __future__ import annotations

from collections import Counter

import anyio
import pytest
from batch_fake import BASE, FakeBatchApi, answer_each

from batchrun.batching.advance import AdvanceReport, PollBackoff, PollSchedule, advance
from batchrun.batching.chunks import ChunkLimits, write_chunks
from batchrun.batching.exchange import BatchApi, BatchApiError
from batchrun.batching.ledger import Ledger, Phase
from batchrun.errors import NoBatchRoute
from batchrun.providers.gemini import GeminiProvider
from batchrun.records import Outcome, ProviderReply, RequestRecord
from batchrun.rendered import rendered_request
from batchrun.running.clock import FakeClock

IDS = [f"r{n}" for n in range(5)]


class Crash(Exception):
    """Stands for kill -9 right after a ledger line reached the disk."""


class CrashingLedger(Ledger):
    def __init__(self, out_dir, crash_after: int) -> None:
        super().__init__(out_dir, now=lambda: 0.0)
        self.left = crash_after

    def _append(self, event, chunk_id, **facts):
        super()._append(event, chunk_id, **facts)
        self.left -= 1
        if self.left == 0:
            raise Crash(event)


class Target:
    def __init__(self) -> None:
        self.accepted: list[tuple[str, ProviderReply]] = []

    def wants_image(self, request_id: str) -> bool:
        return False

    def accept(self, request_id: str, reply: ProviderReply) -> None:
        self.accepted.append((request_id, reply))


def plan(tmp_path, ledger: Ledger, max_requests: int = 2, done: frozenset[str] = frozenset()) -> None:
    """What the wiring does: chunk the requests with no final row (`done`) and in no live chunk."""
    records = [RequestRecord(request_id=rid, seq=n, model="gemini-x", variables={},
                             body=rendered_request(None, [{"text": f"say {n}"}], {}, None, {}))
               for n, rid in enumerate(IDS)]
    encode = GeminiProvider(BASE, None, spec_dir=tmp_path).encode_body
    skip = done | ledger.read().in_flight_ids(ledger.path.parent)
    pending = [r for r in records if r.request_id not in skip]
    for chunk in write_chunks(pending, encode, tmp_path, "job", ChunkLimits(max_requests=max_requests)).chunks:
        ledger.planned(chunk)


class Run:
    """The fake server, a fake clock and a target that outlive 'processes' (ledgers and schedules)."""

    def __init__(self, fake: FakeBatchApi) -> None:
        self.fake, self.clock, self.target = fake, FakeClock(), Target()

    def one_pass(self, ledger: Ledger, schedule: PollSchedule) -> AdvanceReport:
        async def main():
            async with self.fake.client() as client:
                return await advance(BatchApi(client, BASE, "k"), ledger, self.clock, self.target, schedule=schedule)
        return anyio.run(main)

    def until_done(self, ledger: Ledger, schedule: PollSchedule | None = None, passes: int = 30) -> list[AdvanceReport]:
        schedule = schedule or PollSchedule()
        reports = []
        for _ in range(passes):
            reports.append(self.one_pass(ledger, schedule))
            if not reports[-1].still_running:
                return reports
            self.clock.advance(max(1.0, (reports[-1].next_poll_at or 0) - self.clock.now()))
        raise AssertionError("batches still running")


def test_a_pass_submits_every_chunk_and_later_passes_poll_with_backoff_then_collect(tmp_path):
    run = Run(FakeBatchApi())
    ledger = Ledger(tmp_path)
    plan(tmp_path, ledger)
    reports = run.until_done(ledger)
    first = reports[0]
    assert (len(first.submitted), first.polled, len(first.unfinished), first.next_poll_at) == (3, [], 3, 10.0)
    assert [(len(r.polled), len(r.collected)) for r in reports[1:]] == [(3, 0), (3, 3)]
    assert sorted(rid for rid, _ in run.target.accepted) == IDS
    assert {reply.outcome for _, reply in run.target.accepted} == {Outcome.OK}
    assert all(chunk.phase is Phase.COLLECTED for chunk in ledger.read().chunks.values())
    assert sorted(Counter(run.fake.creates).values()) == [1, 1, 1]


def test_the_poll_schedule_backs_off_first_then_factor_up_to_the_cap():
    schedule = PollSchedule(PollBackoff(first_s=10, factor=2, max_s=35))
    schedule.started("c", 0.0)
    times = []
    now = 0.0
    for _ in range(4):
        assert not schedule.due("c", now + 0.5 if times else 9.5)
        now = schedule.next_poll_at(["c"])
        assert schedule.due("c", now)
        times.append(now)
        schedule.polled("c", now)
    assert times == [10.0, 30.0, 65.0, 100.0]


def test_a_batch_not_yet_due_is_not_polled(tmp_path):
    run = Run(FakeBatchApi())
    ledger = Ledger(tmp_path)
    plan(tmp_path, ledger)
    schedule = PollSchedule()
    run.one_pass(ledger, schedule)
    run.clock.advance(9.0)
    report = run.one_pass(ledger, schedule)
    assert (report.polled, len(report.unfinished)) == ([], 3)


@pytest.mark.parametrize("end", ["BATCH_STATE_EXPIRED", "JOB_STATE_FAILED", "BATCH_STATE_CANCELLED"])
def test_a_batch_that_ends_without_results_returns_its_requests_to_pending(tmp_path, end):
    run = Run(FakeBatchApi(states=["BATCH_STATE_RUNNING", end]))
    ledger = Ledger(tmp_path)
    plan(tmp_path, ledger)
    reports = run.until_done(ledger)
    returned = {cid: reason for r in reports for cid, reason in r.returned.items()}
    assert len(returned) == 3 and set(returned.values()) == {f"batch ended {end.split('_')[-1]}"}
    assert run.target.accepted == []
    assert ledger.read().in_flight_ids(tmp_path / "batches") == set()


def test_missing_keys_are_counted_in_the_ledger_and_left_pending(tmp_path):
    run = Run(FakeBatchApi(results=lambda lines: answer_each(lines)[1:]))
    ledger = Ledger(tmp_path)
    plan(tmp_path, ledger, max_requests=5)
    [*_, last] = run.until_done(ledger)
    [summary] = last.collected.values()
    assert (summary.missing, sorted(rid for rid, _ in run.target.accepted)) == (["r0"], IDS[1:])
    assert next(iter(ledger.read().chunks.values())).summary == {"lines": 4, "missing": 1, "unknown": 0}


def test_a_create_whose_reply_was_lost_is_adopted_on_the_next_pass_not_created_again(tmp_path):
    run = Run(FakeBatchApi(lost_create_replies=1))
    ledger = Ledger(tmp_path)
    plan(tmp_path, ledger, max_requests=5)
    reports = run.until_done(ledger)
    assert [(p.what, p.error_kind) for p in reports[0].problems] == [
        (f"create of {run.fake.creates[0]}", "unavailable")]
    assert reports[1].adopted == [next(iter(ledger.read().chunks))]
    assert len(run.fake.creates) == 1
    assert sorted(rid for rid, _ in run.target.accepted) == IDS


def test_a_503_on_download_is_retried_in_a_later_pass(tmp_path):
    run = Run(FakeBatchApi(states=["BATCH_STATE_SUCCEEDED"], faults={"download": [503]}))
    ledger = Ledger(tmp_path)
    plan(tmp_path, ledger, max_requests=5)
    reports = run.until_done(ledger)
    assert [p.error_kind for p in reports[1].problems] == ["unavailable"]
    assert reports[1].still_running
    assert sorted(rid for rid, _ in run.target.accepted) == IDS


def test_an_auth_failure_ends_the_pass_by_raising(tmp_path):
    run = Run(FakeBatchApi(faults={"create": [401]}))
    ledger = Ledger(tmp_path)
    plan(tmp_path, ledger)
    with pytest.raises(BatchApiError) as caught:
        run.one_pass(ledger, PollSchedule())
    assert caught.value.reply.outcome is Outcome.STOP_AUTH


def test_an_endpoint_without_a_batch_route_ends_the_pass_with_no_batch_route(tmp_path):
    run = Run(FakeBatchApi(no_batch_route=True))
    ledger = Ledger(tmp_path)
    plan(tmp_path, ledger)
    with pytest.raises(NoBatchRoute):
        run.one_pass(ledger, PollSchedule())


def writes_of_a_whole_run(tmp_path) -> int:
    ledger = Ledger(tmp_path / "count")
    plan(tmp_path / "count", ledger)
    Run(FakeBatchApi()).until_done(ledger)
    return len(ledger.path.read_text().splitlines()) - 3  # the planned lines are written before the passes


@pytest.mark.parametrize("crash_after", range(1, 22))
def test_a_crash_after_any_ledger_write_resumes_with_no_second_create(tmp_path, crash_after):
    # 3 chunks × (uploading, uploaded, creating, created, state RUNNING, state SUCCEEDED, collected)
    assert writes_of_a_whole_run(tmp_path) == 21
    run = Run(FakeBatchApi())
    crashing = CrashingLedger(tmp_path, crash_after + 3)
    plan(tmp_path, crashing)
    with pytest.raises(Crash):
        run.until_done(crashing)
    resumed = Ledger(tmp_path)  # a new process: a fresh ledger object and poll schedule
    plan(tmp_path, resumed, done=frozenset(rid for rid, _ in run.target.accepted))
    run.until_done(resumed)
    assert sorted(Counter(run.fake.creates).values()) == [1, 1, 1]
    assert set(run.fake.creates) == {chunk.display_name for chunk in resumed.read().chunks.values()}
    assert sorted({rid for rid, _ in run.target.accepted}) == IDS
    assert all(chunk.phase is Phase.COLLECTED for chunk in resumed.read().chunks.values())
