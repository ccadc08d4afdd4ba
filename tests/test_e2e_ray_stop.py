"""End to end: stopping a run on a Ray cluster (SIGTERM, or Ctrl-C reaching the whole process group).

A real local cluster of two worker processes against the simulator as a real server, the CLI as a
subprocess. A stopped run exits 130, keeps every reply that arrived, leaves no Ray worker process behind,
and the next `batchrun run` finishes the job with one final row per request.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from e2e_helpers import (  # noqa: F401 (serve is a fixture)
    RUN_TIMEOUT_S,
    cli_env,
    outputs,
    run_job,
    serve,
    start_batchrun,
    text_job,
    wait_for_results,
    wait_until,
    write_spec,
)
from test_e2e_ray import CLUSTER_TIMEOUT_S, STARTED, final_rows_by_request, needs_ray

REQUESTS = 60


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return _state(pid) != "Z"  # a zombie has ended; only its parent's wait is missing


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "Z"


def stop_mid_run(tmp_path, simulator, name: str, send_stop) -> tuple[int, str, list[int]]:
    """Start a cluster run, wait for both workers and a few results, call `send_stop(process)`; return the
    exit code, stderr and the workers' pids."""
    spec = write_spec(tmp_path, text_job(name, simulator.url, REQUESTS, limits={"concurrency": 4}))
    stderr = tmp_path / "stderr.txt"
    process = start_group(tmp_path, spec, stderr)
    try:
        wait_until(lambda: len(STARTED.findall(stderr.read_text())) == 2, process, "both workers started",
                   timeout_s=CLUSTER_TIMEOUT_S)
        wait_for_results(tmp_path, name, 4, process)
        send_stop(process)
        code = process.wait(timeout=CLUSTER_TIMEOUT_S)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=RUN_TIMEOUT_S)
    text = stderr.read_text()
    return code, text, [int(pid) for _, pid in STARTED.findall(text)]


def start_group(folder, spec, stderr) -> subprocess.Popen:
    """`batchrun run SPEC --ray local:2` as the leader of its own process group, as a shell runs it."""
    if sys.platform != "linux":
        pytest.skip("process groups and /proc: Linux only")
    with open(stderr, "w") as err:
        return subprocess.Popen([sys.executable, "-m", "batchrun", "run", str(spec), "--progress", "plain",
                                 "--ray", "local:2"], cwd=folder, stdout=subprocess.DEVNULL, stderr=err,
                                text=True, env=cli_env(), start_new_session=True)


def check_stopped_and_resumable(tmp_path, name: str, code: int, text: str, workers: list[int]) -> None:
    assert code == 130, text
    assert "Traceback" not in text
    ended_by = time.monotonic() + RUN_TIMEOUT_S  # Ray reaps its workers a moment after the driver exits
    while any(alive(pid) for pid in workers) and time.monotonic() < ended_by:
        time.sleep(0.2)
    assert [pid for pid in workers if alive(pid)] == [], "Ray worker processes outlived the run"
    kept = sum(final_rows_by_request(tmp_path, name).values())
    assert 4 <= kept < REQUESTS  # what arrived is kept, and the run did stop early

    spec = tmp_path / "jobs" / f"{name}.yaml"
    again = run_job(tmp_path, spec)
    assert again.returncode == 0, again.stderr
    out = outputs(tmp_path, name)
    assert final_rows_by_request(tmp_path, name) == Counter(out.ids)  # one row each: none twice, none lost
    assert {row["status"] for row in out.rows()} == {"ok"}


def test_sigterm_stops_every_worker_keeps_what_arrived_and_the_next_run_finishes(tmp_path, serve):
    needs_ray()
    simulator = serve(faults="slow.yaml")  # 200 ms a reply: the run is still sending when it is stopped
    name = "ray-term"
    code, text, workers = stop_mid_run(tmp_path, simulator, name, lambda p: p.send_signal(signal.SIGTERM))
    check_stopped_and_resumable(tmp_path, name, code, text, workers)


def test_ctrl_c_to_the_whole_process_group_stops_the_cluster_cleanly(tmp_path, serve):
    needs_ray()
    simulator = serve(faults="slow.yaml")
    name = "ray-int"
    code, text, workers = stop_mid_run(tmp_path, simulator, name, lambda p: os.killpg(p.pid, signal.SIGINT))
    check_stopped_and_resumable(tmp_path, name, code, text, workers)
