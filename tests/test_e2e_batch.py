"""End to end: `batchrun run --tier batch`, the real CLI against `batchrun simulate` as a real server.

The faults file's `batch: {pending_s, running_s}` makes the simulator's batch clock fast. A run makes one
pass: it submits what is pending and exits 13 while batches run; the next run collects what is done.
The tests call the CLI again until it exits 0 (a bounded number of runs, each waiting on its own end,
never on the wall clock), and read the simulator's request log: each request answered once (`batch.line`).
"""

from __future__ import annotations

import hashlib
import json
import signal
from collections import Counter

from e2e_helpers import (
    batchrun,
    image_job,
    outputs,
    run_job,
    sends_by_id,
    start_batchrun,
    start_simulator,
    text_job,
    wait_until,
    write_faults,
    write_spec,
)

EXIT_BATCHES_RUNNING = 13
MAX_RUNS = 30


def runs_until_done(folder, spec, *extra: str) -> list[int]:
    """`batchrun run SPEC --tier batch` again and again until it exits other than 13; the exit codes."""
    codes: list[int] = []
    for _ in range(MAX_RUNS):
        result = run_job(folder, spec, "--tier", "batch", *extra)
        codes.append(result.returncode)
        if result.returncode != EXIT_BATCHES_RUNNING:
            assert result.returncode == 0, result.stderr
            return codes
    raise AssertionError(f"still running after {MAX_RUNS} runs")


def fast_batch_simulator(folder):
    """`batchrun simulate` whose batches end within a second of their creation."""
    faults = write_faults(folder, "fastbatch", {"batch": {"pending_s": 0.2, "running_s": 0.5}})
    return start_simulator(folder, faults=faults)


def test_a_text_batch_job_runs_to_completion_over_several_runs_each_request_answered_once(tmp_path):
    simulator = fast_batch_simulator(tmp_path)
    try:
        spec = write_spec(tmp_path, text_job("batchtext", simulator.url, 7))
        codes = runs_until_done(tmp_path, spec)
    finally:
        simulator.stop()

    assert codes[0] == EXIT_BATCHES_RUNNING and codes[-1] == 0
    job = outputs(tmp_path, "batchtext")
    rows = job.rows()
    assert sorted(r["request_id"] for r in rows) == sorted(job.ids)  # one final row per request
    assert {(r["status"], r["service_tier"]) for r in rows} == {("ok", "batch")}
    log = simulator.requests()
    lines = [line for line in log if line["rpc"] == "batch.line"]
    assert sends_by_id(lines, job.body_hashes()) == dict.fromkeys(job.ids, 1)
    assert Counter(line["rpc"] for line in log)["batches.create"] == 1
    assert not [line for line in log if line["rpc"] == "generateContent"]
    status = batchrun(tmp_path, "status", str(spec), "--json")
    (batch,) = json.loads(status.stdout)["batches"]
    assert (batch["state"], batch["requests"], batch["collected"]) == ("collected", 7, 7)


def test_an_image_batch_saves_each_image_matching_its_row_s_sha256(tmp_path):
    simulator = fast_batch_simulator(tmp_path)
    try:
        spec = write_spec(tmp_path, image_job("batchimages", simulator.url, tmp_path, photos=2, scenes=2))
        runs_until_done(tmp_path, spec)
    finally:
        simulator.stop()

    job = outputs(tmp_path, "batchimages")
    rows = job.rows()
    assert sorted(r["request_id"] for r in rows) == sorted(job.ids)
    assert all(r["status"] == "ok" and r["image_path"] for r in rows)
    for row in rows:
        data = (job.folder / row["image_path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["image_sha256"]


# The kill lands tens of milliseconds after the call is seen in the log: upload and create take less, so a
# kill "at upload" may land after the create; the ledger then decides, and the log shows what was paid for.
KILL_MOMENTS = ("files.upload.start", "batches.get", "files.download")


def kill_at(folder, spec, simulator, rpc: str) -> bool:
    """Start a batch run and `kill -9` it once the simulator has logged one more `rpc` call; False if the
    run ended first (it had nothing more of that kind to do)."""
    before = rpc_count(simulator, rpc)
    process = start_batchrun(folder, "run", str(spec), "--tier", "batch", "--wait", "--progress", "none")
    try:
        wait_until(lambda: rpc_count(simulator, rpc) > before or process.poll() is not None, process,
                   f"a {rpc} call or the run's end")
        if process.poll() is not None:
            return False
        process.send_signal(signal.SIGKILL)
        return True
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=60)
        if process.stderr is not None:
            process.stderr.close()


def rpc_count(simulator, rpc: str) -> int:
    return sum(1 for line in simulator.requests() if line["rpc"] == rpc)


def test_a_batch_run_killed_at_upload_poll_and_collect_resumes_to_one_row_per_request(tmp_path):
    faults = write_faults(tmp_path, "slowerbatch", {"batch": {"pending_s": 1.0, "running_s": 2.0}})
    simulator = start_simulator(tmp_path, faults=faults)
    try:
        spec = write_spec(tmp_path, image_job("batchkills", simulator.url, tmp_path, photos=3, scenes=2))
        killed = [rpc for rpc in KILL_MOMENTS if kill_at(tmp_path, spec, simulator, rpc)]
        runs_until_done(tmp_path, spec)
    finally:
        simulator.stop()

    assert "files.upload.start" in killed and len(killed) >= 2
    job = outputs(tmp_path, "batchkills")
    rows = job.rows()
    assert sorted(r["request_id"] for r in rows) == sorted(job.ids)  # exactly one final row per request
    for row in rows:
        assert hashlib.sha256((job.folder / row["image_path"]).read_bytes()).hexdigest() == row["image_sha256"]
    creates = [line for line in simulator.requests() if line["rpc"] == "batches.create"]
    assert len(creates) == 1  # one chunk, never created twice
