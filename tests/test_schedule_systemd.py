"""The systemd service and timer: keys checked by a parse and by `systemd-analyze verify` when the machine
has it; ExecStart gives sh the night's command unchanged; the unit folder written, listed and cleaned."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from batchrun.errors import UsageError
from batchrun.schedule.nightly import Nightly, night_command
from batchrun.schedule.systemd import SystemdUser, exec_quote, service_unit, systemctl_answers, timer_unit
from batchrun.schedule.timing import parse_timing

NIGHTLY = Nightly(name="demo", spec=Path("/srv/shop/jobs/demo.yaml"), workdir=Path("/srv/shop"),
                  python=Path("/opt/venv/bin/python"), env_file=Path("/home/al/.config/batchrun/demo.env"),
                  log_dir=Path("/srv/shop/outputs/demo/logs"), run_flags=("--until", "07:00"))
TIMING = parse_timing("01:30", "mon-fri")


def parse(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # unit keys are case-sensitive
    parser.read_string(text)
    return parser


def systemd_unquote(argument: str) -> str:
    """What systemd passes on for one double-quoted ExecStart argument."""
    assert argument[0] == argument[-1] == '"'
    out, chars = [], iter(argument[1:-1])
    for char in chars:
        if char == "\\":
            out.append(next(chars))
        elif char in "%$":
            assert next(chars) == char, "a lone % or $ would be expanded by systemd"
            out.append(char)
        else:
            out.append(char)
    return "".join(out)


def test_the_service_runs_the_command_in_the_folder_with_the_env_file():
    service = parse(service_unit(NIGHTLY))["Service"]

    assert service["Type"] == "oneshot"
    assert service["WorkingDirectory"] == "/srv/shop"
    assert service["EnvironmentFile"] == "/home/al/.config/batchrun/demo.env"
    program, flag, argument = service["ExecStart"].split(" ", 2)
    assert (program, flag) == ("/bin/sh", "-c")
    assert systemd_unquote(argument) == night_command(NIGHTLY, standalone=False)
    assert "/opt/venv/bin/python -m batchrun run /srv/shop/jobs/demo.yaml --progress plain --until 07:00" in argument


def test_exec_quote_survives_quotes_backslashes_dollars_and_percents():
    command = r'''echo "$HOME" '50%' \n $(date +%F) \"'''

    assert systemd_unquote(exec_quote(command)) == command


def test_the_timer_fires_at_the_time_on_the_days_and_catches_up_after_a_night_off():
    timer = parse(timer_unit(NIGHTLY, TIMING))

    assert timer["Timer"]["OnCalendar"] == "Mon..Fri *-*-* 01:30:00"
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Timer"]["Unit"] == "batchrun-demo.service"
    assert timer["Install"]["WantedBy"] == "timers.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze on this machine")
def test_systemd_analyze_verifies_the_units(tmp_path):
    folder = tmp_path / "user"
    SystemdUser(folder, systemctl=None).install("demo", service_unit(NIGHTLY), timer_unit(NIGHTLY, TIMING))
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)

    done = subprocess.run(["systemd-analyze", "verify", "--user", str(folder / "batchrun-demo.service"),
                           str(folder / "batchrun-demo.timer")], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)})

    assert (done.returncode, done.stderr) == (0, "")


def recorder():
    calls = []

    def run(argv, **_):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    return run, calls


def test_install_writes_both_units_reloads_and_enables_the_timer(tmp_path):
    run, calls = recorder()
    user = SystemdUser(tmp_path / "user", ("sysctl-fake", "--user"), run)

    paths = user.install("demo", "S\n", "T\n")

    assert [p.name for p in paths] == ["batchrun-demo.service", "batchrun-demo.timer"]
    assert [p.read_text() for p in paths] == ["S\n", "T\n"]
    assert calls == [["sysctl-fake", "--user", "daemon-reload"],
                     ["sysctl-fake", "--user", "enable", "--now", "batchrun-demo.timer"]]


def test_remove_disables_the_timer_deletes_both_units_and_reloads(tmp_path):
    run, calls = recorder()
    user = SystemdUser(tmp_path, ("sc",), run)
    user.install("demo", service_unit(NIGHTLY), timer_unit(NIGHTLY, TIMING))
    calls.clear()

    removed = user.remove("demo")

    assert sorted(p.name for p in removed) == ["batchrun-demo.service", "batchrun-demo.timer"]
    assert list(tmp_path.iterdir()) == []
    assert calls == [["sc", "disable", "--now", "batchrun-demo.timer"], ["sc", "daemon-reload"]]
    assert user.remove("demo") == [] and len(calls) == 2  # nothing there: nothing run


def test_the_folder_lists_each_job_with_its_calendar(tmp_path):
    user = SystemdUser(tmp_path, systemctl=None)
    user.install("demo", service_unit(NIGHTLY), timer_unit(NIGHTLY, TIMING))
    (tmp_path / "someone-else.timer").write_text("[Timer]\nOnCalendar=daily\n")

    assert user.listed_jobs() == {"demo": "Mon..Fri *-*-* 01:30:00"}


def test_a_failing_systemctl_says_which_command_and_where_the_units_are(tmp_path):
    def run(argv, **_):
        return subprocess.CompletedProcess(argv, 1, "", "Failed to connect to bus\n")

    with pytest.raises(UsageError, match=r"^`sc --user daemon-reload` failed: Failed to connect to bus; the unit "
                                         r"files are in "):
        SystemdUser(tmp_path, ("sc", "--user"), run).install("demo", "S", "T")


def test_systemd_is_usable_only_when_systemctl_user_answers(tmp_path):
    assert systemctl_answers(["true"]) is True
    assert systemctl_answers(["false"]) is False
    assert systemctl_answers([str(tmp_path / "no-such-systemctl")]) is False
