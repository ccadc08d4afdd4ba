"""The crontab line of a scheduled job, and the marked block `--install` keeps in the user's crontab.

Inputs: a `Timing` and the night's command; the crontab's text as `crontab -l` prints it.
Outputs: the line; the crontab's new text with the job's block added, replaced or removed; the listed jobs.
Invariants: only lines between a job's own markers are ever changed (installing twice leaves one block);
`%`, which cron turns into a newline, is escaped. `Crontab` runs the `crontab` command given to it (tests
give a fake one through BATCHRUN_CRONTAB), never a shell.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from batchrun.errors import UsageError

from .timing import Timing, cron_fields

BEGIN = "# >>> batchrun {name} >>>"
END = "# <<< batchrun {name} <<<"
BLOCK = re.compile(r"^# >>> batchrun (\S+) >>>\n(.*?)^# <<< batchrun \1 <<<\n", re.MULTILINE | re.DOTALL)


def crontab_line(timing: Timing, command: str) -> str:
    """`30 1 * * 1-5 COMMAND`, with COMMAND's `%` escaped for cron."""
    return f"{cron_fields(timing)} {command.replace('%', chr(92) + '%')}"


def cron_block(name: str, spec: str, line: str) -> str:
    """The job's marked block: markers, a comment naming the spec, the line."""
    return "\n".join([BEGIN.format(name=name), f"# {spec}: remove with `batchrun schedule {spec} --remove`",
                      line, END.format(name=name)]) + "\n"


def with_block(crontab: str, name: str, block: str) -> str:
    """`crontab` with job `name`'s block replaced by `block` (appended when it has none)."""
    kept = without_block(crontab, name)
    return kept + ("" if not kept or kept.endswith("\n") else "\n") + block


def without_block(crontab: str, name: str) -> str:
    """`crontab` without job `name`'s block; every other line as it was."""
    return BLOCK.sub(lambda m: "" if m.group(1) == name else m.group(0), _ended(crontab))


def listed_jobs(crontab: str) -> dict[str, str]:
    """Job name -> its crontab line, for every batchrun block."""
    jobs = {}
    for match in BLOCK.finditer(_ended(crontab)):
        lines = [line for line in match.group(2).splitlines() if line and not line.startswith("#")]
        jobs[match.group(1)] = lines[0] if lines else ""
    return jobs


def _ended(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


@dataclass
class Crontab:
    """The user's crontab through the `crontab` command (`-l` to read, `-` to replace)."""

    command: Sequence[str] = ("crontab",)
    run: Callable[..., subprocess.CompletedProcess] = subprocess.run

    def read(self) -> str:
        done = self._call("-l")
        if done.returncode == 0:
            return done.stdout
        # crontab -l has no code of its own for "none yet"; only this wording means an empty crontab
        if "no crontab" in done.stderr.lower():
            return ""
        raise UsageError(f"`{' '.join(self.command)} -l` failed: {done.stderr.strip()}; fix that, or use --with systemd")

    def write(self, text: str) -> None:
        done = self._call("-", text)
        if done.returncode != 0:
            raise UsageError(f"`{' '.join(self.command)} -` refused the new crontab: {done.stderr.strip()}")

    def _call(self, flag: str, text: str | None = None) -> subprocess.CompletedProcess:
        try:
            return self.run([*self.command, flag], input=text, capture_output=True, text=True, check=False)
        except FileNotFoundError:
            raise UsageError(f"no `{self.command[0]}` command on this machine: install cron, or use "
                             f"--with systemd") from None
