"""What `batchrun schedule` does: print the crontab line and systemd units, install, list, remove.

Inputs: the loaded spec, checked flags, and `Places` — the user's home, crontab and systemd folder, each
injected (the CLI builds them from the environment; tests point them at fakes). Outputs: the text to print.
Invariant: nothing outside `Places` is touched, and no key value is ever read or written.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from batchrun.errors import UsageError

from .cron import Crontab, cron_block, crontab_line, listed_jobs, with_block, without_block
from .envfile import create_env_file, env_file_path, env_file_text, key_names, loose_mode
from .nightly import QUIET_EXITS, Nightly, night_command
from .systemd import SystemdUser, service_unit, timer_unit, unit_name
from .timing import Timing


class Scheduler(StrEnum):
    CRON = "cron"
    SYSTEMD = "systemd"


@dataclass
class Places:
    """Where a schedule is installed: the user's home (env file), crontab and systemd unit folder."""

    home: Path
    crontab: Crontab
    systemd: SystemdUser
    systemd_works: bool

    def default_scheduler(self) -> Scheduler:
        return Scheduler.SYSTEMD if self.systemd_works else Scheduler.CRON


def nightly_for(loaded, workdir: Path, home: Path, flags: tuple[str, ...], python: str = sys.executable) -> Nightly:
    """The night of spec `loaded`, run from `workdir` (where its relative output folder is)."""
    name = loaded.spec.name
    return Nightly(name=name, spec=loaded.path.resolve(), workdir=workdir, python=Path(python).absolute(),
                   env_file=env_file_path(home, name), log_dir=(workdir / loaded.output_dir / "logs").resolve(),
                   run_flags=flags)


def schedule_text(nightly: Nightly, timing: Timing, key_env: str | Sequence[str] | None, places: Places) -> str:
    """Everything `schedule` prints without --install."""
    line = crontab_line(timing, night_command(nightly))
    units = [(places.systemd.folder / unit_name(nightly.name, kind), text)
             for kind, text in (("service", service_unit(nightly)), ("timer", timer_unit(nightly, timing)))]
    parts = [f"# crontab line (`crontab -e`, or add --install --with cron):\n{line}\n"]
    parts += [f"# {path} (or add --install --with systemd):\n{text}" for path, text in units]
    parts.append(_notes(nightly, key_env))
    return "\n".join(parts)


def _notes(nightly: Nightly, key_env: str | Sequence[str] | None) -> str:
    key = " and ".join(f"{env}=YOUR_KEY" for env in key_names(key_env)) or "the key's variable"
    quiet = " ".join(str(code) for code in QUIET_EXITS)
    return (f"# key: put {key} in {nightly.env_file} (mode 0600; --install creates it, without a key)\n"
            f"# logs: {nightly.log_dir}/run-YYYY-MM-DD.log, one a night\n"
            f"# exit codes {quiet} (done, deadline, blocked/invalid rows, already running, batches running) "
            f"end with 0 and cron mails nothing; any other prints one line, which cron mails, and is kept\n")


def install(nightly: Nightly, timing: Timing, key_env: str | Sequence[str] | None, places: Places,
            scheduler: Scheduler) -> str:
    """Install the schedule with `scheduler` for the current user; say what was written and what to do."""
    lines = [_install_env_file(nightly, key_env)]
    if scheduler is Scheduler.CRON:
        block = cron_block(nightly.name, str(nightly.spec), crontab_line(timing, night_command(nightly)))
        places.crontab.write(with_block(places.crontab.read(), nightly.name, block))
        lines.append(f"installed job {nightly.name} in your crontab (`crontab -l` shows it)")
    else:
        paths = places.systemd.install(nightly.name, service_unit(nightly), timer_unit(nightly, timing))
        lines.append(f"installed {' and '.join(str(p) for p in paths)}; "
                     f"`systemctl --user list-timers` shows when it runs next")
    lines.append(f"logs: {nightly.log_dir}/run-YYYY-MM-DD.log")
    return "\n".join(lines)


def _install_env_file(nightly: Nightly, key_env: str | Sequence[str] | None) -> str:
    path = nightly.env_file
    if create_env_file(path, env_file_text(nightly.name, key_env)):
        names = " and ".join(f"{env}=" for env in key_names(key_env)) or "the variable="
        return f"created {path} (mode 0600): put your key after {names} in it"
    if loose_mode(path):
        return f"warning: {path} can be read by others: chmod 600 {path}"
    return f"kept {path} as it is"


def list_schedules(places: Places) -> str:
    """One line per scheduled job: where, when, and what."""
    rows = [f"systemd  {name}  {when}" for name, when in places.systemd.listed_jobs().items()]
    try:
        rows += [f"cron     {name}  {line}" for name, line in listed_jobs(places.crontab.read()).items()]
    except UsageError:
        pass  # no crontab command: nothing can be scheduled there
    return "\n".join(rows) if rows else "no batchrun jobs scheduled (add one with `batchrun schedule SPEC --at HH:MM --install`)"


def remove(name: str, places: Places, scheduler: Scheduler | None) -> str:
    """Remove job `name`'s schedule (from both places unless `scheduler` says which); say what went."""
    removed = []
    if scheduler in (None, Scheduler.SYSTEMD):
        removed += [f"removed {path}" for path in places.systemd.remove(name)]
    if scheduler in (None, Scheduler.CRON):
        removed += _remove_cron(name, places.crontab, strict=scheduler is Scheduler.CRON)
    if not removed:
        raise UsageError(f"job {name} is not scheduled here; `batchrun schedule --list` shows what is")
    return "\n".join(removed + ["the env file with the key is kept; delete it yourself if it is no longer needed"])


def _remove_cron(name: str, crontab: Crontab, strict: bool) -> list[str]:
    try:
        text = crontab.read()
    except UsageError:
        if strict:
            raise
        return []
    if name not in listed_jobs(text):
        return []
    crontab.write(without_block(text, name))
    return [f"removed job {name} from your crontab"]
