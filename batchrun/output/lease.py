"""The lease of a bucket job: which machine runs it, in `.batchrun-lease.json` at the job's location.

Input: the job's store, this run's host, pid, run id and staging folder, a wall clock (leases are compared
across machines). Output: the lease object written at the run's start, renewed at every push, removed at
the run's end; `BucketLeased` (exit 9) when another machine's lease is fresh.

Invariants:
- A lease is fresh while renewed within 3 push intervals, and at least 3 minutes; a stale one is taken
  over with one warning, a fresh one only with `--take-over`.
- A lease from this host and staging folder is this machine's: its local lock already says no run of it
  is alive (a killed run left it), so it is taken without a word.
- Not atomic: an object store has no lock and no compare-and-swap here, so two runs starting within the
  same second or so may both read no lease and both proceed. The lease stops the common case, a second
  machine started on a job already running, not a race.
- Only `run` takes it; `status`, `report`, `export` and `plan` neither take nor need it.
- Renewing leaves a lease another run took over alone, so the two don't fight, and tells the run it lost
  its lease (`when_lost`, once): the run stops sending, saves and uploads what it has, and exits 9. Two
  machines never go on sending (and paying for) the same requests.
- A run renews on a timer too (`keep_alive`), not only when it pushes: a run that writes nothing for
  hours (parked on a daily quota, a batch waiting at the server) keeps its lease fresh. `release` stops
  the timer before removing the lease, so no renewal can write it back.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from batchrun.errors import BucketLeased, StorageFailed
from batchrun.output.store import ObjectStore

log = logging.getLogger(__name__)

LEASE_NAME = ".batchrun-lease.json"
FRESH_PUSHES = 3
FRESH_AT_LEAST_S = 180.0


@dataclass(frozen=True)
class Lease:
    """Who runs a bucket job, and since when (ISO 8601 times, for people and for other machines)."""

    host: str
    pid: int
    run_id: str
    staging: str
    started_at: str
    renewed_at: str

    def to_bytes(self) -> bytes:
        return (json.dumps(asdict(self), indent=2) + "\n").encode()

    def renewed_s(self) -> float | None:
        """When it was last renewed, in seconds since the epoch (None when unreadable)."""
        try:
            return dt.datetime.fromisoformat(self.renewed_at).timestamp()
        except ValueError:
            return None


class Verdict(enum.Enum):
    TAKE = "take"  # none, or this machine's own
    TAKE_STALE = "take_stale"  # another's, not renewed for too long
    TAKE_FORCED = "take_forced"  # another's, fresh, and --take-over
    REFUSE = "refuse"  # another's, fresh


def parse_lease(data: bytes) -> Lease | None:
    """The lease in an object's bytes; None when it is not one (then it counts as stale)."""
    try:
        fields = json.loads(data)
        return Lease(**{name: fields[name] for name in Lease.__dataclass_fields__})
    except (ValueError, TypeError, KeyError):
        return None


class RenewVerdict(enum.Enum):
    RENEW = "renew"  # still this run's (or gone: written again)
    LOST = "lost"  # another run took it over


def renew_verdict(found: Lease | None, ours: Lease) -> RenewVerdict:
    """What a renewal does with the lease it found: another run's means this run lost it."""
    if found is not None and found.run_id != ours.run_id:
        return RenewVerdict.LOST
    return RenewVerdict.RENEW


def fresh_for_s(upload_every_s: float) -> float:
    """How long a lease stays fresh without renewal: 3 push intervals, at least 3 minutes."""
    return max(FRESH_PUSHES * upload_every_s, FRESH_AT_LEAST_S)


def lease_verdict(found: Lease | None, ours: Lease, now_s: float, fresh_s: float, take_over: bool) -> Verdict:
    """What a starting run does with the lease it found (see the module docstring)."""
    if found is None or (found.host, found.staging) == (ours.host, ours.staging):
        return Verdict.TAKE
    renewed = found.renewed_s()
    if renewed is None or now_s - renewed > fresh_s:
        return Verdict.TAKE_STALE
    return Verdict.TAKE_FORCED if take_over else Verdict.REFUSE


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds")


class LeaseKeeper:
    """This run's lease on a bucket job: `take` at the start, `renew` at each push and on a timer, `release` at the end."""

    def __init__(self, store: ObjectStore, run_id: str, staging: Path, upload_every_s: float,
                 clock: Callable[[], float]) -> None:
        self.store = store
        self._clock = clock
        self.fresh_s = fresh_for_s(upload_every_s)
        started = _iso(clock())
        self.lease = Lease(socket.gethostname(), os.getpid(), run_id, str(staging), started, started)
        self.lost_to: Lease | None = None  # the lease of the run that took this one's over
        self._on_lost: list[Callable[[Lease], None]] = []
        self._losing = threading.Lock()  # renewed from pushes and from the timer: lost once
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def take(self, take_over: bool) -> None:
        """Write this run's lease; BucketLeased when another machine's is fresh and `take_over` is off."""
        found = self._read()
        verdict = lease_verdict(found, self.lease, self._clock(), self.fresh_s, take_over)
        if verdict is Verdict.REFUSE:
            assert found is not None
            raise BucketLeased(self.store.location, found.host, found.pid, found.started_at, found.renewed_at,
                               self.fresh_s)
        if verdict is not Verdict.TAKE and found is not None:
            why = "stale" if verdict is Verdict.TAKE_STALE else "fresh, taken over as --take-over asks"
            log.warning("taking over %s's lease on %s (pid %s, run %s, last renewed %s: %s); if that run still "
                        "goes on, both send the same requests", found.host, self.store.location, found.pid,
                        found.run_id, found.renewed_at, why)
        self.store.upload_bytes(self.lease.to_bytes(), LEASE_NAME)

    def renew(self) -> None:
        """Write the lease again with the time now, unless another run took it over (then tell `when_lost`, once)."""
        if self.lost_to is not None:
            return
        found = self._read()
        if renew_verdict(found, self.lease) is RenewVerdict.LOST:
            assert found is not None
            self._lose(found)
            return
        self.lease = replace(self.lease, renewed_at=_iso(self._clock()))
        self.store.upload_bytes(self.lease.to_bytes(), LEASE_NAME)

    def when_lost(self, callback: Callable[[Lease], None]) -> None:
        """Call `callback` with the taker's lease when another run takes this one over (at once if it did)."""
        self._on_lost.append(callback)
        if self.lost_to is not None:
            callback(self.lost_to)

    def _lose(self, found: Lease) -> None:
        with self._losing:
            if self.lost_to is not None:
                return
            self.lost_to = found
        log.warning("%s's lease on %s was taken over by %s (pid %s, run %s): this run stops sending",
                    self.lease.host, self.store.location, found.host, found.pid, found.run_id)
        for callback in list(self._on_lost):
            callback(found)

    def keep_alive(self, every_s: float) -> None:
        """Renew every `every_s` seconds in a background thread until `release`."""
        self._beat = threading.Thread(target=self._beat_loop, args=(every_s,), name="batchrun-lease", daemon=True)
        self._beat.start()

    def _beat_loop(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            try:
                self.renew()
            except StorageFailed as exc:  # the bucket is away for a moment: the next beat tries again
                log.warning("this run's lease could not be renewed, tried again in %g s: %s", every_s, exc)

    def release(self) -> None:
        """Stop renewing, then remove the lease if it is still this run's."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        found = self._read()
        if found is not None and found.run_id == self.lease.run_id:
            self.store.delete(LEASE_NAME)

    def _read(self) -> Lease | None:
        data = self.store.read_bytes(LEASE_NAME)
        return None if data is None else parse_lease(data)
