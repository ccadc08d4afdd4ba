"""The live file: written when a run's pause changes (not per tick), read by status for the live pid only."""

from __future__ import annotations

import json
from pathlib import Path

from batchrun.output.live import LiveFile, live_path, read_live_pause
from batchrun.output.progress import Progress

WALL = 1_800_000_000.0  # the wall clock when the tests look at it
STORM = "a 429 storm (12 of the last 20 replies); the server asked for 45s"


def live_file(out: Path, pid: int = 4321) -> tuple[LiveFile, Progress, list[float]]:
    """A LiveFile over a Progress whose monotonic clock reads 100 when the wall clock reads WALL."""
    now = [100.0]
    progress = Progress(total=10, started=0.0, clock=lambda: now[0])
    return LiveFile(live_path(out, "run-1"), progress, pid=pid, wall=lambda: WALL + now[0] - 100.0), progress, now


def test_nothing_is_written_while_the_run_was_never_paused(tmp_path: Path) -> None:
    live, _, _ = live_file(tmp_path)
    live.sync()
    assert not (tmp_path / "runs").exists()


def test_a_pause_is_written_with_its_end_on_the_wall_clock_and_its_reason(tmp_path: Path) -> None:
    live, progress, _ = live_file(tmp_path)
    progress.pause(45.0, STORM)
    live.sync()
    document = json.loads((tmp_path / "runs" / "run-1.live.json").read_text())
    assert document == {"run_id": "run-1", "pid": 4321, "paused_until": WALL + 45.0, "pause_reason": STORM,
                        "parked": False, "written_at": WALL}
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["run-1.live.json"]  # no temporary file left


def test_the_file_is_written_again_only_when_the_pause_changes(tmp_path: Path) -> None:
    live, progress, now = live_file(tmp_path)
    path = tmp_path / "runs" / "run-1.live.json"
    progress.pause(45.0, STORM)
    live.sync()
    path.unlink()
    now[0] = 110.0
    live.sync()  # the same pause, ten seconds on: nothing to write
    assert not path.exists()
    progress.pause(45.0, STORM)  # extended to 155
    live.sync()
    assert json.loads(path.read_text())["paused_until"] == WALL + 55.0


def test_status_reads_the_pause_of_the_live_pid_until_it_ends(tmp_path: Path) -> None:
    live, progress, _ = live_file(tmp_path)
    progress.pause(45.0, STORM)
    live.sync()
    pause = read_live_pause(tmp_path, 4321, now=WALL + 3.0)
    assert pause is not None and (pause.reason, pause.left_s(WALL + 3.0)) == (STORM, 42.0)
    assert read_live_pause(tmp_path, 4321, now=WALL + 45.0) is None  # over
    assert read_live_pause(tmp_path, 999, now=WALL + 3.0) is None  # left by another (killed) run


def test_a_file_being_replaced_or_not_json_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "run-0.live.json").write_text('{"pid": 43')
    assert read_live_pause(tmp_path, 4321, now=WALL) is None


def test_the_file_is_removed_at_the_end_and_a_missing_one_is_no_error(tmp_path: Path) -> None:
    live, progress, _ = live_file(tmp_path)
    progress.pause(45.0, STORM)
    live.sync()
    live.remove()
    live.remove()
    assert list((tmp_path / "runs").iterdir()) == []


def test_a_folder_that_cannot_be_written_costs_the_run_nothing(tmp_path: Path) -> None:
    (tmp_path / "runs").write_text("a file where the runs folder should be")
    live, progress, _ = live_file(tmp_path)
    progress.pause(45.0, STORM)
    live.sync()  # no exception: status just shows no pause
    live.remove()
