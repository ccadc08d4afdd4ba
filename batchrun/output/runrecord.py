"""The end of a run's record: `runs/<run_id>.json` completed with how the run ended, once its exit is known.

Inputs: the record the sink wrote when it closed (start, counts by status and error kind, spend, throughput:
`jobrun.run_end_facts`), the exit code and the stop line, and the job's calibration (estimate against
actual). Output: the same file, rewritten atomically, that a notification sends. A run that stopped before
its sink wrote a record (a spec error at planning, a folder that could not be written) has none to finish.
Finishing it never raises: the run's results and exit code come first.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from batchrun import errors

log = logging.getLogger(__name__)

EXIT_NAMES = {
    errors.EXIT_OK: "ok", errors.EXIT_USAGE: "usage", errors.EXIT_FAILURES: "failures",
    errors.EXIT_BUDGET: "budget", errors.EXIT_DEADLINE: "deadline", errors.EXIT_AUTH: "auth",
    errors.EXIT_QUOTA: "quota", errors.EXIT_NOT_OK: "not_ok", errors.EXIT_RUNNING: "already_running",
    errors.EXIT_WRITE: "write", errors.EXIT_CONFIG: "config", errors.EXIT_BILLING: "billing",
    errors.EXIT_BATCHES_RUNNING: "batches_running", errors.EXIT_INTERRUPTED: "interrupted",
}


def record_path(out_dir: Path, run_id: str) -> Path:
    return Path(out_dir) / "runs" / f"{run_id}.json"


def finish_run_record(out_dir: Path, run_id: str, code: int, message: str | None,
                      estimate_vs_actual: dict[str, Any] | None = None, *, now: float | None = None) -> Path | None:
    """Add the exit to a run's record; its path, or None when there is none or it could not be written (logged)."""
    path = record_path(out_dir, run_id)
    record = _read(path)
    if record is None:
        return None
    record.update(exit_code=code, exit_reason=EXIT_NAMES.get(code, str(code)), message=message,
                  ended_at=time.time() if now is None else now)
    if estimate_vs_actual:
        record["estimate_vs_actual"] = estimate_vs_actual
    try:
        _write_atomically(path, json.dumps(record, indent=2) + "\n")
    except OSError as exc:
        log.warning("the run's summary %s could not be written: %s", path, exc.strerror or exc)
        return None
    return path


def _read(path: Path) -> dict[str, Any] | None:
    with contextlib.suppress(OSError, ValueError):
        document = json.loads(path.read_text())
        return document if isinstance(document, dict) else None
    return None


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
