"""End to end: `batchrun schedule` installed with a stand-in crontab and a temporary systemd folder, and
the crontab line it wrote run as cron runs it — `env -i` with PATH=/usr/bin:/bin and HOME only, the key
from the env file, from another folder — against the simulator as a real server."""

from __future__ import annotations

import datetime as dt
import re
import stat
import subprocess
from pathlib import Path

from e2e_helpers import (  # noqa: F401 (serve is a fixture)
    FAKE_KEY,
    KEY_ENV,
    RUN_TIMEOUT_S,
    assert_no_key,
    batchrun,
    cli_env,
    outputs,
    serve,
    text_job,
    write_spec,
)


def fake_crontab(tmp_path: Path) -> tuple[Path, Path]:
    """A `crontab` command keeping the crontab in a file; (the command, the file)."""
    table, command = tmp_path / "crontab.txt", tmp_path / "bin" / "crontab"
    command.parent.mkdir()
    command.write_text(f'#!/bin/sh\ncase "$1" in\n  -l) cat "{table}" 2>/dev/null || '
                       f'{{ echo "no crontab for you" >&2; exit 1; }} ;;\n  -) cat > "{table}" ;;\nesac\n')
    command.chmod(0o755)
    return command, table


def schedule_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return cli_env(key=None, **{"HOME": str(tmp_path / "home"), "BATCHRUN_SYSTEMCTL": "false", **extra})


def as_cron_runs(line: str, cwd: Path, home: Path) -> subprocess.CompletedProcess:
    """Run a crontab line's command as cron does: `\\%` is `%`, /bin/sh, only PATH, HOME and SHELL set."""
    command = line.split(" ", 5)[5].replace("\\%", "%")
    return subprocess.run(["/usr/bin/env", "-i", "PATH=/usr/bin:/bin", f"HOME={home}", "SHELL=/bin/sh",
                           "/bin/sh", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def test_the_installed_crontab_line_runs_the_job_as_cron_would_and_ends_0(tmp_path, serve):
    simulator = serve(profile="clean")
    project, elsewhere, home = tmp_path / "shop", tmp_path / "elsewhere", tmp_path / "home"
    project.mkdir(), elsewhere.mkdir()
    spec = write_spec(project, text_job("nightly", simulator.url, 6))
    command, table = fake_crontab(tmp_path)
    until = (dt.datetime.now() - dt.timedelta(minutes=1)).strftime("%H:%M")  # the deadline is a day away

    installed = batchrun(project, "schedule", str(spec), "--at", "01:30", "--until", until, "--install",
                         "--with", "cron", env=schedule_env(tmp_path, BATCHRUN_CRONTAB=str(command)))

    assert installed.returncode == 0, installed.stderr
    env_file = home / ".config" / "batchrun" / "nightly.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert [line for line in env_file.read_text().splitlines() if not line.startswith("#")] == [f"{KEY_ENV}="]
    line = next(line for line in table.read_text().splitlines() if not line.startswith("#"))
    assert line.startswith(f"30 1 * * * cd {project} && ") and f"--until {until}" in line

    env_file.write_text(env_file.read_text().replace(f"{KEY_ENV}=", f"{KEY_ENV}={FAKE_KEY}"))  # as the user would
    night = as_cron_runs(line, cwd=elsewhere, home=home)

    assert (night.returncode, night.stdout, night.stderr) == (0, "", "")
    assert {row["status"] for row in outputs(project, "nightly").rows()} == {"ok"}
    logs = list((project / "outputs" / "nightly" / "logs").glob("run-*.log"))
    assert [re.fullmatch(r"run-\d{4}-\d{2}-\d{2}\.log", log.name) is not None for log in logs] == [True]
    assert "Traceback" not in logs[0].read_text()
    assert list(elsewhere.iterdir()) == []  # nothing written where cron started it
    assert_no_key(project / "outputs", installed.stdout, installed.stderr, table.read_text())


def test_a_night_without_the_key_prints_one_line_cron_mails_and_keeps_the_code(tmp_path, serve):
    simulator = serve(profile="clean")
    project = tmp_path / "shop"
    project.mkdir()
    spec = write_spec(project, text_job("nokey", simulator.url, 2))
    command, table = fake_crontab(tmp_path)
    batchrun(project, "schedule", str(spec), "--at", "02:00", "--install", "--with", "cron",
             env=schedule_env(tmp_path, BATCHRUN_CRONTAB=str(command)))
    line = next(line for line in table.read_text().splitlines() if not line.startswith("#"))

    night = as_cron_runs(line, cwd=tmp_path, home=tmp_path / "home")

    assert night.returncode not in (0, 5, 8, 9, 13)
    assert re.fullmatch(rf"batchrun schedule: job nokey exited {night.returncode}; see "
                        rf"{re.escape(str(project))}/outputs/nokey/logs/run-[0-9-]+\.log\n", night.stderr)
    assert simulator.requests() == []


def test_install_list_and_remove_with_systemd_in_a_temporary_folder(tmp_path):
    project, units = tmp_path / "shop", tmp_path / "units"
    project.mkdir()
    spec = write_spec(project, text_job("timer", "http://127.0.0.1:9", 2))
    calls = tmp_path / "systemctl.txt"
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(f'#!/bin/sh\necho "$*" >> "{calls}"\n')
    systemctl.chmod(0o755)
    command, table = fake_crontab(tmp_path)
    env = schedule_env(tmp_path, BATCHRUN_SYSTEMD_DIR=str(units), BATCHRUN_SYSTEMCTL=str(systemctl),
                       BATCHRUN_CRONTAB=str(command))

    installed = batchrun(project, "schedule", str(spec), "--at", "01:30", "--days", "mon-fri", "--install", env=env)
    listed = batchrun(tmp_path, "schedule", "--list", env=env)
    removed = batchrun(tmp_path, "schedule", "timer", "--remove", env=env)
    after = batchrun(tmp_path, "schedule", "--list", env=env)

    assert installed.returncode == 0, installed.stderr  # systemctl answers: systemd is the default
    assert listed.stdout == "systemd  timer  Mon..Fri *-*-* 01:30:00\n"
    assert removed.returncode == 0 and list(units.iterdir()) == []
    assert after.stdout.startswith("no batchrun jobs scheduled")
    assert calls.read_text().splitlines() == ["show-environment", "daemon-reload", "enable --now batchrun-timer.timer",
                                              "show-environment", "show-environment",
                                              "disable --now batchrun-timer.timer", "daemon-reload", "show-environment"]
    assert not table.exists()  # the crontab was never written
