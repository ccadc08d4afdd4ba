"""The output folder's lock: one writer at a time, a kernel lock its holder's death releases, its own exit code
for the one refused, and a record naming the holder."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys

import pytest

from batchrun.errors import EXIT_RUNNING, AlreadyRunning, UsageError
from batchrun.output.lock import (
    LOCK_NAME,
    LockRecord,
    acquire_lock,
    folder_lock,
    holder_record,
    lock_holder,
    lock_record,
    parse_lock_record,
    release_lock,
)

DEAD_PID = 4_194_304 + 17

HOLD = """
import sys
from pathlib import Path
from batchrun.output.lock import acquire_lock
acquire_lock(Path(sys.argv[1]))
print("held", flush=True)
sys.stdin.read()
"""


def test_the_lock_file_names_the_holder_and_is_the_only_file_beside_it_while_held(tmp_path):
    out = tmp_path / "never-made"  # a first plan's folder does not exist yet
    path = acquire_lock(out)
    record = parse_lock_record(path.read_bytes())
    assert record.pid == os.getpid()
    assert datetime.datetime.fromisoformat(record.started_at).tzinfo is not None
    assert [p.name for p in out.iterdir()] == [LOCK_NAME]
    release_lock(path)
    assert list(out.iterdir()) == []


def test_a_held_lock_is_refused_with_exit_code_9_naming_the_holders_pid_and_start(tmp_path):
    with folder_lock(tmp_path):
        started = holder_record(tmp_path).started_at
        with pytest.raises(AlreadyRunning) as refused:
            acquire_lock(tmp_path, sleep=lambda _s: None)
    assert isinstance(refused.value, UsageError)
    assert refused.value.exit_code == EXIT_RUNNING == 9
    assert str(refused.value) == (f"another batchrun run is writing {tmp_path} (pid {os.getpid()}, started "
                                  f"{started}); wait for it to end or stop it, then run again")


def test_a_refused_run_tries_again_briefly_before_giving_up(tmp_path):
    waits: list[float] = []
    with folder_lock(tmp_path), pytest.raises(AlreadyRunning):
        acquire_lock(tmp_path, sleep=waits.append)
    assert waits == [0.02, 0.02]


def test_folder_lock_releases_when_the_block_raises(tmp_path):
    with pytest.raises(RuntimeError), folder_lock(tmp_path):
        assert lock_holder(tmp_path) == os.getpid()
        raise RuntimeError("planning failed")
    assert lock_holder(tmp_path) is None
    assert not (tmp_path / LOCK_NAME).exists()


@pytest.mark.parametrize("left", [f"{DEAD_PID}\n", f"{os.getpid()}\n", "", "not json",
                                  json.dumps({"pid": DEAD_PID, "started_at": "2026-01-01T01:30:00+00:00"})])
def test_a_file_nobody_holds_a_lock_on_is_taken_whatever_it_says(tmp_path, left):
    (tmp_path / LOCK_NAME).write_text(left)
    assert lock_holder(tmp_path) is None
    with folder_lock(tmp_path):
        assert lock_holder(tmp_path) == os.getpid()


def test_a_lock_held_by_another_process_is_refused_and_freed_when_it_is_killed(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        assert lock_holder(tmp_path) == holder.pid
        with pytest.raises(AlreadyRunning, match=rf"\(pid {holder.pid}, started "):
            acquire_lock(tmp_path, sleep=lambda _s: None)
        holder.kill()  # SIGKILL: no cleanup runs, the lock file stays behind
        holder.wait()
        assert (tmp_path / LOCK_NAME).exists()
        with folder_lock(tmp_path):
            assert lock_holder(tmp_path) == os.getpid()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
        holder.stdin.close()


def test_releasing_a_lock_this_process_does_not_hold_leaves_the_file(tmp_path):
    (tmp_path / LOCK_NAME).write_text("")
    release_lock(tmp_path / LOCK_NAME)
    assert (tmp_path / LOCK_NAME).exists()


def test_the_record_round_trips_and_reads_batchrun_0_5s_bare_pid():
    started = datetime.datetime(2026, 11, 27, 1, 30, tzinfo=datetime.UTC)
    assert parse_lock_record(lock_record(42, started)) == LockRecord(42, "2026-11-27T01:30:00+00:00")
    assert parse_lock_record(b"1234\n") == LockRecord(1234)
    assert parse_lock_record(b"[1]") == LockRecord()
    assert parse_lock_record(b'{"pid": "x"}') == LockRecord()
