"""The lock of an output folder: one run writes it at a time; a lock left by a dead process is taken over."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from batchrun.errors import UsageError

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
    """Take the folder's lock file, taking over one left by a dead process."""
    path = out_dir / LOCK_NAME
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = _read_lock_pid(path)
            if holder is not None and pid_alive(holder):
                raise UsageError(
                    f"another batchrun run is writing {out_dir} (pid {holder}); wait for it to end "
                    f"or stop it, then run again") from None
            log.info("taking over the lock of %s left by dead pid %s", out_dir, holder)
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as lock_file:
            lock_file.write(f"{os.getpid()}\n")
        return path
    raise UsageError(f"could not take the lock {path}: another run keeps taking it; try again")


def release_lock(path: Path) -> None:
    """Remove the lock file if this process still holds it."""
    if _read_lock_pid(path) == os.getpid():
        path.unlink(missing_ok=True)
