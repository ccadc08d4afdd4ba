"""The output folder's lock: one writer at a time, its own exit code for the one refused."""

from __future__ import annotations

import os

import pytest

from batchrun.errors import EXIT_RUNNING, AlreadyRunning, UsageError
from batchrun.output.lock import (
    LOCK_NAME,
    acquire_lock,
    folder_lock,
    lock_holder,
    release_lock,
)

DEAD_PID = 4_194_304 + 17


def test_the_lock_is_created_with_the_pid_in_it_and_no_file_beside_it(tmp_path):
    out = tmp_path / "never-made"  # a first plan's folder does not exist yet
    path = acquire_lock(out)
    assert path.read_text() == f"{os.getpid()}\n"
    assert [p.name for p in out.iterdir()] == [LOCK_NAME]
    release_lock(path)
    assert list(out.iterdir()) == []


def test_a_held_lock_is_refused_with_exit_code_9_and_a_message_saying_what_to_do(tmp_path):
    with folder_lock(tmp_path) as path:
        with pytest.raises(AlreadyRunning) as refused:
            acquire_lock(tmp_path)
        assert path.read_text() == f"{os.getpid()}\n"
    assert isinstance(refused.value, UsageError)
    assert refused.value.exit_code == EXIT_RUNNING == 9
    assert str(refused.value) == (f"another batchrun run is writing {tmp_path} (pid {os.getpid()}); "
                                  "wait for it to end or stop it, then run again")


def test_folder_lock_releases_when_the_block_raises(tmp_path):
    with pytest.raises(RuntimeError), folder_lock(tmp_path):
        assert lock_holder(tmp_path) == os.getpid()
        raise RuntimeError("planning failed")
    assert lock_holder(tmp_path) is None
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_dead_processes_lock_is_taken_over(tmp_path):
    (tmp_path / LOCK_NAME).write_text(f"{DEAD_PID}\n")
    with folder_lock(tmp_path):
        assert lock_holder(tmp_path) == os.getpid()
