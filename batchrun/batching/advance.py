"""One pass over every chunk of the ledger: submit, poll, collect, return to pending.

In:  the run's keys (`BatchKeys`, or one `BatchApi`), the `Ledger`, a clock, a `ResultTarget` (the wiring: whether a request wants an
     image, and where each collected reply goes) and a `PollSchedule` kept between passes.
Out: an `AdvanceReport`: what was submitted, adopted, polled, collected and returned to pending, the
     problems met, and whether batches are still running (the caller exits, or waits for
     `next_poll_at` and calls again).

Invariants: every phase change is in the ledger before the next step (`creating` before the create
call); a chunk caught between `creating` and `created` is reconciled by display name before anything
else, so no display name is ever created twice; a failed exchange is retried in a later pass, never
in this one; a STOP outcome (auth, quota, billing) or `NoBatchRoute` ends the pass by raising; a
results file is collected whole before `collected` is recorded (a crash mid-collection collects it
again: the target must take a reply it already has). A chunk not yet sent goes to the usable key
holding the fewest requests (batching/keys.py); every later call for it uses that key. A key that fails
authentication while another can send is dropped: a chunk it was submitting goes to another key (its
file uploaded again with that key), and its batches at the server are returned to pending, their
requests counted in `lost_to_keys` (a batch that had run may then be billed twice).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..records import Outcome, ProviderReply
from ..running.clock import Clock
from .batches import BatchState, create_batch, get_batch, parse_state
from .chunks import read_ids
from .collect import CollectSummary, ResultsCollector
from .exchange import BatchApi, BatchApiError
from .files import UPLOAD_CHUNK_BYTES, download_lines, upload_file
from .keys import BatchKey, BatchKeys, as_keys, fails_auth
from .ledger import ChunkState, Ledger, Phase
from .reconcile import reconcile

_STOPS = (Outcome.STOP_AUTH, Outcome.STOP_QUOTA, Outcome.STOP_BILLING)  # no later pass would pass


class ResultTarget(Protocol):
    """Where collected replies go: the wiring writes them through the sink."""

    def wants_image(self, request_id: str) -> bool: ...

    def accept(self, request_id: str, reply: ProviderReply) -> None:
        """Take one reply; once this returns, a kill of the process must not lose it (`collected` is
        recorded after the last reply of a results file is accepted)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PollBackoff:
    """Seconds between polls of one batch: `first_s`, times `factor` after each poll, at most `max_s`."""

    first_s: float = 10.0
    factor: float = 2.0
    max_s: float = 300.0

    def after(self, interval: float | None) -> float:
        return self.first_s if interval is None else min(self.max_s, interval * self.factor)


class PollSchedule:
    """When each running batch is next polled; a batch it has not seen is due at once."""

    def __init__(self, backoff: PollBackoff = PollBackoff()) -> None:
        self.backoff = backoff
        self._next: dict[str, tuple[float, float]] = {}  # chunk_id -> (due at, last interval)

    def due(self, chunk_id: str, now: float) -> bool:
        entry = self._next.get(chunk_id)
        return entry is None or now >= entry[0]

    def polled(self, chunk_id: str, now: float) -> None:
        interval = self.backoff.after(self._next[chunk_id][1] if chunk_id in self._next else None)
        self._next[chunk_id] = (now + interval, interval)

    def started(self, chunk_id: str, now: float) -> None:
        """A batch just created: first polled `first_s` from now."""
        self._next[chunk_id] = (now + self.backoff.first_s, self.backoff.first_s)

    def next_poll_at(self, chunk_ids: list[str]) -> float | None:
        times = [self._next[cid][0] for cid in chunk_ids if cid in self._next]
        return min(times) if times else None


@dataclass(frozen=True, slots=True)
class Problem:
    """A chunk's exchange that failed this pass; the next pass tries again."""

    chunk_id: str
    what: str
    error_kind: str | None
    message: str


@dataclass(slots=True)
class AdvanceReport:
    """What one pass did."""

    submitted: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    duplicates: dict[str, list[str]] = field(default_factory=dict)  # chunk_id -> extra batches (not ours to adopt)
    polled: list[str] = field(default_factory=list)
    collected: dict[str, CollectSummary] = field(default_factory=dict)
    returned: dict[str, str] = field(default_factory=dict)  # chunk_id -> reason
    problems: list[Problem] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)  # after the pass
    lost_to_keys: dict[str, int] = field(default_factory=dict)  # key variable -> requests of its batches returned
    next_poll_at: float | None = None  # the earliest poll due; None: call again when convenient

    @property
    def still_running(self) -> bool:
        """Whether another pass has work: a batch at the server, or a step that failed this pass."""
        return bool(self.unfinished)


@dataclass(frozen=True, slots=True, kw_only=True)
class AdvanceOptions:
    upload_chunk_bytes: int = UPLOAD_CHUNK_BYTES


async def advance(api: BatchApi | BatchKeys, ledger: Ledger, clock: Clock, target: ResultTarget, *,
                  schedule: PollSchedule | None = None, options: AdvanceOptions = AdvanceOptions()) -> AdvanceReport:
    """One pass: reconcile, submit what is unsubmitted, poll what runs, collect what is done."""
    keys = as_keys(api)
    schedule = schedule or PollSchedule()
    report = AdvanceReport()
    reconciled = await reconcile(keys, ledger.read(), ledger)
    report.adopted.extend(reconciled.adopted)
    report.duplicates.update(reconciled.duplicates)
    view = ledger.read()
    step = _Pass(keys, ledger, clock, target, schedule, options, report, keys.held(view.chunks.values()))
    for chunk in view.in_phase(Phase.PLANNED, Phase.UPLOADING, Phase.UPLOADED):
        await step.guarded(chunk, step.submit)
    for chunk_id in reconciled.recreate:
        await step.guarded(view.chunks[chunk_id], step.submit)
    for chunk in ledger.read().in_phase(Phase.CREATED):
        await step.guarded(chunk, step.follow)
    report.unfinished = unfinished(ledger)
    report.next_poll_at = schedule.next_poll_at(report.unfinished)
    return report


def unfinished(ledger: Ledger) -> list[str]:
    """Chunks neither collected nor returned: running at the server, or a step to try again."""
    return [chunk.chunk_id for chunk in ledger.read().chunks.values()
            if chunk.phase not in (Phase.COLLECTED, Phase.RETURNED)]


class _Pass:
    """The steps of one pass, sharing its arguments and its report."""

    def __init__(self, keys: BatchKeys, ledger: Ledger, clock: Clock, target: ResultTarget,
                 schedule: PollSchedule, options: AdvanceOptions, report: AdvanceReport,
                 held: dict[BatchKey, int]) -> None:
        self.keys, self.ledger, self.clock, self.target = keys, ledger, clock, target
        self.schedule, self.options, self.report = schedule, options, report
        self.folder = ledger.path.parent
        self.held = held  # requests each key holds, for dealing the chunks not yet sent

    async def guarded(self, chunk: ChunkState, step: Callable[[ChunkState], Awaitable[None]]) -> None:
        """Run one step; a failed exchange becomes a Problem, unless it must stop the run."""
        try:
            await step(chunk)
        except BatchApiError as exc:
            if exc.reply.outcome in _STOPS:
                raise
            self.report.problems.append(Problem(chunk.chunk_id, exc.what, exc.reply.error_kind,
                                                exc.reply.error_message or ""))

    async def submit(self, chunk: ChunkState) -> None:
        """Send the chunk with its key; a key that fails authentication is dropped and another takes it."""
        key = self.key_to_send(chunk)
        while True:
            try:
                await self.upload_and_create(chunk, key)
                return
            except BatchApiError as exc:
                if not (fails_auth(exc) and self.keys.drop(key, exc)):
                    raise
            key = self.deal(chunk)

    def key_to_send(self, chunk: ChunkState) -> BatchKey:
        """The chunk's key when it has one still usable; else a key dealt to it (its file uploaded again)."""
        if chunk.phase is not Phase.PLANNED:
            key = self.keys.of(chunk)
            if not key.dropped:
                return key
        return self.deal(chunk)

    def deal(self, chunk: ChunkState) -> BatchKey:
        chunk.phase, chunk.file_name = Phase.PLANNED, None  # a file belongs to its key's project
        return self.keys.deal(self.held, chunk.count)

    async def upload_and_create(self, chunk: ChunkState, key: BatchKey) -> None:
        """Upload the chunk's file (again, if a crash cut the upload short), then create its batch."""
        if chunk.phase in (Phase.PLANNED, Phase.UPLOADING) or chunk.file_name is None:
            self.ledger.uploading(chunk.chunk_id, key.env)
            chunk.key_env = key.env
            name = await upload_file(key.api, self.folder / f"{chunk.chunk_id}.jsonl", chunk.display_name,
                                     chunk_size=self.options.upload_chunk_bytes)
            self.ledger.uploaded(chunk.chunk_id, name)
            chunk.phase, chunk.file_name = Phase.UPLOADED, name
        await self.create(chunk, key)

    async def create(self, chunk: ChunkState, key: BatchKey) -> None:
        """`creating` on disk, then the one create call, then `created`."""
        assert chunk.file_name is not None  # uploaded before: the ledger's order
        self.ledger.creating(chunk.chunk_id)
        batch = await create_batch(key.api, chunk.model, chunk.display_name, chunk.file_name)
        self.ledger.created(chunk.chunk_id, batch.name)
        self.schedule.started(chunk.chunk_id, self.clock.now())
        self.report.submitted.append(chunk.chunk_id)

    async def follow(self, chunk: ChunkState) -> None:
        """Follow a created batch with its key; a key that fails authentication (while another can send)
        is dropped, and its batches' requests go back to pending."""
        key = self.keys.of(chunk)
        try:
            if not key.dropped:
                await self.follow_with(chunk, key)
                return
        except BatchApiError as exc:
            if not (fails_auth(exc) and self.keys.drop(key, exc)):
                raise
        self.return_to_pending(chunk, f"its key, in {key.name}, failed authentication")
        self.report.lost_to_keys[key.name] = self.report.lost_to_keys.get(key.name, 0) + chunk.count

    async def follow_with(self, chunk: ChunkState, key: BatchKey) -> None:
        """Poll a created batch when due; collect it, or return it to pending, once it has ended."""
        state = parse_state(chunk.batch_state)
        if not state.done and self.schedule.due(chunk.chunk_id, self.clock.now()):
            state = await self.poll(chunk, key)
        if state is BatchState.SUCCEEDED:
            await self.collect(chunk, key)
        elif state.lost:
            self.return_to_pending(chunk, f"batch ended {state.value}")

    async def poll(self, chunk: ChunkState, key: BatchKey) -> BatchState:
        assert chunk.batch_name is not None  # created: the ledger's order
        self.report.polled.append(chunk.chunk_id)
        self.schedule.polled(chunk.chunk_id, self.clock.now())
        batch = await get_batch(key.api, chunk.batch_name)
        if batch.raw_state != chunk.batch_state:
            self.ledger.state(chunk.chunk_id, batch.raw_state or batch.state.value, batch.stats, batch.results_file)
            chunk.results_file = batch.results_file
        return batch.state

    async def collect(self, chunk: ChunkState, key: BatchKey) -> None:
        """Stream the results file into the target, then record `collected`."""
        if not chunk.results_file:
            self.return_to_pending(chunk, "batch succeeded without a results file")
            return
        self.report.collected[chunk.chunk_id] = await collect_chunk(key.api, self.ledger, self.target, chunk)

    def return_to_pending(self, chunk: ChunkState, reason: str) -> None:
        self.ledger.returned_to_pending(chunk.chunk_id, reason)
        self.report.returned[chunk.chunk_id] = reason



async def collect_chunk(api: BatchApi, ledger: Ledger, target: ResultTarget, chunk: ChunkState) -> CollectSummary:
    """Stream a chunk's results file into the target, then record `collected`."""
    assert chunk.results_file is not None  # the caller checked
    ids = read_ids(ledger.path.parent / chunk.ids_file)
    collector = ResultsCollector({rid: target.wants_image(rid) for rid in ids})
    async for request_id, reply in collector.replies(download_lines(api, chunk.results_file)):
        target.accept(request_id, reply)
    summary = collector.summary()
    ledger.collected(chunk.chunk_id, summary.lines, len(summary.missing), summary.errors)
    return summary
