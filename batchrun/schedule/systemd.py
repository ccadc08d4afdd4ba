"""The systemd user service and timer of a scheduled job, and the folder `--install` writes them to.

Inputs: a `Nightly`, its `Timing`. Outputs: `batchrun-NAME.service` and `batchrun-NAME.timer` texts.
Invariants: ExecStart is `/bin/sh -c` with the night's command escaped for systemd (`%` -> `%%`,
`$` -> `$$`, quotes and backslashes escaped), so systemd hands sh the command unchanged; the timer is
Persistent, so a night missed while the machine was off runs at the next boot. `SystemdUser` writes only
inside its folder (tests give a temporary one through BATCHRUN_SYSTEMD_DIR) and runs `systemctl --user`
only when it is given one.
"""

from __future__ import annotations

import configparser
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from batchrun.errors import UsageError

from .nightly import Nightly, night_command
from .timing import Timing, on_calendar

PREFIX = "batchrun-"


def unit_name(name: str, kind: str) -> str:
    """`batchrun-NAME.service` / `batchrun-NAME.timer`."""
    return f"{PREFIX}{name}.{kind}"


def service_unit(nightly: Nightly) -> str:
    return "\n".join([
        "[Unit]",
        f"Description=batchrun job {nightly.name} ({nightly.spec})",
        "",
        "[Service]",
        "Type=oneshot",
        f"WorkingDirectory={nightly.workdir}",
        f"EnvironmentFile={nightly.env_file}",
        f"ExecStart=/bin/sh -c {exec_quote(night_command(nightly, standalone=False))}",
        "",
    ])


def timer_unit(nightly: Nightly, timing: Timing) -> str:
    return "\n".join([
        "[Unit]",
        f"Description=Run batchrun job {nightly.name} ({nightly.spec})",
        "",
        "[Timer]",
        f"OnCalendar={on_calendar(timing)}",
        "Persistent=true",
        f"Unit={unit_name(nightly.name, 'service')}",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ])


def exec_quote(command: str) -> str:
    """One ExecStart argument that systemd turns back into exactly `command`."""
    escaped = command.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


@dataclass
class SystemdUser:
    """The user's unit folder, and `systemctl --user` when there is one to run."""

    folder: Path
    systemctl: Sequence[str] | None = ("systemctl", "--user")
    run: Callable[..., subprocess.CompletedProcess] = subprocess.run

    def install(self, name: str, service: str, timer: str) -> list[Path]:
        self.folder.mkdir(parents=True, exist_ok=True)
        paths = [self.folder / unit_name(name, "service"), self.folder / unit_name(name, "timer")]
        for path, text in zip(paths, (service, timer)):
            path.write_text(text)
        self._systemctl("daemon-reload")
        self._systemctl("enable", "--now", unit_name(name, "timer"))
        return paths

    def remove(self, name: str) -> list[Path]:
        paths = [p for p in (self.folder / unit_name(name, k) for k in ("timer", "service")) if p.exists()]
        if paths:
            self._systemctl("disable", "--now", unit_name(name, "timer"))
        for path in paths:
            path.unlink()
        if paths:
            self._systemctl("daemon-reload")
        return paths

    def listed_jobs(self) -> dict[str, str]:
        """Job name -> its timer's OnCalendar, for every batchrun timer in the folder."""
        jobs = {}
        for path in sorted(self.folder.glob(f"{PREFIX}*.timer")):
            parser = configparser.ConfigParser(interpolation=None)
            parser.read_string(path.read_text())
            jobs[path.name[len(PREFIX):-len(".timer")]] = parser.get("Timer", "OnCalendar", fallback="")
        return jobs

    def _systemctl(self, *args: str) -> None:
        if self.systemctl is None:
            return
        done = self.run([*self.systemctl, *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise UsageError(f"`{' '.join([*self.systemctl, *args])}` failed: {done.stderr.strip()}; "
                             f"the unit files are in {self.folder}")


def systemctl_answers(systemctl: Sequence[str], run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> bool:
    """Whether `systemctl --user` reaches a user manager on this machine."""
    try:
        done = run([*systemctl, "show-environment"], capture_output=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0
