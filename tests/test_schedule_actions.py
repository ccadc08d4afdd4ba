"""`schedule`'s actions on injected places: the env file (0600, the variable's name only), install with
cron or systemd (idempotent), list, remove — never the user's real crontab or unit folder."""

from __future__ import annotations

import argparse
import stat
import subprocess
from pathlib import Path

import pytest

from batchrun.errors import UsageError
from batchrun.schedule.actions import Places, Scheduler, install, list_schedules, remove, schedule_text
from batchrun.schedule.command import run_schedule
from batchrun.schedule.cron import Crontab
from batchrun.schedule.envfile import create_env_file, env_file_text
from batchrun.schedule.nightly import Nightly
from batchrun.schedule.systemd import SystemdUser
from batchrun.schedule.timing import parse_timing

TIMING = parse_timing("01:30", "mon-fri")


class FakeCrontab(Crontab):
    """A crontab held in memory."""

    def __init__(self, text: str | None = None) -> None:
        super().__init__(("crontab",))
        self.text, self.writes = text, 0

    def read(self) -> str:
        return self.text or ""

    def write(self, text: str) -> None:
        self.text, self.writes = text, self.writes + 1


def places_in(tmp_path: Path, crontab: str | None = None, systemd_works: bool = False) -> Places:
    calls: list[list[str]] = []

    def run(argv, **_):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    places = Places(tmp_path / "home", FakeCrontab(crontab), SystemdUser(tmp_path / "units", ("sc",), run),
                    systemd_works)
    places.calls = calls  # type: ignore[attr-defined]
    return places


def nightly_in(tmp_path: Path) -> Nightly:
    return Nightly(name="demo", spec=tmp_path / "jobs/demo.yaml", workdir=tmp_path, python=Path("/venv/bin/python"),
                   env_file=tmp_path / "home/.config/batchrun/demo.env", log_dir=tmp_path / "outputs/demo/logs")


def test_the_env_file_is_0600_in_a_0700_folder_and_names_the_variable_without_a_value(tmp_path):
    path = tmp_path / "config" / "batchrun" / "demo.env"

    assert create_env_file(path, env_file_text("demo", "GEMINI_API_KEY")) is True

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [line for line in path.read_text().splitlines() if not line.startswith("#")] == ["GEMINI_API_KEY="]


def test_an_existing_env_file_is_never_overwritten(tmp_path):
    path = tmp_path / "demo.env"
    path.write_text("GEMINI_API_KEY=the-users-key\n")

    assert create_env_file(path, env_file_text("demo", "GEMINI_API_KEY")) is False
    assert path.read_text() == "GEMINI_API_KEY=the-users-key\n"


def test_printing_writes_nothing(tmp_path):
    places = places_in(tmp_path)

    text = schedule_text(nightly_in(tmp_path), TIMING, "GEMINI_API_KEY", places)

    assert "30 1 * * 1-5 cd " in text and "OnCalendar=Mon..Fri *-*-* 01:30:00" in text
    assert f"put GEMINI_API_KEY=YOUR_KEY in {tmp_path}/home/.config/batchrun/demo.env" in text
    assert not (tmp_path / "home").exists() and not (tmp_path / "units").exists()
    assert places.crontab.writes == 0 and places.calls == []


def test_installing_with_cron_twice_leaves_one_block_and_the_users_lines(tmp_path):
    places = places_in(tmp_path, crontab="0 5 * * * backup\n")

    for _ in range(2):
        install(nightly_in(tmp_path), TIMING, "GEMINI_API_KEY", places, Scheduler.CRON)

    assert places.crontab.text.startswith("0 5 * * * backup\n# >>> batchrun demo >>>\n")
    assert places.crontab.text.count("batchrun demo >>>") == 1
    assert (tmp_path / "home/.config/batchrun/demo.env").exists()
    assert places.calls == []  # systemd untouched


def test_installing_with_systemd_writes_the_units_and_enables_the_timer(tmp_path):
    places = places_in(tmp_path, crontab="")

    said = install(nightly_in(tmp_path), TIMING, "GEMINI_API_KEY", places, Scheduler.SYSTEMD)

    assert sorted(p.name for p in (tmp_path / "units").iterdir()) == ["batchrun-demo.service", "batchrun-demo.timer"]
    assert places.calls[-1] == ["sc", "enable", "--now", "batchrun-demo.timer"]
    assert places.crontab.writes == 0
    assert said.splitlines()[0] == (f"created {tmp_path}/home/.config/batchrun/demo.env (mode 0600): put your key "
                                    "after GEMINI_API_KEY= in it")


def test_an_env_file_others_can_read_is_pointed_out(tmp_path):
    path = tmp_path / "home/.config/batchrun/demo.env"
    path.parent.mkdir(parents=True)
    path.write_text("GEMINI_API_KEY=\n")
    path.chmod(0o644)

    said = install(nightly_in(tmp_path), TIMING, "GEMINI_API_KEY", places_in(tmp_path), Scheduler.CRON)

    assert said.splitlines()[0] == f"warning: {path} can be read by others: chmod 600 {path}"


def test_list_shows_both_places_and_remove_empties_them(tmp_path):
    places = places_in(tmp_path)
    for scheduler in Scheduler:
        install(nightly_in(tmp_path), TIMING, None, places, scheduler)

    listed = list_schedules(places).splitlines()
    said = remove("demo", places, None)

    assert listed[0] == "systemd  demo  Mon..Fri *-*-* 01:30:00"
    assert listed[1].startswith("cron     demo  30 1 * * 1-5 cd ")
    assert "removed job demo from your crontab" in said
    assert list_schedules(places).startswith("no batchrun jobs scheduled")
    assert (tmp_path / "home/.config/batchrun/demo.env").exists()  # the key stays


def test_removing_a_job_not_scheduled_says_how_to_list(tmp_path):
    with pytest.raises(UsageError, match=r"^job demo is not scheduled here; `batchrun schedule --list` shows what is$"):
        remove("demo", places_in(tmp_path), None)


@pytest.mark.parametrize("works, expected", [(True, Scheduler.SYSTEMD), (False, Scheduler.CRON)])
def test_the_default_is_systemd_when_systemctl_user_works_else_cron(tmp_path, works, expected):
    assert places_in(tmp_path, systemd_works=works).default_scheduler() is expected


def args(**given) -> argparse.Namespace:
    defaults = dict(spec=None, at=None, until=None, days=None, tier=None, wait_quota=False, install=False,
                    with_=None, list=False, remove=False)
    return argparse.Namespace(**{**defaults, **given})


@pytest.mark.parametrize("given, message", [
    (dict(), r"^name a job spec, e.g. batchrun schedule jobs/demo.yaml --at 01:30, or use --list$"),
    (dict(spec=Path("j.yaml")), r"^--at HH:MM is missing"),
    (dict(spec=Path("j.yaml"), at="01:30", until="7"), r"^--until 7: give a local time as HH:MM"),
    (dict(spec=Path("j.yaml"), at="01:30", tier="cheap"), r"^--tier cheap: "),
])
def test_bad_flags_are_one_line_errors_before_the_spec_is_read(tmp_path, given, message):
    with pytest.raises(UsageError, match=message):
        run_schedule(args(**given), places_in(tmp_path))


def test_remove_takes_a_deleted_specs_path_or_the_job_name(tmp_path):
    places = places_in(tmp_path)
    for name in ("gone", "v1.2"):
        nightly = nightly_in(tmp_path)
        install(Nightly(**{**nightly.__dict__, "name": name}), TIMING, None, places, Scheduler.CRON)

    run_schedule(args(spec=Path("jobs/gone.yaml"), remove=True), places)
    run_schedule(args(spec=Path("v1.2"), remove=True), places)

    assert list_schedules(places).startswith("no batchrun jobs scheduled")


def test_a_key_pool_s_env_file_holds_every_variable_and_the_notes_name_them(tmp_path):
    path = tmp_path / "pool.env"
    assert create_env_file(path, env_file_text("pool", ("POOL_A", "POOL_B", "POOL_C"))) is True
    assert [line for line in path.read_text().splitlines() if not line.startswith("#")] == ["POOL_A=", "POOL_B=", "POOL_C="]
    text = schedule_text(nightly_in(tmp_path), TIMING, ("POOL_A", "POOL_B"), places_in(tmp_path))
    assert "put POOL_A=YOUR_KEY and POOL_B=YOUR_KEY in" in text
