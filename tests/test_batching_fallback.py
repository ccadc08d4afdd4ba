"""The switch to a fallback tier: a batch past its timeout, or unfinished at the deadline, is cancelled
(the ledger line first), waited for a bounded grace, collected as far as it got, and what it lacks is
handed back for a synchronous send; a crash after the cancel line is finished by the next run. Against
the scripted fake of the batch API (tests/batch_fake.py) on a fake clock."""

from __future__ import annotations

import json
import time

import anyio
import pytest
from batch_fake import BASE, FakeBatchApi, answer_each
from test_batching_run import record, target_of

from batchrun.batching.exchange import BatchApi
from batchrun.batching.fallback import CANCEL_REASON, UNSUBMITTED_REASON, FallbackPolicy
from batchrun.batching.ledger import Ledger, Phase
from batchrun.batching.run import BatchRunSettings, run_batches
from batchrun.providers.gemini import GeminiProvider
from batchrun.running.clock import FakeClock

HOUR = 3600.0
STUCK = ["BATCH_STATE_PENDING"]  # the fake keeps the last state: never leaves PENDING


class Runs:
    """`batchrun run --tier batch` again and again over one fake server, one folder and one fake clock."""

    def __init__(self, tmp_path, fake: FakeBatchApi) -> None:
        self.fake, self.out, self.clock = fake, tmp_path / "out", FakeClock()
        self.encode = GeminiProvider(BASE, None, spec_dir=tmp_path).encode_body
        self.written: set[str] = set()

    def run(self, records, *, fallback: FallbackPolicy | None = None, later_s: float = 0.0, wait: bool = False,
            deadline_s: float | None = None):
        """One run `later_s` seconds (of wall time) after the batches' creation; (outcome, rows written)."""
        target, writer, _, _ = target_of(*[r for r in records if r.request_id not in self.written])
        settings = BatchRunSettings(job_name="job", fallback=fallback, wait=wait, deadline_s=deadline_s)

        async def go():
            async with self.fake.client() as client, self.clock.autojump():
                return await run_batches(BatchApi(client, BASE, None), self.out, target, self.encode,
                                         target.account, self.clock, settings, wall=lambda: time.time() + later_s)

        outcome = anyio.run(go)
        self.written |= target.written
        return outcome, writer

    def ledger_events(self) -> list[str]:
        lines = (self.out / "batches" / "ledger.jsonl").read_text().splitlines()
        return [json.loads(line)["event"] for line in lines]

    def calls(self) -> list[str]:
        """The fake's routes, in order: `cancel`, `get`, `create`..."""
        return [self.fake._route(request)[0] for request in self.fake.requests]


RECORDS = [record(1), record(2)]


def test_a_batch_past_the_timeout_is_cancelled_first_in_the_ledger_and_its_requests_handed_to_the_fallback(tmp_path):
    runs = Runs(tmp_path, FakeBatchApi(states=list(STUCK)))
    first, _ = runs.run(RECORDS)
    runs.fake.requests.clear()

    outcome, writer = runs.run(RECORDS, fallback=FallbackPolicy(timeout_s=HOUR), later_s=2 * HOUR)

    assert outcome.switched.send == ["r1", "r2"] and outcome.switched.cancelled == first.planned
    assert (outcome.switched.sent_again, outcome.switched.twice_usd) == (2, 2.0)  # $1 worst case each
    assert not outcome.still_running and not writer.rows
    assert runs.calls() == ["cancel", "get"]  # cancelled, then seen CANCELLED at once
    assert runs.ledger_events()[-3:] == ["cancel_requested", "state", "returned_to_pending"]
    (chunk,) = Ledger(runs.out).read().chunks.values()
    assert (chunk.phase, chunk.reason, chunk.cancel_reason) == (Phase.RETURNED, CANCEL_REASON, CANCEL_REASON)
    assert len(runs.fake.creates) == 1


def test_a_batch_younger_than_the_timeout_keeps_running(tmp_path):
    runs = Runs(tmp_path, FakeBatchApi(states=list(STUCK)))
    runs.run(RECORDS)

    outcome, _ = runs.run(RECORDS, fallback=FallbackPolicy(timeout_s=HOUR), later_s=HOUR - 60)

    assert outcome.still_running and not outcome.switched.send
    assert "cancel" not in runs.calls()


def test_a_batch_that_ended_before_the_cancel_landed_is_collected_and_only_what_it_lacks_goes_to_the_fallback(tmp_path):
    fake = FakeBatchApi(states=["BATCH_STATE_PENDING", "BATCH_STATE_SUCCEEDED"], cancel_too_late=True,
                        results=lambda lines: answer_each(lines)[:1])  # partial results: r1 only
    runs = Runs(tmp_path, fake)
    runs.run(RECORDS)

    outcome, writer = runs.run(RECORDS, fallback=FallbackPolicy(timeout_s=HOUR), later_s=2 * HOUR)

    assert [(row.row_id, row.service_tier) for row in writer.rows] == [("r1", "batch")]
    assert outcome.switched.send == ["r2"] and outcome.switched.sent_again == 1
    assert runs.ledger_events()[-4:] == ["cancel_requested", "state", "collected", "returned_to_pending"]


def test_the_wait_after_a_cancel_is_bounded_by_the_grace_on_the_run_s_clock(tmp_path):
    fake = FakeBatchApi(states=["BATCH_STATE_RUNNING"], cancel_too_late=True)  # the cancel never takes
    runs = Runs(tmp_path, fake)
    runs.run(RECORDS)
    fake.requests.clear()
    start = runs.clock.now()

    outcome, _ = runs.run(RECORDS, fallback=FallbackPolicy(timeout_s=HOUR, grace_s=60, poll_s=2), later_s=2 * HOUR)

    assert runs.calls() == ["cancel"] + ["get"] * 31  # at 0, 2, ..., 60 s
    assert runs.clock.now() - start == 60
    assert outcome.switched.send == ["r1", "r2"]  # returned: the ledger keeps its batch name, never adopted again
    assert Ledger(runs.out).read().known_batches == {"batches/b1"}


def test_at_the_deadline_a_waiting_run_switches_every_unfinished_batch(tmp_path):
    runs = Runs(tmp_path, FakeBatchApi(states=list(STUCK)))

    outcome, _ = runs.run(RECORDS, fallback=FallbackPolicy(), wait=True, deadline_s=600)

    assert outcome.switched.send == ["r1", "r2"] and len(outcome.switched.cancelled) == 1
    assert not outcome.still_running
    assert runs.clock.now() == 600  # the deadline, then the cancel seen at once


def test_a_fallback_that_does_not_switch_at_the_deadline_leaves_the_batches_running(tmp_path):
    runs = Runs(tmp_path, FakeBatchApi(states=list(STUCK)))

    outcome, _ = runs.run(RECORDS, fallback=FallbackPolicy(at_deadline=False), wait=True, deadline_s=600)

    assert outcome.still_running and not outcome.switched.send
    assert "cancel" not in runs.calls()


def test_a_chunk_not_submitted_by_the_deadline_is_returned_without_a_cancel(tmp_path):
    runs = Runs(tmp_path, FakeBatchApi(faults={"upload_start": [503] * 1000}))

    outcome, _ = runs.run(RECORDS, fallback=FallbackPolicy(), wait=True, deadline_s=600)

    assert outcome.switched.send == ["r1", "r2"] and outcome.switched.sent_again == 0
    assert "cancel" not in runs.calls() and not runs.fake.creates
    (chunk,) = Ledger(runs.out).read().chunks.values()
    assert (chunk.phase, chunk.reason) == (Phase.RETURNED, UNSUBMITTED_REASON)


@pytest.mark.parametrize("seen_cancelled", [False, True], ids=["crash before the cancel call", "crash after a poll"])
def test_a_crash_after_the_cancel_line_is_finished_by_the_next_run_never_creating_or_cancelling_twice(
        tmp_path, seen_cancelled):
    runs = Runs(tmp_path, FakeBatchApi(states=list(STUCK)))
    first, _ = runs.run(RECORDS)
    (chunk_id,) = first.planned
    ledger = Ledger(runs.out)
    ledger.cancel_requested(chunk_id, CANCEL_REASON)  # the crash: the line is on disk, what follows is not
    if seen_cancelled:
        runs.fake.batches["batches/b1"].states = ["BATCH_STATE_CANCELLED"]
        ledger.state(chunk_id, "BATCH_STATE_CANCELLED", {}, None)
    runs.fake.requests.clear()

    outcome, _ = runs.run(RECORDS, fallback=FallbackPolicy(timeout_s=HOUR))  # the batch is young: no timeout

    assert outcome.switched.send == ["r1", "r2"] and not outcome.still_running
    assert runs.calls() == ([] if seen_cancelled else ["cancel", "get"])
    assert runs.ledger_events().count("cancel_requested") == 1
    assert len(runs.fake.creates) == 1


def test_batches_in_flight_with_nothing_pending_are_still_collected_their_replies_skipped(tmp_path):
    runs = Runs(tmp_path, FakeBatchApi(states=["BATCH_STATE_SUCCEEDED"]))
    first, _ = runs.run(RECORDS)  # created; every row then finished by a synchronous run
    runs.written |= {"r1", "r2"}

    outcome, writer = runs.run(RECORDS)

    assert list(outcome.report.collected) == first.planned and not outcome.still_running
    assert not writer.rows
    (chunk,) = Ledger(runs.out).read().chunks.values()
    assert chunk.phase is Phase.COLLECTED


def test_a_cancelled_batch_that_never_ends_with_nothing_left_to_send_ends_returned_not_switched_each_pass(tmp_path):
    fake = FakeBatchApi(states=["BATCH_STATE_RUNNING"], cancel_too_late=True)  # the cancel never takes
    runs = Runs(tmp_path, fake)
    runs.run(RECORDS)
    runs.written |= {"r1", "r2"}  # finalised by another run meanwhile: nothing left to send
    policy = FallbackPolicy(timeout_s=HOUR, grace_s=4, poll_s=2)

    outcome, _ = runs.run(RECORDS, fallback=policy, later_s=2 * HOUR)
    assert outcome.switched.send == [] and not outcome.still_running
    (chunk,) = Ledger(runs.out).read().chunks.values()
    assert chunk.phase is Phase.RETURNED
    fake.requests.clear()
    again, _ = runs.run(RECORDS, fallback=policy, later_s=3 * HOUR)
    assert runs.calls() == [] and again.switched.cancelled == []
