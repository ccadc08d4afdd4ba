"""End to end: the disk fills up mid-run; nothing that arrived is lost or bought twice.

The run stops sending at the first failed write, holds the replies that arrived (and those still in
flight) in memory, says in one line what to free, and saves them once space is back; it ends with
exit 10, and the next run completes the job sending only what was never sent.

Two ways to fill a disk: a real 4 MiB tmpfs (needs root and mount, as in CI; skipped elsewhere), and an
injected ENOSPC (a sitecustomize module makes every image write fail while a flag file exists).
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest
from e2e_helpers import (  # noqa: F401 (serve is a fixture)
    RUN_TIMEOUT_S,
    LineReader,
    Outputs,
    batchrun,
    cli_env,
    image_job,
    run_job,
    sends_by_id,
    serve,
    start_batchrun,
    write_spec,
)

HELD = re.compile(r"replies that arrived are held in memory")

SITECUSTOMIZE = '''
import builtins, errno, os
_open = builtins.open
_flag = os.environ["BATCHRUN_TEST_DISK_FULL_FLAG"]

def _full_open(file, mode="r", *args, **kwargs):
    if "w" in mode and "/images/" in str(file) and os.path.exists(_flag):
        raise OSError(errno.ENOSPC, "No space left on device", str(file))
    return _open(file, mode, *args, **kwargs)

builtins.open = _full_open
'''


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    if os.geteuid() != 0 or not _mount_tmpfs(disk, "4m"):
        pytest.skip("needs root and `mount -t tmpfs` (CI runs it as root); the injected-ENOSPC test covers the rest")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(disk: Path, leave_bytes: int) -> Path:
    """Fill `disk` up to `leave_bytes` of free space with one file; return it."""
    filler = disk / "filler"
    with open(filler, "wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize
    os.truncate(filler, max(0, filler.stat().st_size + free - leave_bytes))
    return filler


def _run_until_held(tmp_path: Path, spec: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, LineReader]:
    process = start_batchrun(tmp_path, "run", str(spec), "--progress", "plain", "--write-wait", "60", env=env)
    reader = LineReader(process.stderr)
    reader.wait_for(HELD, RUN_TIMEOUT_S)
    return process, reader


def _assert_stopped_with_one_line_and_everything_saved(process: subprocess.Popen, reader: LineReader) -> None:
    assert process.wait(timeout=RUN_TIMEOUT_S) == 10
    text = reader.text()
    assert "Traceback" not in text
    last = text.strip().splitlines()[-1]
    assert last.startswith("batchrun: error: run stopped: could not write ")  # a file, or "in FOLDER"
    assert "No space left on device (ENOSPC); the disk is full: free space on it" in last
    assert "every reply that arrived is saved" in last


def _assert_completes_without_buying_anything_twice(tmp_path: Path, spec: Path, simulator, folder: Path) -> None:
    again = run_job(tmp_path, spec)
    assert again.returncode == 0, again.stderr
    job = Outputs(folder, tmp_path / "jobs")
    rows = {r["row_id"]: r for r in job.rows()}
    assert len(rows) == 8 and {r["status"] for r in rows.values()} == {"ok"}
    assert all((folder / r["image_path"]).is_file() for r in rows.values())
    assert sends_by_id(simulator.requests(), job.body_hashes()) == dict.fromkeys(job.ids, 1)


def test_a_real_full_disk_stops_the_run_keeps_what_arrived_and_the_next_run_completes(tmp_path, serve, small_disk):
    simulator = serve(profile="clean")
    out = small_disk / "out"
    spec = write_spec(tmp_path, image_job("full", simulator.url, tmp_path, photos=4, scenes=2, size="1K",
                                          output={"dir": str(out)}))
    assert batchrun(tmp_path, "plan", str(spec)).returncode == 0
    filler = _fill(small_disk, leave_bytes=160_000)  # room for about two 1K images and the journal

    process, reader = _run_until_held(tmp_path, spec)
    filler.unlink()

    _assert_stopped_with_one_line_and_everything_saved(process, reader)
    _assert_completes_without_buying_anything_twice(tmp_path, spec, simulator, out)


def test_an_injected_enospc_stops_the_run_keeps_what_arrived_and_the_next_run_completes(tmp_path, serve):
    simulator = serve(profile="clean")
    spec = write_spec(tmp_path, image_job("enospc", simulator.url, tmp_path, photos=4, scenes=2))
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
    flag = tmp_path / f"disk-full-{uuid.uuid4().hex}"
    flag.touch()
    env = cli_env(PYTHONPATH=str(hooks), BATCHRUN_TEST_DISK_FULL_FLAG=str(flag))

    process, reader = _run_until_held(tmp_path, spec, env=env)
    sent_while_full = len(simulator.requests())
    flag.unlink()

    _assert_stopped_with_one_line_and_everything_saved(process, reader)
    assert sent_while_full < 8  # it stopped sending: the rest are sent by the next run
    _assert_completes_without_buying_anything_twice(tmp_path, spec, simulator, tmp_path / "outputs" / "enospc")


def test_a_read_only_output_folder_is_one_line_and_nothing_is_sent(tmp_path, serve):
    if os.geteuid() == 0:
        pytest.skip("root writes through a read-only mode; the full-disk tests cover the stop")
    simulator = serve(profile="clean")
    spec = write_spec(tmp_path, image_job("readonly", simulator.url, tmp_path, photos=1, scenes=1))
    assert batchrun(tmp_path, "plan", str(spec)).returncode == 0
    folder = tmp_path / "outputs" / "readonly"
    folder.chmod(0o555)
    try:
        done = run_job(tmp_path, spec)
    finally:
        folder.chmod(0o755)
    assert done.returncode in (2, 10)
    assert "Traceback" not in done.stderr and simulator.requests() == []
