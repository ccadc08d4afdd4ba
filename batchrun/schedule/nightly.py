"""The shell command one scheduled night runs, the same for cron and systemd.

Inputs: a `Nightly` (absolute paths of the Python, the spec, the working folder, the env file, the log
folder, and the flags passed on to `batchrun run`). Output: one POSIX `sh` command line.
Invariants: every path is absolute and quoted, so the command works from any folder with PATH=/usr/bin:/bin;
everything the run prints goes to one log file per night; the exit codes of an expected state
(`QUIET_EXITS`) end the command with 0, so cron mails nothing; any other code prints one line naming the
code and the log (which cron mails) and is kept as the command's exit code.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from batchrun.errors import EXIT_BATCHES_RUNNING, EXIT_DEADLINE, EXIT_NOT_OK, EXIT_OK, EXIT_RUNNING

# 0 all ok; 5 --until reached (the next night goes on); 8 finished, some rows blocked or invalid (final);
# 9 the previous night's run still holds the folder; 13 batches still running at the server
QUIET_EXITS = (EXIT_OK, EXIT_DEADLINE, EXIT_NOT_OK, EXIT_RUNNING, EXIT_BATCHES_RUNNING)
LOG_NAME = "run-$(date +%Y-%m-%d).log"


@dataclass(frozen=True)
class Nightly:
    """What a scheduled night needs; every path absolute."""

    name: str
    spec: Path
    workdir: Path
    python: Path
    env_file: Path
    log_dir: Path
    run_flags: tuple[str, ...] = ()  # passed on to `batchrun run`: --until, --max-duration, --tier, --wait-quota


def run_flags(until: str | None, tier: str | None, wait_quota: bool, window_min: int | None = None) -> tuple[str, ...]:
    """The `batchrun run` flags a schedule passes on; `window_min` (from --at to --until) also bounds the run's
    length, so a night started late (a timer catching up at boot) stops after one window, not the next morning."""
    flags: list[str] = []
    if until:
        flags += ["--until", until]
    if window_min:
        flags += ["--max-duration", f"{window_min}m"]
    if tier:
        flags += ["--tier", tier]
    if wait_quota:
        flags.append("--wait-quota")
    return tuple(flags)


def night_command(nightly: Nightly, *, standalone: bool = True) -> str:
    """The `sh` command of one night; `standalone` (cron) also enters the folder and reads the env file,
    which systemd does itself (WorkingDirectory=, EnvironmentFile=)."""
    steps = [f"mkdir -p {_q(nightly.log_dir)}", f'log={_q(nightly.log_dir)}/{LOG_NAME}', _run(nightly)]
    if standalone:
        steps[:0] = [f"cd {_q(nightly.workdir)}", "set -a", f". {_q(nightly.env_file)}", "set +a"]
    return " && ".join(steps) + "; " + _exit_mapping(nightly)


def _run(nightly: Nightly) -> str:
    words = [str(nightly.python), "-m", "batchrun", "run", str(nightly.spec), "--progress", "plain",
             *nightly.run_flags]
    return " ".join(shlex.quote(word) for word in words) + ' >>"$log" 2>&1'


def _exit_mapping(nightly: Nightly) -> str:
    quiet = "|".join(str(code) for code in QUIET_EXITS)
    message = f"batchrun schedule: job {nightly.name} exited $code; see $log"
    return f'code=$?; case $code in {quiet}) exit 0;; esac; echo "{message}" >&2; exit $code'


def _q(path: Path) -> str:
    return shlex.quote(str(path))
