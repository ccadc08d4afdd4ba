"""After a crash between `creating` and `created`: find the batch the create call may have made.

In:  the chunks the ledger shows `creating` but not `created`, the batch names the ledger already
     knows, and the batch listing of each chunk's key (its project's: a batch is listed only there).
Out: for each such chunk, either the batch to adopt (the one listed under its display name and not
     known to the ledger) or the verdict that no such batch exists, so creating it is safe.

Invariant: creation is not idempotent, so a chunk is created again only when the listing holds no
unknown batch under its display name: a crash never pays for the same chunk twice. Batches the ledger
already knows (an earlier batch of the same requests, returned to pending) are never adopted. A chunk
whose key failed authentication (dropped now, or by its listing) cannot be looked up: it is sent again
with another key, and may be billed twice if its first create had gone through.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .batches import BatchInfo, list_batches
from .exchange import BatchApi, BatchApiError
from .keys import BatchKey, BatchKeys, as_keys, fails_auth
from .ledger import ChunkState, Ledger, LedgerView, Phase


@dataclass(slots=True)
class Reconciled:
    """What reconciling decided: batches adopted, chunks safe to create, extra batches seen."""

    adopted: dict[str, BatchInfo] = field(default_factory=dict)  # chunk_id -> its batch
    recreate: list[str] = field(default_factory=list)  # chunk ids with no batch at the server
    duplicates: dict[str, list[str]] = field(default_factory=dict)  # chunk_id -> batch names beyond the first


def match_batches(chunks: Iterable[ChunkState], listing: Iterable[BatchInfo], known: set[str]) -> Reconciled:
    """Decide, for each chunk caught mid-create, whether the listing holds its batch."""
    by_name: dict[str, list[BatchInfo]] = {}
    for batch in listing:
        if batch.display_name and batch.name not in known:
            by_name.setdefault(batch.display_name, []).append(batch)
    result = Reconciled()
    for chunk in chunks:
        found = by_name.get(chunk.display_name, [])
        if not found:
            result.recreate.append(chunk.chunk_id)
            continue
        result.adopted[chunk.chunk_id] = found[0]
        if len(found) > 1:
            result.duplicates[chunk.chunk_id] = [batch.name for batch in found[1:]]
    return result


async def reconcile(api: BatchApi | BatchKeys, view: LedgerView, ledger: Ledger) -> Reconciled:
    """List each key's batches once, record each adopted batch as `created`; the rest may be created again."""
    keys = as_keys(api)
    result = Reconciled()
    for key, caught in _caught_by_key(keys, view).items():
        found = await _reconcile_key(keys, key, caught, view.known_batches)
        for chunk_id, batch in found.adopted.items():
            ledger.created(chunk_id, batch.name)
        result.adopted.update(found.adopted)
        result.recreate.extend(found.recreate)
        result.duplicates.update(found.duplicates)
    return result


def _caught_by_key(keys: BatchKeys, view: LedgerView) -> dict[BatchKey, list[ChunkState]]:
    caught: dict[BatchKey, list[ChunkState]] = {}
    for chunk in view.in_phase(Phase.CREATING):
        caught.setdefault(keys.of(chunk), []).append(chunk)
    return caught


async def _reconcile_key(keys: BatchKeys, key: BatchKey, caught: list[ChunkState], known: set[str]) -> Reconciled:
    """Match one key's caught chunks against its listing; all to create again when the key is dropped."""
    if not key.dropped:
        try:
            return match_batches(caught, [batch async for batch in list_batches(key.api)], known)
        except BatchApiError as exc:
            if not (fails_auth(exc) and keys.drop(key, exc)):
                raise
    return Reconciled(recreate=[chunk.chunk_id for chunk in caught])
