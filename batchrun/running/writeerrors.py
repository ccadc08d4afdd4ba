"""What a failed write of the output folder means to a user: one line, where, and what to do."""

from __future__ import annotations

import errno
from pathlib import Path

_FIXES = {
    errno.ENOSPC: "the disk is full: free space on it",
    errno.EDQUOT: "the disk quota is used up: free space or raise the quota",
    errno.EROFS: "the file system is read-only: remount it writable, or set output.dir to a writable folder",
    errno.EACCES: "no permission to write there: fix the folder's owner or mode, or set output.dir elsewhere",
    errno.EPERM: "the operation is not permitted there: fix the folder's owner or mode, or set output.dir elsewhere",
    errno.EIO: "the disk reported an I/O error: check it",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n)",
}


def write_error_message(exc: OSError, folder: Path | None = None) -> str:
    """`could not write PATH: No space left on device (ENOSPC); the disk is full: free space on it`."""
    where = f" {exc.filename}" if exc.filename else (f" in {folder}" if folder else "")
    code = errno.errorcode.get(exc.errno or 0, "")
    reason = f"{exc.strerror or exc}" + (f" ({code})" if code else "")
    fix = _FIXES.get(exc.errno or 0, "fix the cause")
    return f"could not write{where}: {reason}; {fix}"
