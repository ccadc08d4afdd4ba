"""Shards: dealt round robin, a finished record held by none, a lost worker's records dealt again."""

from __future__ import annotations

from batchrun.cluster.shards import ShardBook
from batchrun.records import RequestRecord


def records(count: int) -> list[RequestRecord]:
    return [RequestRecord(request_id=f"q{i}", seq=i, model="m", body=None, variables={}, row_id=f"r{i}")  # type: ignore[arg-type]
            for i in range(count)]


def ids(shard) -> list[str]:
    return [record.row_id for record in shard]


def test_records_are_dealt_round_robin_and_an_empty_shard_is_not_started() -> None:
    book = ShardBook()

    shards = book.deal(records(3), ["w1", "w2", "w3", "w4"])

    assert {name: ids(shard) for name, shard in shards.items()} == {"w1": ["r0"], "w2": ["r1"], "w3": ["r2"]}


def test_a_lost_worker_leaves_as_orphans_only_the_records_it_had_not_delivered() -> None:
    book = ShardBook()
    book.deal(records(6), ["w1", "w2"])
    book.sent("w1", "q0")
    book.sent("w1", "q2")
    book.finished("w1", "r0")

    assert book.lost("w1") == (2, 1)  # r2 and r4 are orphans; q2 had been sent
    assert sorted(ids(book.take_orphans())) == ["r2", "r4"]
    assert book.take_orphans() == []


def test_records_a_stopped_worker_gave_up_on_are_no_orphans_they_stay_pending_for_the_next_run() -> None:
    book = ShardBook()
    book.deal(records(4), ["w1", "w2"])

    assert book.ended("w2") == 2
    assert book.orphans == []
    assert book.holding("w1") == 2


def test_orphans_dealt_again_are_held_by_their_new_worker() -> None:
    book = ShardBook()
    book.deal(records(4), ["w1", "w2"])
    book.lost("w1")

    book.deal(book.take_orphans(), ["w2"])

    assert book.holding("w2") == 4
