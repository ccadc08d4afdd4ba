"""Which worker holds which pending requests: dealing bounded shards as workers need them, taking back a lost worker's.

Input: the records to send (an iterator, read a shard at a time), the shard size, and what happens to
each worker (a request sent, a request finished, the end of its run, its loss). Output: the next shard
for a worker (a lost worker's orphans first, then records not yet dealt), whether a worker needs one,
and the requests in flight. Invariants: a record is held by one worker at a time; a finished record is
held by none; a lost worker's records (in flight or queued) become orphans, dealt again before any
record not yet dealt; a record a worker gave up on because the run stopped is held by none and stays
pending for the next run; once stopped, the book deals nothing more.
Pure: no Ray, no I/O.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from batchrun.records import RequestRecord

SHARD_PER_SLOT = 4  # a shard holds this many requests per slot of a worker's share of the concurrency
MIN_SHARD = 64  # and never fewer: a refill per few requests would cost more than it balances


def shard_size(concurrency: int, workers: int) -> int:
    """Requests in a shard: a few rounds of a worker's share of the concurrency, at least `MIN_SHARD`."""
    share = -(-concurrency // max(1, workers))
    return max(SHARD_PER_SLOT * share, MIN_SHARD)


class ShardBook:
    """The records each worker holds, and those not yet dealt; see the module docstring."""

    def __init__(self, records: Iterable[RequestRecord] = (), size: int = MIN_SHARD, taken: int = 0) -> None:
        self.size = size
        self.taken = taken  # records a worker's pool takes off its queue before they are sent (its concurrency)
        self._undealt = iter(records)
        self._exhausted = False
        self._held: dict[str, dict[str, RequestRecord]] = {}
        self._sent: dict[str, set[str]] = {}  # request ids a worker marked sent and has not delivered
        self.orphans: list[RequestRecord] = []
        self.stopped = False

    def first_shards(self, workers: list[str]) -> dict[str, list[RequestRecord]]:
        """A shard each to start with: a job smaller than that is split evenly, so every worker sends."""
        first = self._read(self.size * len(workers))
        shards = {name: first[i::len(workers)] for i, name in enumerate(workers)}
        for name, shard in shards.items():
            self.hold(name, shard)
        return {name: shard for name, shard in shards.items() if shard}

    def next_shard(self, worker: str) -> list[RequestRecord]:
        """Up to `size` records for `worker`, orphans first, now held by it; empty once stopped or all dealt."""
        if self.stopped:
            return []
        shard, self.orphans = self.orphans[:self.size], self.orphans[self.size:]
        shard += self._read(self.size - len(shard))
        self.hold(worker, shard)
        return shard

    def _read(self, count: int) -> list[RequestRecord]:
        if self._exhausted or count <= 0:
            return []
        fresh = list(itertools.islice(self._undealt, count))
        self._exhausted = len(fresh) < count
        return fresh

    def needs_more(self, worker: str) -> bool:
        """The worker has fewer than half a shard queued (held, not yet sent, past what its pool took)."""
        return self.queued(worker) - self.taken < self.size / 2

    def stop(self) -> None:
        self.stopped = True

    def hold(self, worker: str, records: list[RequestRecord]) -> None:
        held = self._held.setdefault(worker, {})
        held.update((record.row_id, record) for record in records)

    def sent(self, worker: str, request_id: str) -> None:
        self._sent.setdefault(worker, set()).add(request_id)

    def finished(self, worker: str, row_id: str) -> None:
        record = self._held.get(worker, {}).pop(row_id, None)
        if record is not None:
            self._sent.get(worker, set()).discard(record.request_id)

    def ended(self, worker: str) -> int:
        """The worker's run ended: what it still holds was given up on (a stop); how many."""
        self._sent.pop(worker, None)
        return len(self._held.pop(worker, {}))

    def lost(self, worker: str) -> tuple[int, int]:
        """The worker died: what it held becomes orphans; how many, and how many of them it had sent."""
        records = list(self._held.pop(worker, {}).values())
        self.orphans.extend(records)
        return len(records), len(self._sent.pop(worker, set()))

    def holding(self, worker: str) -> int:
        return len(self._held.get(worker, {}))

    def queued(self, worker: str) -> int:
        return self.holding(worker) - len(self._sent.get(worker, ()))

    def in_flight(self) -> int:
        """Requests sent and not yet delivered, over every worker."""
        return sum(len(sent) for sent in self._sent.values())
