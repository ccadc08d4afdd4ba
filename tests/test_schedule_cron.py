"""The crontab line and the marked block: installing twice leaves one block, removing leaves every other line."""

from __future__ import annotations

import subprocess

import pytest

from batchrun.errors import UsageError
from batchrun.schedule.cron import Crontab, cron_block, crontab_line, listed_jobs, with_block, without_block
from batchrun.schedule.timing import parse_timing

THEIRS = "MAILTO=me@example.com\n0 5 * * * /usr/bin/backup --all\n"


def test_the_line_escapes_percent_which_cron_would_turn_into_a_newline():
    line = crontab_line(parse_timing("01:30", "mon-fri"), "echo $(date +%Y-%m-%d)")

    assert line == r"30 1 * * 1-5 echo $(date +\%Y-\%m-\%d)"


def test_a_block_is_appended_after_the_users_own_lines():
    block = cron_block("demo", "/p/jobs/demo.yaml", "30 1 * * * run demo")

    assert with_block(THEIRS, "demo", block) == THEIRS + (
        "# >>> batchrun demo >>>\n"
        "# /p/jobs/demo.yaml: remove with `batchrun schedule /p/jobs/demo.yaml --remove`\n"
        "30 1 * * * run demo\n"
        "# <<< batchrun demo <<<\n")


def test_installing_again_replaces_the_block_instead_of_adding_one():
    first = with_block(THEIRS.rstrip("\n"), "demo", cron_block("demo", "s", "30 1 * * * old"))
    other = with_block(first, "other", cron_block("other", "s", "0 3 * * * other"))

    again = with_block(other, "demo", cron_block("demo", "s", "45 2 * * * new"))

    assert listed_jobs(again) == {"other": "0 3 * * * other", "demo": "45 2 * * * new"}
    assert again.count(">>> batchrun demo >>>") == 1
    assert again.startswith(THEIRS)


def test_removing_a_block_keeps_every_other_line():
    crontab = with_block(with_block(THEIRS, "demo", cron_block("demo", "s", "30 1 * * * a")),
                         "demo2", cron_block("demo2", "s", "0 2 * * * b"))

    assert without_block(crontab, "demo") == with_block(THEIRS, "demo2", cron_block("demo2", "s", "0 2 * * * b"))
    assert without_block(without_block(crontab, "demo"), "demo2") == THEIRS
    assert without_block(THEIRS, "demo") == THEIRS


def test_an_empty_crontab_lists_no_jobs():
    assert listed_jobs("") == {}
    assert with_block("", "demo", "B\n") == "B\n"


def answers(code: int, stdout: str = "", stderr: str = ""):
    calls = []

    def run(argv, **kwargs):
        calls.append((argv, kwargs.get("input")))
        return subprocess.CompletedProcess(argv, code, stdout, stderr)

    return run, calls


def test_crontab_reads_with_l_and_writes_with_dash():
    run, calls = answers(0, stdout=THEIRS)
    crontab = Crontab(["fake-crontab"], run)

    assert crontab.read() == THEIRS
    crontab.write("X\n")
    assert calls == [(["fake-crontab", "-l"], None), (["fake-crontab", "-"], "X\n")]


def test_no_crontab_yet_reads_as_empty():
    run, _ = answers(1, stderr="no crontab for alice\n")

    assert Crontab(["crontab"], run).read() == ""


def test_another_crontab_failure_is_an_error_not_an_empty_crontab():
    run, _ = answers(1, stderr="crontab: your UID isn't in the passwd file. bailing out.\n")

    with pytest.raises(UsageError, match=r"`crontab -l` failed: .*bailing out.; fix that, or use --with systemd"):
        Crontab(["crontab"], run).read()


def test_a_missing_crontab_command_says_to_install_cron_or_use_systemd():
    with pytest.raises(UsageError, match=r"^no `no-such-crontab-x` command on this machine: install cron, or "
                                         r"use --with systemd$"):
        Crontab(["no-such-crontab-x"]).read()
