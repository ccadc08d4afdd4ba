"""End to end: `batchrun run --ray local:2` against the simulator as a real server.

A real local Ray cluster of two worker processes; the CLI as a subprocess. A job ends with one final
row per request, also one dealt in several shards per worker; a worker process killed mid-run loses
nothing (its requests are sent by the other worker, none is written twice); without Ray, --ray exits 2 with one line saying what to install.
Starting a Ray cluster takes seconds on a loaded machine: the tests are few and their jobs small.
"""

from __future__ import annotations

import os
import re
import signal
from collections import Counter

import pytest
from e2e_helpers import (  # noqa: F401 (serve is a fixture)
    RUN_TIMEOUT_S,
    batchrun,
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

CLUSTER_TIMEOUT_S = 240.0  # a Ray cluster's start alone can take half a minute on a loaded 2-core machine
STARTED = re.compile(r"Ray (worker-\d+) started \(pid (\d+)\)")


def needs_ray() -> None:
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'batchrun[ray]' runs these tests")


def final_rows_by_request(folder, name) -> Counter:
    return Counter(row["request_id"] for row in outputs(folder, name).rows())


def test_a_job_on_a_local_cluster_of_two_workers_ends_with_one_ok_row_per_request(tmp_path, serve):
    needs_ray()
    simulator = serve(profile="clean")
    spec = write_spec(tmp_path, text_job("ray-two", simulator.url, 24))

    done = run_job(tmp_path, spec, "--ray", "local:2", timeout_s=CLUSTER_TIMEOUT_S)

    assert done.returncode == 0, done.stderr
    assert "Ray cluster local:2: 2 workers" in done.stderr
    out = outputs(tmp_path, "ray-two")
    assert final_rows_by_request(tmp_path, "ray-two") == Counter(out.ids)
    assert {row["status"] for row in out.rows()} == {"ok"}


def test_a_job_of_many_shards_per_worker_is_dealt_as_the_workers_need_it_and_ends_with_one_ok_row_each(tmp_path,
                                                                                                         serve):
    needs_ray()
    simulator = serve(profile="clean")
    # concurrency 4 on two workers: shards of 64, so 300 requests are dealt in five shards and refills
    spec = write_spec(tmp_path, text_job("ray-shards", simulator.url, 300, limits={"concurrency": 4}))

    done = run_job(tmp_path, spec, "--ray", "local:2", timeout_s=CLUSTER_TIMEOUT_S)

    assert done.returncode == 0, done.stderr
    out = outputs(tmp_path, "ray-shards")
    assert len(out.ids) == 300
    assert final_rows_by_request(tmp_path, "ray-shards") == Counter(out.ids)
    assert {row["status"] for row in out.rows()} == {"ok"}


def test_a_worker_process_killed_mid_run_loses_nothing_and_the_other_worker_finishes_the_job(tmp_path, serve):
    needs_ray()
    simulator = serve(faults="slow.yaml")  # 200 ms a reply: the run is still sending when the worker dies
    spec = write_spec(tmp_path, text_job("ray-kill", simulator.url, 60, limits={"concurrency": 4}))
    stderr = tmp_path / "stderr.txt"
    process = start_batchrun(tmp_path, "run", str(spec), "--progress", "plain", "--ray", "local:2", stderr=stderr)
    try:
        wait_until(lambda: len(STARTED.findall(stderr.read_text())) == 2, process, "both workers started",
                   timeout_s=CLUSTER_TIMEOUT_S)
        victim, pid = STARTED.findall(stderr.read_text())[0]
        wait_for_results(tmp_path, "ray-kill", 6, process)
        os.kill(int(pid), signal.SIGKILL)
        code = process.wait(timeout=CLUSTER_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=RUN_TIMEOUT_S)

    text = stderr.read_text()
    assert code == 0, text
    assert f"Ray {victim} was lost" in text
    out = outputs(tmp_path, "ray-kill")
    assert final_rows_by_request(tmp_path, "ray-kill") == Counter(out.ids)  # one row each: none twice, none lost
    assert {row["status"] for row in out.rows()} == {"ok"}


def test_ray_without_ray_installed_exits_2_with_one_line_saying_what_to_install(tmp_path):
    hidden = tmp_path / "no-ray"
    (hidden / "ray").mkdir(parents=True)
    (hidden / "ray" / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    spec = write_spec(tmp_path, text_job("ray-missing", "http://127.0.0.1:9", 2))

    done = batchrun(tmp_path, "run", str(spec), "--ray", "local:2", env=cli_env(PYTHONPATH=str(hidden)))

    assert done.returncode == 2
    assert done.stderr.strip() == "batchrun: error: --ray needs Ray: pip install 'batchrun[ray]' (or run without --ray)"
    assert not (tmp_path / "outputs" / "ray-missing").exists()
