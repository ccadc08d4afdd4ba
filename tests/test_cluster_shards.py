"""Shards: bounded, dealt as workers need them, orphans first, nothing after a stop; a finished record held by none."""

from __future__ import annotations

from batchrun.cluster.shards import MIN_SHARD, ShardBook, shard_size
from batchrun.records import RequestRecord


def records(count: int) -> list[RequestRecord]:
    return [RequestRecord(request_id=f"q{i}", seq=i, model="m", body=None, variables={}, row_id=f"r{i}")  # type: ignore[arg-type]
            for i in range(count)]


def ids(shard) -> list[str]:
    return [record.row_id for record in shard]


def test_a_shard_is_four_rounds_of_a_workers_share_of_the_concurrency_and_never_fewer_than_the_minimum() -> None:
    assert shard_size(64, 2) == 128
    assert shard_size(65, 2) == 132  # the share rounds up
    assert shard_size(8, 2) == MIN_SHARD


def test_shards_are_dealt_in_order_a_bounded_shard_at_a_time_and_then_nothing() -> None:
    book = ShardBook(records(7), size=3)

    assert ids(book.next_shard("w1")) == ["r0", "r1", "r2"]
    assert ids(book.next_shard("w2")) == ["r3", "r4", "r5"]
    assert ids(book.next_shard("w1")) == ["r6"]
    assert book.next_shard("w2") == []
    assert (book.holding("w1"), book.holding("w2")) == (4, 3)


def test_the_records_are_read_a_shard_at_a_time_not_all_at_the_start() -> None:
    read: list[int] = []

    def source():
        for record in records(100):
            read.append(record.seq)
            yield record

    book = ShardBook(source(), size=4)
    book.next_shard("w1")

    assert read == [0, 1, 2, 3]


def test_a_worker_needs_more_once_fewer_than_half_a_shard_is_queued_sent_ones_not_counted() -> None:
    book = ShardBook(records(8), size=4)
    book.next_shard("w1")
    book.sent("w1", "q0")
    book.sent("w1", "q1")

    assert book.queued("w1") == 2 and not book.needs_more("w1")
    book.sent("w1", "q2")
    assert book.needs_more("w1")
    assert ids(book.next_shard("w1")) == ["r4", "r5", "r6", "r7"]
    assert book.queued("w1") == 5


def test_a_lost_workers_records_it_had_not_delivered_are_dealt_again_before_records_not_yet_dealt() -> None:
    book = ShardBook(records(10), size=3)
    book.next_shard("w1")
    book.next_shard("w2")
    book.sent("w1", "q0")
    book.sent("w1", "q1")
    book.finished("w1", "r0")

    assert book.lost("w1") == (2, 1)  # r1 and r2 are orphans; q1 had been sent
    assert ids(book.next_shard("w2")) == ["r1", "r2", "r6"]
    assert book.orphans == []
    assert book.holding("w2") == 6


def test_orphans_beyond_a_shard_wait_for_the_next_one() -> None:
    book = ShardBook(records(8), size=4)
    book.next_shard("w1")
    book.next_shard("w1")
    book.lost("w1")

    assert ids(book.next_shard("w2")) == ["r0", "r1", "r2", "r3"]
    assert ids(book.next_shard("w3")) == ["r4", "r5", "r6", "r7"]
    assert book.next_shard("w2") == []


def test_after_a_stop_nothing_is_dealt_not_even_orphans() -> None:
    book = ShardBook(records(10), size=3)
    book.next_shard("w1")
    book.lost("w1")

    book.stop()

    assert book.next_shard("w2") == []
    assert book.holding("w2") == 0


def test_records_a_stopped_worker_gave_up_on_are_no_orphans_they_stay_pending_for_the_next_run() -> None:
    book = ShardBook(records(4), size=2)
    book.next_shard("w1")
    book.next_shard("w2")

    assert book.ended("w2") == 2
    assert book.orphans == []
    assert book.holding("w1") == 2


def test_in_flight_counts_requests_sent_and_not_yet_finished_over_every_worker_a_lost_ones_no_more() -> None:
    book = ShardBook(records(6), size=3)
    book.next_shard("w1")
    book.next_shard("w2")
    for worker, request_id in (("w1", "q0"), ("w1", "q1"), ("w2", "q3")):
        book.sent(worker, request_id)
    book.finished("w1", "r0")

    assert book.in_flight() == 2
    book.lost("w2")
    assert book.in_flight() == 1
    book.ended("w1")
    assert book.in_flight() == 0


def test_the_first_shards_split_a_job_smaller_than_a_shard_each_evenly_over_the_workers() -> None:
    book = ShardBook(records(5), size=4)

    shards = book.first_shards(["w1", "w2", "w3"])

    assert {name: ids(shard) for name, shard in shards.items()} == {
        "w1": ["r0", "r3"], "w2": ["r1", "r4"], "w3": ["r2"]}
    assert book.next_shard("w1") == []


def test_the_first_shards_are_a_full_shard_each_and_an_empty_one_is_not_started() -> None:
    book = ShardBook(records(20), size=4)

    assert [len(shard) for shard in book.first_shards(["w1", "w2"]).values()] == [4, 4]
    assert ids(book.next_shard("w2")) == ["r8", "r9", "r10", "r11"]
    assert list(ShardBook(records(1), size=4).first_shards(["w1", "w2"])) == ["w1"]


def test_records_a_workers_pool_took_but_has_not_sent_are_not_counted_as_queued_for_a_refill() -> None:
    book = ShardBook(records(16), size=4, taken=2)
    book.next_shard("w1")
    book.next_shard("w1")  # 8 held, none sent: its pool's 2 tasks took 2, 6 queued
    for request_id in ("q0", "q1", "q2"):
        book.sent("w1", request_id)

    assert not book.needs_more("w1")  # 5 unsent, 2 of them taken: 3 queued
    book.sent("w1", "q3")
    assert not book.needs_more("w1")  # 2 queued: not fewer than half a shard
    book.sent("w1", "q4")
    assert book.needs_more("w1")
