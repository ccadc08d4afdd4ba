"""A bucket job's lease: who may run it, when a lease is stale, and what renewing and releasing leave."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import replace

import pytest

from batchrun.errors import EXIT_RUNNING, BucketLeased
from batchrun.output.lease import (
    LEASE_NAME,
    Lease,
    LeaseKeeper,
    RenewVerdict,
    Verdict,
    fresh_for_s,
    lease_verdict,
    parse_lease,
    renew_verdict,
)

NOW = 1_800_000_000.0


def iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds")


def lease(host: str = "gpu-7", staging: str = "/cache/staging/a", renewed: float = NOW, run_id: str = "r1") -> Lease:
    return Lease(host, 4242, run_id, staging, iso(NOW - 600), iso(renewed))


OURS = lease("laptop", "/home/me/.cache/batchrun/staging/a", run_id="mine")


class MemoryStore:
    location = "s3://bucket/job"

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def read_bytes(self, relative: str) -> bytes | None:
        return self.objects.get(relative)

    def upload_bytes(self, data: bytes, relative: str) -> None:
        self.objects[relative] = data

    def delete(self, relative: str) -> None:
        self.objects.pop(relative, None)


def test_a_lease_is_fresh_for_three_pushes_and_at_least_three_minutes():
    assert fresh_for_s(60) == 180 and fresh_for_s(0) == 180 and fresh_for_s(120) == 360


@pytest.mark.parametrize(("found", "take_over", "verdict"), [
    (None, False, Verdict.TAKE),
    (lease("laptop", OURS.staging, renewed=NOW), False, Verdict.TAKE),  # this machine's, left by a killed run
    (lease(renewed=NOW - 179), False, Verdict.REFUSE),
    (lease("laptop", "/other/staging", renewed=NOW), False, Verdict.REFUSE),  # another staging folder here
    (lease(renewed=NOW - 181), False, Verdict.TAKE_STALE),
    (lease(renewed=NOW - 10), True, Verdict.TAKE_FORCED),
])
def test_what_a_starting_run_does_with_the_lease_it_finds(found, take_over, verdict):
    assert lease_verdict(found, OURS, NOW, 180.0, take_over) is verdict


def test_an_unreadable_lease_counts_as_none():
    assert parse_lease(b"not json") is None and parse_lease(b'{"host": "x"}') is None
    assert parse_lease(lease().to_bytes()) == lease()


def keeper(store: MemoryStore, now: list[float], run_id: str = "mine") -> LeaseKeeper:
    return LeaseKeeper(store, run_id, OURS_STAGING, 60.0, lambda: now[0])


OURS_STAGING = "/home/me/.cache/batchrun/staging/a"


def test_a_fresh_lease_of_another_machine_refuses_the_run_naming_its_holder():
    store, now = MemoryStore(), [NOW]
    store.objects[LEASE_NAME] = lease(renewed=NOW - 60).to_bytes()
    with pytest.raises(BucketLeased) as refused:
        keeper(store, now).take(take_over=False)
    assert refused.value.exit_code == EXIT_RUNNING
    message = str(refused.value)
    assert message.startswith("s3://bucket/job is being run on gpu-7 (pid 4242, started ")
    assert "--take-over" in message and "3 min after its last upload" in message
    assert parse_lease(store.objects[LEASE_NAME]).host == "gpu-7"


def test_a_stale_lease_is_taken_over_with_one_warning(caplog):
    store, now = MemoryStore(), [NOW]
    store.objects[LEASE_NAME] = lease(renewed=NOW - 600).to_bytes()
    with caplog.at_level(logging.WARNING, logger="batchrun"):
        keeper(store, now).take(take_over=False)
    assert parse_lease(store.objects[LEASE_NAME]).run_id == "mine"
    [warning] = caplog.messages
    assert warning.startswith("taking over gpu-7's lease on s3://bucket/job (pid 4242, run r1") and "stale" in warning


@pytest.mark.parametrize("found, verdict", [
    (None, RenewVerdict.RENEW),  # removed meanwhile (by hand): written again
    (OURS, RenewVerdict.RENEW),
    (replace(OURS, renewed_at=iso(NOW - 3600)), RenewVerdict.RENEW),  # ours, however old
    (lease(run_id="theirs"), RenewVerdict.LOST),
    (replace(OURS, run_id="theirs"), RenewVerdict.LOST),  # another run of this very machine took it over
])
def test_what_a_renewal_does_with_the_lease_it_finds(found, verdict):
    assert renew_verdict(found, OURS) is verdict


def test_a_lease_taken_over_is_left_alone_and_its_taker_told_once_to_every_listener(caplog):
    store, now = CountingStore(), [NOW]
    mine = keeper(store, now)
    mine.take(take_over=False)
    early: list[Lease] = []
    mine.when_lost(early.append)
    store.objects[LEASE_NAME] = theirs = lease(run_id="theirs").to_bytes()
    writes = store.writes
    mine.renew()
    mine.renew()
    late: list[Lease] = []
    mine.when_lost(late.append)  # registered after the loss: told at once
    assert early == late == [parse_lease(theirs)] and mine.lost_to == parse_lease(theirs)
    assert (store.objects[LEASE_NAME], store.writes) == (theirs, writes)
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.endswith("was taken over by gpu-7 (pid 4242, run theirs): this run stops sending")


def test_renewing_moves_the_time_and_releasing_removes_only_this_runs_lease():
    store, now = MemoryStore(), [NOW]
    mine = keeper(store, now)
    mine.take(take_over=False)
    now[0] += 60
    mine.renew()
    assert parse_lease(store.objects[LEASE_NAME]).renewed_s() == NOW + 60
    store.objects[LEASE_NAME] = lease(run_id="theirs").to_bytes()  # taken over meanwhile
    mine.renew()
    mine.release()
    assert parse_lease(store.objects[LEASE_NAME]).run_id == "theirs"
    store.objects[LEASE_NAME] = mine.lease.to_bytes()
    mine.release()
    assert LEASE_NAME not in store.objects


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def upload_bytes(self, data: bytes, relative: str) -> None:
        self.writes += 1
        super().upload_bytes(data, relative)


def test_a_run_that_writes_nothing_keeps_its_lease_renewed_and_release_stops_the_renewals():
    store, now = CountingStore(), [NOW]
    mine = keeper(store, now)
    mine.take(take_over=False)
    now[0] += 3600  # an hour parked on a quota: no push, only the timer renews
    mine.keep_alive(0.001)
    deadline = time.monotonic() + 30
    while parse_lease(store.objects[LEASE_NAME]).renewed_s() != NOW + 3600 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert parse_lease(store.objects[LEASE_NAME]).renewed_s() == NOW + 3600

    mine.release()
    writes = store.writes
    assert LEASE_NAME not in store.objects
    assert not any(thread.name == "batchrun-lease" for thread in threading.enumerate())  # no beat left to write
    assert LEASE_NAME not in store.objects and store.writes == writes
