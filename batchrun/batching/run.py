"""A batch run (`batchrun run --tier batch`): pending requests packed into chunks, advanced, written.

In:  the pending RequestRecords of a run (rows without a final result, each with the rows that share
     its request), the output folder's sink, the run's keys (`BatchKeys`, or one `BatchApi`), the clock, the spending account at the
     batch price, and how long the run may wait.
Out: a `BatchOutcome`: the last pass's report, the requests left out for the budget, whether
     batches are still running at the server (the CLI exits 13 then), and, with a fallback, the
     requests of batches given up on (batching/fallback.py) for the wiring to send synchronously.

Invariants: a request already in a chunk the ledger shows in flight is never chunked again; each new
chunk's worst case is reserved in the account before it is `planned` (a chunk that does not fit is
not planned, and its requests stay pending); every reply is written by `SinkTarget` as a synchronous
run writes it (the same `Finished` and result rows, shares fanned out, images saved), at the batch
price, and a request that already has a final row is never written again (a crash mid-collection
delivers a results file a second time).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..outcomes import Status
from ..output.progress import Progress
from ..records import Outcome, ProviderReply, RequestRecord
from ..running.account import SpendingAccount
from ..running.clock import Clock
from ..running.saving import Finished, ResultWriter, save_finished
from ..tiers import Tier
from .advance import AdvanceOptions, AdvanceReport, PollBackoff, PollSchedule, Problem, advance, unfinished
from .chunks import BATCHES_DIR, Chunk, ChunkLimits, Encode, read_ids, write_chunks
from .exchange import BatchApi, BatchApiError
from .fallback import FallbackPolicy, SwitchReport, next_timeout_in, switch, switch_due
from .files import UPLOAD_CHUNK_BYTES
from .keys import BatchKeys
from .ledger import Ledger

log = logging.getLogger(__name__)


class FlushingWriter(ResultWriter, Protocol):
    """The sink as the target needs it: rows and images written, and rows handed to the OS on `flush`."""

    def flush(self) -> None: ...


class SinkTarget:
    """A `ResultTarget` writing each collected reply through the sink, as a synchronous run would."""

    def __init__(self, sink: FlushingWriter, records: dict[str, RequestRecord], account: SpendingAccount,
                 progress: Progress, *, now: Callable[[], float] = time.time) -> None:
        self.sink, self.records, self.account, self.progress = sink, records, account, progress
        self._now = now
        self.written: set[str] = set()
        self.skipped = 0  # replies of requests that already had a final row

    def wants_image(self, request_id: str) -> bool:
        record = self.records.get(request_id)
        return record is not None and record.wants_image

    def accept(self, request_id: str, reply: ProviderReply) -> None:
        """Write the reply's rows, unless its request has a final row already, and hand them to the OS:
        a kill after this keeps them (the ledger records `collected` after the last one)."""
        record = self.records.get(request_id)
        if record is None or request_id in self.written:
            self.skipped += 1
            return
        self.write(record, reply)
        self.sink.flush()

    def unanswered(self, request_ids: Iterable[str]) -> list[str]:
        """The ids, of requests pending in this run, not written yet."""
        return [rid for rid in request_ids if rid in self.records and rid not in self.written]

    def worst_case_usd(self, request_ids: Iterable[str]) -> float:
        """The most these requests can cost together at the account's price (unknown prices count as 0)."""
        return sum(self.account.worst_case(self.records[rid]) or 0.0 for rid in request_ids if rid in self.records)

    def write(self, record: RequestRecord, reply: ProviderReply) -> None:
        reply.service_tier = reply.service_tier or Tier.BATCH.value
        cost = self.account.cost(record, reply.usage, Tier.BATCH.value)
        now = self._now()
        done = Finished(record, reply, Status.of(reply.outcome), 1, now, now, cost)
        save_finished(self.sink, done)
        self.written.add(record.request_id)
        self.progress.spend_usd += cost or 0.0
        for _ in range(done.rows):
            self.progress.count(done.status)


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchRunSettings:
    job_name: str
    wait: bool = False  # pass after pass until nothing runs, or the deadline
    deadline_s: float | None = None  # from the start, on the run's clock
    limits: ChunkLimits = ChunkLimits()
    poll: PollBackoff = PollBackoff()
    fallback: FallbackPolicy | None = None  # switch batches given up on to a synchronous tier
    upload_chunk_bytes: int = UPLOAD_CHUNK_BYTES  # the resumable upload's piece size


@dataclass(slots=True)
class BatchOutcome:
    """How a batch run ended."""

    report: AdvanceReport
    passes: int = 0
    planned: list[str] = field(default_factory=list)
    over_budget: int = 0  # requests of chunks the budget could not hold: still pending
    in_flight_before: int = 0  # requests in chunks earlier runs submitted
    switched: SwitchReport = field(default_factory=SwitchReport)  # what the fallback takes over

    @property
    def still_running(self) -> bool:
        return self.report.still_running


def plan_chunks(records: Iterable[RequestRecord], encode: Encode, ledger: Ledger, account: SpendingAccount,
                target: SinkTarget, settings: BatchRunSettings) -> tuple[list[str], int]:
    """Write chunks of the records and plan each whose worst case the budget holds; (planned, left out)."""
    records = list(records)
    by_id = {record.request_id: record for record in records}
    plan = write_chunks(records, encode, ledger.path.parent.parent, settings.job_name, settings.limits)
    for request_id, message in plan.unreadable:
        target.write(by_id[request_id], ProviderReply(Outcome.INVALID, error_kind="input_changed",
                                                     error_message=message))
    planned: list[str] = []
    left_out = 0
    for chunk in plan.chunks:
        if account.reserve(chunk_worst_case(chunk, by_id, account)):
            ledger.planned(chunk)
            planned.append(chunk.chunk_id)
        else:
            left_out += chunk.count
            _remove_chunk_files(chunk)
    return planned, left_out


def chunk_worst_case(chunk: Chunk, records: dict[str, RequestRecord], account: SpendingAccount) -> float:
    """The most a chunk's requests can cost together (unknown prices count as 0)."""
    return sum(account.worst_case(records[rid]) or 0.0 for rid in read_ids(chunk.ids_path))


def _remove_chunk_files(chunk: Chunk) -> None:
    for path in (chunk.jsonl_path, chunk.ids_path):
        path.unlink(missing_ok=True)


def reserve_in_flight(ids: set[str], records: dict[str, RequestRecord], account: SpendingAccount) -> None:
    """Hold the worst case of requests submitted by earlier runs: they may still be billed."""
    account.reserve(sum(account.worst_case(records[rid]) or 0.0 for rid in ids if rid in records))


async def run_batches(api: BatchApi | BatchKeys, out_dir: Path, target: SinkTarget, encode: Encode, account: SpendingAccount,
                      clock: Clock, settings: BatchRunSettings, *,
                      wall: Callable[[], float] = time.time) -> BatchOutcome:
    """Plan what is pending (`target.records`) and not in flight, then advance once (or until done, with `wait`);
    with a fallback, batches past the timeout or the deadline are switched (`outcome.switched`)."""
    ledger = Ledger(out_dir)
    started = clock.now()
    in_flight = ledger.read().in_flight_ids(Path(out_dir) / BATCHES_DIR)
    reserve_in_flight(in_flight, target.records, account)
    fresh = [record for rid, record in target.records.items() if rid not in in_flight]
    planned, left_out = plan_chunks(fresh, encode, ledger, account, target, settings)
    if planned:
        log.info("planned %d batch chunks (%d requests)", len(planned), len(fresh) - left_out)
    schedule = PollSchedule(settings.poll)
    outcome = BatchOutcome(AdvanceReport(), planned=planned, over_budget=left_out, in_flight_before=len(in_flight))
    while True:
        await _switch(api, ledger, clock, target, settings, outcome, wall(), deadline=False)
        outcome.report = await _one_pass(api, ledger, clock, target, schedule,
                                         AdvanceOptions(upload_chunk_bytes=settings.upload_chunk_bytes))
        outcome.passes += 1
        _log_pass(outcome.report)
        if not (settings.wait and outcome.report.still_running):
            return outcome
        wake = _next_wake(outcome.report, clock.now(), ledger, settings.fallback, wall())
        if settings.deadline_s is not None and wake - started > settings.deadline_s:
            return await _at_deadline(api, ledger, clock, target, settings, outcome, started, wall)
        await clock.sleep(max(0.0, wake - clock.now()))


async def _at_deadline(api: BatchApi | BatchKeys, ledger: Ledger, clock: Clock, target: SinkTarget, settings: BatchRunSettings,
                       outcome: BatchOutcome, started: float, wall: Callable[[], float]) -> BatchOutcome:
    """Without a fallback, stop waiting; with one, wait out the deadline and switch what is unfinished."""
    if settings.fallback is None or not settings.fallback.at_deadline or settings.deadline_s is None:
        return outcome
    await clock.sleep(max(0.0, started + settings.deadline_s - clock.now()))
    await _switch(api, ledger, clock, target, settings, outcome, wall(), deadline=True)
    outcome.report.unfinished = unfinished(ledger)
    outcome.report.next_poll_at = None
    return outcome


async def _switch(api: BatchApi | BatchKeys, ledger: Ledger, clock: Clock, target: SinkTarget, settings: BatchRunSettings,
                  outcome: BatchOutcome, wall_now: float, *, deadline: bool) -> None:
    """Switch the chunks due (timed out, mid-switch, or every one at the deadline) to the fallback."""
    if settings.fallback is None:
        return
    due = switch_due(ledger.read(), settings.fallback, wall_now, deadline=deadline)
    if not due:
        return
    report = outcome.switched
    before = len(report.send)
    await switch(api, ledger, clock, target, due, settings.fallback, report)
    why = "the run's deadline came" if deadline else "past the batch timeout"
    log.warning("%s: %d batch chunks given up on (%s); %d requests without a result go to the fallback tier",
                why, len(due), ", ".join(chunk.chunk_id for chunk in due), len(report.send) - before)
    for chunk_id, what in report.problems:
        log.warning("batch chunk %s: the switch to the fallback failed (%s); the next pass tries again", chunk_id, what)
    report.problems.clear()


async def _one_pass(api: BatchApi | BatchKeys, ledger: Ledger, clock: Clock, target: SinkTarget,
                    schedule: PollSchedule, options: AdvanceOptions) -> AdvanceReport:
    """One `advance`; a failure worth retrying outside a chunk's step (the listing that reconciles a
    crash) ends the pass with every chunk still unfinished, to be tried again."""
    try:
        return await advance(api, ledger, clock, target, schedule=schedule, options=options)
    except BatchApiError as exc:
        if exc.reply.outcome is not Outcome.RETRY:
            raise
        report = AdvanceReport(unfinished=unfinished(ledger))
        report.problems.append(Problem("", exc.what, exc.reply.error_kind, exc.reply.error_message or ""))
        return report


def _next_wake(report: AdvanceReport, now: float, ledger: Ledger, fallback: FallbackPolicy | None,
               wall_now: float) -> float:
    """When the next pass is worth making: the earliest poll or batch timeout due, else (a step to retry)
    10 s from now."""
    wake = report.next_poll_at if report.next_poll_at is not None else now + 10.0
    timeout_in = None if fallback is None else next_timeout_in(ledger.read(), fallback, wall_now)
    return wake if timeout_in is None else min(wake, now + timeout_in)


def _log_pass(report: AdvanceReport) -> None:
    for chunk_id in report.submitted:
        log.info("batch chunk %s submitted", chunk_id)
    for chunk_id, summary in report.collected.items():
        log.info("batch chunk %s collected: %d replies, %d missing (sent again), %d unreadable or unknown lines",
                 chunk_id, summary.replies, len(summary.missing), summary.errors)
    for chunk_id, reason in report.returned.items():
        log.warning("batch chunk %s returned to pending: %s", chunk_id, reason)
    for env, requests in report.lost_to_keys.items():
        log.warning("%d requests of batches sent with the key in %s are pending again (the key failed "
                    "authentication, so those batches can no longer be polled or collected): the next run sends "
                    "them with another key, and any a batch had already answered may be billed twice",
                    requests, env)
    for problem in report.problems:
        where = f"batch chunk {problem.chunk_id}" if problem.chunk_id else "batch API"
        log.warning("%s: %s failed (%s): %s; the next pass tries again", where, problem.what, problem.error_kind,
                    problem.message)
    for chunk_id, names in report.duplicates.items():
        log.warning("batch chunk %s: the server lists more batches under its name (%s); they are not collected",
                    chunk_id, ", ".join(names))
