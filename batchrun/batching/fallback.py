"""The switch to a fallback tier: batches given up on are cancelled, collected as far as they got, returned.

In:  the ledger, a `FallbackPolicy` (the batch timeout, the grace after a cancel), the wall time (a
     batch's age counts from its `created` line), whether the run's deadline has come, the run's keys, the
     run's clock and a `FallbackTarget` (a `ResultTarget` that also says which requests still lack a
     final row, and their worst case at the batch price).
Out: a `SwitchReport`: the request ids to send synchronously at the fallback tier, the chunks cancelled,
     and how many of their requests had no result yet (each may be billed at the batch price too).

Invariants: `cancel_requested` is in the ledger before the cancel call, and a chunk that carries it
(a crash after the line) is switched by the next pass that has a fallback; the cancel is sent only to
a batch not seen ended; the batch is then polled on the run's clock for at most `grace_s` until it
ends; a results file it ended with is collected first (partial results count, a request the target
already has is skipped); only requests still without a final row are returned to pending and sent
again. A chunk whose batch did not end within the grace is returned too: the ledger keeps its batch
name, so it is never adopted again. A failed exchange leaves the chunk for the next pass. Every call
for a chunk uses the key it was uploaded with; a chunk whose key was dropped is returned without a
cancel (none could be made), each of its requests without a result counted as possibly billed twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from ..records import Outcome
from ..running.clock import Clock
from .advance import ResultTarget, collect_chunk
from .batches import BatchState, cancel_batch, get_batch, parse_state
from .chunks import read_ids
from .exchange import BatchApi, BatchApiError
from .keys import BatchKeys, as_keys
from .ledger import ChunkState, Ledger, LedgerView, Phase

CANCEL_REASON = "cancelled for the fallback"
UNSUBMITTED_REASON = "not submitted by the deadline; sent at the fallback tier"
_STOPS = (Outcome.STOP_AUTH, Outcome.STOP_QUOTA, Outcome.STOP_BILLING)
_NOT_SUBMITTED = (Phase.PLANNED, Phase.UPLOADING, Phase.UPLOADED)


class FallbackTarget(ResultTarget, Protocol):
    """Where collected replies go, and which requests of a chunk still want an answer."""

    def unanswered(self, request_ids: Iterable[str]) -> list[str]: ...

    def worst_case_usd(self, request_ids: Iterable[str]) -> float: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class FallbackPolicy:
    """When a batch run gives up on its batches, and how long it waits for a cancelled one to end."""

    timeout_s: float | None = None  # a batch older than this is switched; None: only at the deadline
    at_deadline: bool = True  # switch what is unfinished at the run's deadline (--until)
    grace_s: float = 60.0  # after the cancel, on the run's clock
    poll_s: float = 2.0  # between polls during the grace


@dataclass(slots=True)
class SwitchReport:
    """What the switches of a run did."""

    send: list[str] = field(default_factory=list)  # request ids for the fallback tier
    cancelled: list[str] = field(default_factory=list)  # chunk ids
    unsubmitted: list[str] = field(default_factory=list)  # chunk ids returned before any batch existed
    sent_again: int = 0  # requests of cancelled batches without a result: may be billed twice
    twice_usd: float = 0.0  # their worst case at the batch price
    problems: list[tuple[str, str]] = field(default_factory=list)  # (chunk_id, what failed)


def switch_due(view: LedgerView, policy: FallbackPolicy, wall_now: float, *, deadline: bool) -> list[ChunkState]:
    """The chunks to switch now: every one the run can at its deadline, else those timed out or mid-switch."""
    if deadline:
        return view.in_phase(Phase.CREATED, *_NOT_SUBMITTED)
    return [chunk for chunk in view.in_phase(Phase.CREATED)
            if chunk.cancel_reason is not None or _age_left(chunk, policy, wall_now) == 0.0]


def next_timeout_in(view: LedgerView, policy: FallbackPolicy, wall_now: float) -> float | None:
    """Seconds until the next running batch passes the timeout; None when none will."""
    left = [_age_left(chunk, policy, wall_now) for chunk in view.in_phase(Phase.CREATED)]
    times = [seconds for seconds in left if seconds is not None]
    return min(times) if times else None


def _age_left(chunk: ChunkState, policy: FallbackPolicy, wall_now: float) -> float | None:
    if policy.timeout_s is None or chunk.created_at is None:
        return None
    return max(0.0, chunk.created_at + policy.timeout_s - wall_now)


async def switch(api: BatchApi | BatchKeys, ledger: Ledger, clock: Clock, target: FallbackTarget, chunks: list[ChunkState],
                 policy: FallbackPolicy, report: SwitchReport) -> None:
    """Switch each chunk to the fallback, with its key; a failed exchange leaves it for the next pass."""
    keys = as_keys(api)
    for chunk in chunks:
        try:
            key = keys.of(chunk)
            await _switch_one(None if key.dropped else key.api, ledger, clock, target, chunk, policy, report)
        except BatchApiError as exc:
            if exc.reply.outcome in _STOPS:
                raise
            report.problems.append((chunk.chunk_id, f"{exc.what}: {exc.reply.error_message or exc.reply.error_kind}"))


async def _switch_one(api: BatchApi | None, ledger: Ledger, clock: Clock, target: FallbackTarget, chunk: ChunkState,
                      policy: FallbackPolicy, report: SwitchReport) -> None:
    ids = read_ids(ledger.path.parent / chunk.ids_file)
    if chunk.phase in _NOT_SUBMITTED:
        left = target.unanswered(ids)
        ledger.returned_to_pending(chunk.chunk_id, UNSUBMITTED_REASON)
        report.unsubmitted.append(chunk.chunk_id)
        report.send.extend(left)
        return
    if api is not None:  # None: its key was dropped, nothing can be asked of its batch
        await _cancel_and_wait(api, ledger, clock, chunk, policy)
        if chunk.results_file:
            await collect_chunk(api, ledger, target, chunk)
    left = target.unanswered(ids)
    if left or ledger.read().chunks[chunk.chunk_id].phase is not Phase.COLLECTED:
        ledger.returned_to_pending(chunk.chunk_id, CANCEL_REASON)  # ended for this run, collected or not
    report.cancelled.append(chunk.chunk_id)
    report.send.extend(left)
    report.sent_again += len(left)
    report.twice_usd += target.worst_case_usd(left)


async def _cancel_and_wait(api: BatchApi, ledger: Ledger, clock: Clock, chunk: ChunkState,
                           policy: FallbackPolicy) -> None:
    """The cancel line, the cancel (unless the batch was seen ended), then polls until it ends or the grace."""
    assert chunk.batch_name is not None  # created: the ledger's order
    if chunk.cancel_reason is None:
        ledger.cancel_requested(chunk.chunk_id, CANCEL_REASON)
        chunk.cancel_reason = CANCEL_REASON
    if parse_state(chunk.batch_state).done:
        return
    try:
        await cancel_batch(api, chunk.batch_name)
    except BatchApiError as exc:  # ended meanwhile (refused), or not reached: the polls tell
        if exc.reply.outcome in _STOPS:
            raise
    await _poll_until_ended(api, ledger, clock, chunk, clock.now() + policy.grace_s, policy.poll_s)


async def _poll_until_ended(api: BatchApi, ledger: Ledger, clock: Clock, chunk: ChunkState, ends_at: float,
                            poll_s: float) -> BatchState:
    assert chunk.batch_name is not None
    while True:
        batch = await get_batch(api, chunk.batch_name)
        if batch.raw_state != chunk.batch_state:
            ledger.state(chunk.chunk_id, batch.raw_state or batch.state.value, batch.stats, batch.results_file)
            chunk.batch_state, chunk.results_file = batch.raw_state, batch.results_file
        if batch.state.done or clock.now() >= ends_at:
            return batch.state
        await clock.sleep(min(poll_s, ends_at - clock.now()))
