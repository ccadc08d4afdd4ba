"""The night's shell command: absolute quoted paths, one log a night, expected exit codes end quietly.

The command is run by `sh` with a stand-in for Python that exits with a chosen code, so the exit mapping
is checked as cron would see it: the exit code, and whether anything is printed (cron mails output).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

import pytest

from batchrun.schedule.nightly import QUIET_EXITS, Nightly, night_command, run_flags


def nightly_in(tmp_path: Path, python: Path, flags: tuple[str, ...] = ()) -> Nightly:
    work = tmp_path / "my project"  # a space: every path must be quoted
    work.mkdir(exist_ok=True)
    env_file = tmp_path / "home" / "job.env"
    env_file.parent.mkdir(exist_ok=True)
    env_file.write_text("GEMINI_API_KEY=k-123\n")
    return Nightly(name="job", spec=work / "jobs" / "job.yaml", workdir=work, python=python, env_file=env_file,
                   log_dir=work / "outputs" / "job" / "logs", run_flags=flags)


def fake_python(tmp_path: Path, code: int) -> Path:
    """A stand-in for Python: prints its folder, key and arguments, exits `code`."""
    path = tmp_path / f"python-{code}"
    path.write_text(f'#!/bin/sh\necho "cwd=$(pwd) key=$GEMINI_API_KEY args=$*"\nexit {code}\n')
    path.chmod(0o755)
    return path


def run_as_cron(command: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["/bin/sh", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)})


def test_run_flags_pass_until_tier_and_wait_quota_on():
    assert run_flags("07:00", "flex", True) == ("--until", "07:00", "--tier", "flex", "--wait-quota")
    assert run_flags(None, None, False) == ()


def test_a_window_bounds_the_runs_length_so_a_late_start_does_not_run_into_the_next_morning():
    assert run_flags("07:00", None, False, 330) == ("--until", "07:00", "--max-duration", "330m")


def test_the_command_runs_the_spec_in_its_folder_with_the_key_and_logs_the_night(tmp_path):
    nightly = nightly_in(tmp_path, fake_python(tmp_path, 0), ("--until", "07:00"))

    done = run_as_cron(night_command(nightly), cwd=tmp_path)

    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    log = nightly.log_dir / f"run-{dt.date.today():%Y-%m-%d}.log"
    assert log.read_text() == (f"cwd={nightly.workdir} key=k-123 args=-m batchrun run {nightly.spec} "
                               f"--progress plain --until 07:00\n")


@pytest.mark.parametrize("code", QUIET_EXITS)
def test_an_expected_exit_ends_with_0_and_prints_nothing(tmp_path, code):
    done = run_as_cron(night_command(nightly_in(tmp_path, fake_python(tmp_path, code))), cwd=tmp_path)

    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


@pytest.mark.parametrize("code", [2, 3, 4, 6, 7, 10, 11, 12])
def test_any_other_exit_is_kept_and_prints_one_line_naming_the_log(tmp_path, code):
    nightly = nightly_in(tmp_path, fake_python(tmp_path, code))

    done = run_as_cron(night_command(nightly), cwd=tmp_path)

    log = nightly.log_dir / f"run-{dt.date.today():%Y-%m-%d}.log"
    assert done.returncode == code
    assert done.stderr == f"batchrun schedule: job job exited {code}; see {log}\n"


def test_two_runs_of_a_night_append_to_one_log(tmp_path):
    nightly = nightly_in(tmp_path, fake_python(tmp_path, 0))

    for _ in range(2):
        run_as_cron(night_command(nightly), cwd=tmp_path)

    assert len(list(nightly.log_dir.iterdir())) == 1
    assert len(next(nightly.log_dir.iterdir()).read_text().splitlines()) == 2


def test_without_standalone_the_command_neither_enters_the_folder_nor_reads_the_env_file(tmp_path):
    nightly = nightly_in(tmp_path, fake_python(tmp_path, 0))

    command = night_command(nightly, standalone=False)

    assert "cd " not in command and str(nightly.env_file) not in command
    assert os.fspath(nightly.log_dir) in command
