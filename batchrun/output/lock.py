"""The lock of an output folder: one run or plan writes it at a time.

The lock is an `flock` on `OUTPUT/.lock`, which the kernel releases when its holder ends, however it
ends (`kill -9`, a reboot): no stale pid can block the next run. Inside the file, written once the lock
is held, a JSON line names the holder (`{"pid": ..., "started_at": ...}`) for the message a refused run
prints and for `status`; the file's content is never what decides who holds the lock.

The holder removes the file while still holding the lock. A process that opened the file just before
and locks it just after then holds a lock on a removed file: it sees that the path no longer names the
file it locked and tries again, so two processes never both believe they hold the folder.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from batchrun.errors import AlreadyRunning
from batchrun.output.mirror import shown_output

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
BUSY_TRIES = 3  # a `status` probing the lock holds it for microseconds: a run starting then tries again
BUSY_WAIT_S = 0.02

_held: dict[Path, int] = {}  # lock file -> the descriptor holding its flock, for the locks this process holds


@dataclass(frozen=True)
class LockRecord:
    """Who holds a folder's lock, as the holder wrote it."""

    pid: int | None = None
    started_at: str | None = None


def lock_record(pid: int, started: datetime.datetime) -> bytes:
    """The line a holder writes into the lock file."""
    return (json.dumps({"pid": pid, "started_at": started.isoformat(timespec="seconds")}) + "\n").encode()


def parse_lock_record(data: bytes) -> LockRecord:
    """The holder named by a lock file's content; an empty record for an empty or unreadable one."""
    text = data.decode("utf-8", "replace").strip()
    if text.isdigit():  # batchrun 0.5 wrote the pid alone
        return LockRecord(int(text))
    try:
        fields = json.loads(text)
    except ValueError:
        return LockRecord()
    if not isinstance(fields, dict):
        return LockRecord()
    pid, started = fields.get("pid"), fields.get("started_at")
    return LockRecord(pid if isinstance(pid, int) else None, started if isinstance(started, str) else None)


def lock_holder(out_dir: Path) -> int | None:
    """Pid of the live process holding the folder's lock, or None."""
    record = holder_record(out_dir)
    return None if record is None else record.pid


def holder_record(out_dir: Path) -> LockRecord | None:
    """The record of the process holding the folder's lock, or None when nobody holds it."""
    try:
        fd = os.open(out_dir / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if _try_flock(fd, fcntl.LOCK_SH):
            return None
        return _read_record(fd)
    finally:
        os.close(fd)  # also drops the shared lock the probe may have taken


def pid_alive(pid: int) -> bool:
    """Whether a process runs under this pid (a zombie left by a killed run counts as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def acquire_lock(out_dir: Path, sleep: Callable[[float], None] = time.sleep) -> Path:
    """Take the folder's lock (creating the folder); AlreadyRunning, naming the holder, if another holds it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            _lock_or_refuse(fd, out_dir, sleep)
        except BaseException:
            os.close(fd)
            raise
        if _names_locked_file(path, fd):
            break
        os.close(fd)  # its holder removed the file we locked: lock the one the path names now
    _write_record(fd)
    _held[path] = fd
    return path


def _lock_or_refuse(fd: int, out_dir: Path, sleep: Callable[[float], None]) -> None:
    for attempt in range(BUSY_TRIES):
        if _try_flock(fd, fcntl.LOCK_EX):
            return
        if attempt + 1 < BUSY_TRIES:
            sleep(BUSY_WAIT_S)
    record = _read_record(fd)
    raise AlreadyRunning(shown_output(out_dir), record.pid, record.started_at)


def _try_flock(fd: int, kind: int) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _names_locked_file(path: Path, fd: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _read_record(fd: int) -> LockRecord:
    return parse_lock_record(os.pread(fd, 4096, 0))


def _write_record(fd: int) -> None:
    data = lock_record(os.getpid(), datetime.datetime.now().astimezone())
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


@contextlib.contextmanager
def folder_lock(out_dir: Path) -> Iterator[Path]:
    """Hold the folder's lock for the block (see `acquire_lock`)."""
    path = acquire_lock(out_dir)
    try:
        yield path
    finally:
        release_lock(path)


def release_lock(path: Path) -> None:
    """Remove the lock file and release the lock, if this process holds it."""
    fd = _held.pop(path, None)
    if fd is None:
        return
    try:
        path.unlink(missing_ok=True)  # while still locked: see the module docstring
    finally:
        os.close(fd)


def drop_lock_as_if_killed(path: Path) -> None:
    """Release the lock but leave its file and record: what a `kill -9` of the holder leaves (tests, benchmarks)."""
    fd = _held.pop(path, None)
    if fd is not None:
        os.close(fd)
