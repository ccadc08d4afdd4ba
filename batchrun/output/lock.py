"""The lock of an output folder: one run or plan writes it at a time; a dead process's lock is taken over."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from batchrun.errors import AlreadyRunning

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"


def lock_holder(out_dir: Path) -> int | None:
    """Pid of the live process holding the folder's lock, or None."""
    pid = _read_lock_pid(out_dir / LOCK_NAME)
    return pid if pid is not None and pid_alive(pid) else None


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


def _read_lock_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def acquire_lock(out_dir: Path) -> Path:
    """Take the folder's lock file, taking over one left by a dead process; AlreadyRunning if it is held."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOCK_NAME
    for _ in range(3):
        if _create_lock_file(path):
            return path
        holder = _read_lock_pid(path)
        if holder is not None and pid_alive(holder):
            raise AlreadyRunning(out_dir, holder)
        log.info("taking over the lock of %s left by dead pid %s", out_dir, holder)
        path.unlink(missing_ok=True)
    raise AlreadyRunning(out_dir)


def _create_lock_file(path: Path) -> bool:
    """Create the lock file already holding this pid, or return False when it exists.

    Linked into place from a temporary file, so no other process ever reads it empty and takes it
    for a dead run's; a file system without hard links gets an exclusive create instead.
    """
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    tmp.write_text(f"{os.getpid()}\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError:
        return _create_exclusive(path)
    finally:
        tmp.unlink(missing_ok=True)
    return True


def _create_exclusive(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as lock_file:
        lock_file.write(f"{os.getpid()}\n")
    return True


@contextlib.contextmanager
def folder_lock(out_dir: Path) -> Iterator[Path]:
    """Hold the folder's lock for the block (see `acquire_lock`)."""
    path = acquire_lock(out_dir)
    try:
        yield path
    finally:
        release_lock(path)


def release_lock(path: Path) -> None:
    """Remove the lock file if this process still holds it."""
    if _read_lock_pid(path) == os.getpid():
        path.unlink(missing_ok=True)
