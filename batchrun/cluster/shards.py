"""Which worker holds which pending requests: dealing shards, and taking back a lost worker's.

Input: the records to send, the workers' names, and what happens to each worker (a delivery, the
end of its shard, its loss). Output: the shards to start, and the orphans of a lost worker.
Invariants: a record is held by one worker at a time; a finished record is held by none; a lost
worker's records (in flight or queued) become orphans, dealt again to the workers still alive; a
record a worker gave up on because the run stopped is held by none and stays pending for the next run.
Pure: no Ray, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from batchrun.records import RequestRecord


class ShardBook:
    """The records each worker holds; see the module docstring."""

    def __init__(self) -> None:
        self._held: dict[str, dict[str, RequestRecord]] = {}
        self._sent: dict[str, set[str]] = {}  # request ids a worker marked sent and has not delivered
        self.orphans: list[RequestRecord] = []

    def deal(self, records: Iterable[RequestRecord], workers: list[str]) -> dict[str, list[RequestRecord]]:
        """Shards of `records`, round robin over `workers` (each record to one), now held by them."""
        shards: dict[str, list[RequestRecord]] = {name: [] for name in workers}
        for i, record in enumerate(records):
            shards[workers[i % len(workers)]].append(record)
        for name, shard in shards.items():
            self.hold(name, shard)
        return {name: shard for name, shard in shards.items() if shard}

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
        """The worker's shard ended: what it still holds was given up on (a stop); how many."""
        self._sent.pop(worker, None)
        return len(self._held.pop(worker, {}))

    def lost(self, worker: str) -> tuple[int, int]:
        """The worker died: what it held becomes orphans; how many, and how many of them it had sent."""
        records = list(self._held.pop(worker, {}).values())
        self.orphans.extend(records)
        return len(records), len(self._sent.pop(worker, set()))

    def take_orphans(self) -> list[RequestRecord]:
        orphans, self.orphans = self.orphans, []
        return orphans

    def holding(self, worker: str) -> int:
        return len(self._held.get(worker, {}))
