"""The state of a run in progress that its results don't show, in a small file `batchrun status` reads.

Output: `runs/<run_id>.live.json` in the output folder, holding the run's pid and whether every sender
is paused: until when (wall clock, seconds since the epoch, for another process to read), why, and whether
it is parked (waiting for a spent daily quota's reset, `--wait-quota`).
The run writes it atomically (a temporary file renamed over it) only when the pause changes, checked
once a tick, never per request; a run that never pauses never writes it. It is removed when the run
ends; one left by a killed run names a pid that no longer holds the folder's lock, and is ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from batchrun.output.progress import Progress

LIVE_SUFFIX = ".live.json"


@dataclass(frozen=True)
class LivePause:
    """Every sender of a live run held back until `until` (wall clock), for `reason`."""

    until: float
    reason: str
    parked: bool = False  # waiting for a spent quota's reset

    def left_s(self, now: float) -> float:
        return max(0.0, self.until - now)


def live_path(out_dir: Path, run_id: str) -> Path:
    return Path(out_dir) / "runs" / f"{run_id}{LIVE_SUFFIX}"


class LiveFile:
    """Keeps a run's live file in step with its Progress; see the module docstring."""

    def __init__(self, path: Path, progress: Progress, *, pid: int | None = None,
                 wall: Callable[[], float] = time.time) -> None:
        self.path, self.progress, self.wall = Path(path), progress, wall
        self.pid = os.getpid() if pid is None else pid
        self._written: tuple[float, str | None] | None = None

    def sync(self) -> None:
        """Write the file if the pause changed since the last write (a failed write is tried again)."""
        progress = self.progress
        state = (progress.paused_until, progress.pause_reason)
        if state == self._written or progress.pause_reason is None:
            return
        until = self.wall() + (progress.paused_until - progress.clock())
        document = {"run_id": self.path.name.removesuffix(LIVE_SUFFIX), "pid": self.pid,
                    "paused_until": until, "pause_reason": progress.pause_reason, "parked": progress.parked(),
                    "written_at": self.wall()}
        with contextlib.suppress(OSError):  # status then shows no pause; the run goes on
            _write_atomically(self.path, json.dumps(document, indent=1) + "\n")
            self._written = state

    def remove(self) -> None:
        """The run ended: nothing of it is live any more."""
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_live_pause(out_dir: Path, pid: int, now: float) -> LivePause | None:
    """The pause of the run `pid` writing `out_dir`, if one lasts past `now` (wall clock)."""
    for path in (Path(out_dir) / "runs").glob(f"*{LIVE_SUFFIX}"):
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):  # being replaced right now, or not ours
            continue
        if document.get("pid") != pid or not isinstance(document.get("paused_until"), (int, float)):
            continue
        pause = LivePause(float(document["paused_until"]), str(document.get("pause_reason") or ""),
                          document.get("parked") is True)
        return pause if pause.left_s(now) > 0 else None
    return None
