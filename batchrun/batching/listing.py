"""The batches of a job as `batchrun status` shows them, read from the ledger alone (no network).

In:  the output folder and the wall clock. Out: one `BatchLine` per chunk of the ledger, in planning
order: its chunk id, batch name, state (the server's, as last polled, else the ledger's phase),
request count, age since creation (since planning, before), time left before the server expires
a batch still unfinished (48 hours after creation, reference §7.2), results collected, and the
variable of the key it was sent with (None: one key, or a ledger of 0.6.0, sent with the first).
Invariant: reads only; a job that never ran at the batch tier has no lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .batches import parse_state
from .ledger import ChunkState, Ledger, Phase

EXPIRY_S = 48 * 3600.0  # a batch pending or running this long after creation ends EXPIRED, without results


@dataclass(frozen=True, slots=True)
class BatchLine:
    chunk: str
    batch: str | None
    state: str
    requests: int
    age_s: float | None
    collected: int | None  # result lines read; None before collection
    expires_in_s: float | None = None  # a batch created and not ended: time left before the server expires it
    key: str | None = None  # the variable of the key it was sent with (never the key)


def batch_lines(out_dir: Path, now: float) -> list[BatchLine]:
    """Each chunk of the job's ledger, as status shows it."""
    return [_line(chunk, now) for chunk in Ledger(out_dir).read().chunks.values()]


def _line(chunk: ChunkState, now: float) -> BatchLine:
    since = chunk.created_at or chunk.planned_at
    return BatchLine(chunk.chunk_id, chunk.batch_name, _state(chunk), chunk.count,
                     None if since is None else max(0.0, now - since),
                     chunk.summary.get("lines") if chunk.phase is Phase.COLLECTED else None,
                     _expires_in(chunk, now), chunk.key_env)


def _expires_in(chunk: ChunkState, now: float) -> float | None:
    if chunk.phase is not Phase.CREATED or chunk.created_at is None or parse_state(chunk.batch_state).done:
        return None
    return max(0.0, chunk.created_at + EXPIRY_S - now)


def _state(chunk: ChunkState) -> str:
    """The ledger's phase where it says more (collected, returned), else the server's state."""
    if chunk.phase in (Phase.COLLECTED, Phase.RETURNED):
        return chunk.phase.value
    if chunk.cancel_reason is not None:
        return "cancelling"  # given up on for the fallback: the next run with a fallback finishes the switch
    if not chunk.batch_state:
        return chunk.phase.value
    return parse_state(chunk.batch_state).value.lower()
