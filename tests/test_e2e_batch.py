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

import httpx
import pytest
from e2e_helpers import (
    FAKE_KEY,
    batchrun,
    cli_env,
    durable_results,
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

from batchrun.batching.ledger import LEDGER_NAME, ChunkState, Phase, read_ledger
from batchrun.batchtier import UPLOAD_CHUNK_ENV

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


# ---------------------------------------------------------------- kill -9 at six moments of one batch run
#
# The simulator slows its batch routes (`batch.delays`) so that each moment lasts long enough to be caught:
# an upload piece is answered 0.5 s after it arrives, a create waits 1.5 s before the batch is made and
# 1.5 s after, a download pauses 1.5 s after its first 3 lines. Each kill is sent once the request log (or
# the ledger, or the durable results) shows the run inside that moment, and is checked to have landed there.
# The batch's clock is fast, but it ends no sooner than its second get (`min_gets`): the run killed between
# polls sees it running however long the run took to start, and the next run sees it end.

KILL_FAULTS = {"batch": {"pending_s": 0.2, "running_s": 0.2, "min_gets": 2, "delays": {
    "upload": {"after_s": 0.5},
    "create": {"before_s": 1.5, "after_s": 1.5},
    "download": {"pause_after_lines": 3, "pause_s": 1.5},
}}}
UPLOAD_PIECE_BYTES = 8192  # the chunk's JSONL (6 requests, photos inlined) goes up in several pieces
ROWS_BEFORE_PAUSE = 3


def logged(simulator, rpc: str, outcome: str | None = None) -> int:
    """How many request-log lines of `rpc` (with `outcome`, if given)."""
    return sum(1 for line in simulator.requests() if line["rpc"] == rpc and outcome in (None, line["outcome"]))


def the_chunk(folder, name: str) -> ChunkState | None:
    """The job's one chunk as its ledger shows it now (None before it is planned)."""
    chunks = list(read_ledger(folder / "outputs" / name / "batches" / LEDGER_NAME).chunks.values())
    assert len(chunks) <= 1, chunks
    return chunks[0] if chunks else None


def in_phase(folder, name: str, phase: Phase) -> bool:
    chunk = the_chunk(folder, name)
    return chunk is not None and chunk.phase is phase


def kill_when(folder, spec, reached, what: str) -> None:
    """Start `batchrun run SPEC --tier batch --wait` and `kill -9` it once `reached()` holds."""
    env = cli_env(**{UPLOAD_CHUNK_ENV: str(UPLOAD_PIECE_BYTES)})
    stderr = folder / f"kill-{what.replace(' ', '-')[:40]}.err"
    process = start_batchrun(folder, "run", str(spec), "--tier", "batch", "--wait", "--progress", "none",
                             stderr=stderr, env=env)
    try:
        wait_until(reached, process, what)
        process.send_signal(signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, f"{what}: the run ended by itself: {stderr.read_text()}"


def server_display_names(simulator) -> list[str]:
    response = httpx.get(f"{simulator.url}/v1beta/batches", headers={"x-goog-api-key": FAKE_KEY}, timeout=30)
    response.raise_for_status()
    return [op["metadata"]["displayName"] for op in response.json().get("operations", [])]


@pytest.mark.timeout(300)  # seven CLI runs: a run takes 15 s to start on a machine with both cores busy
def test_a_batch_run_killed_at_six_moments_of_upload_create_poll_and_collect_resumes_to_one_row_per_request(
        tmp_path):
    simulator = start_simulator(tmp_path, faults=write_faults(tmp_path, "killbatch", KILL_FAULTS))
    name = "batchkills"
    try:
        spec = write_spec(tmp_path, image_job(name, simulator.url, tmp_path, photos=3, scenes=2))

        # 1. upload started, no piece sent yet
        kill_when(tmp_path, spec, lambda: logged(simulator, "files.upload.start") >= 1, "upload started")
        assert in_phase(tmp_path, name, Phase.UPLOADING) and logged(simulator, "files.upload") == 0

        # 2. between upload pieces: the first piece answered, the next one arrived (a fresh upload on resume)
        pieces_before = logged(simulator, "files.upload", "ok")
        kill_when(tmp_path, spec, lambda: logged(simulator, "files.upload", "arrived") >= 2
                  and logged(simulator, "files.upload", "ok") > pieces_before, "between upload pieces")
        assert in_phase(tmp_path, name, Phase.UPLOADING) and logged(simulator, "batches.create") == 0

        # 3. inside the create call, before the server made the batch
        kill_when(tmp_path, spec, lambda: logged(simulator, "batches.create", "arrived") >= 1,
                  "a create arrived")
        assert in_phase(tmp_path, name, Phase.CREATING)
        assert logged(simulator, "batches.create", "ok") == 0  # not made: its caller went away first

        # 4. inside the create call, after the server made the batch, before the client recorded `created`
        kill_when(tmp_path, spec, lambda: logged(simulator, "batches.create", "ok") >= 1, "a batch created")
        assert in_phase(tmp_path, name, Phase.CREATING)  # the reconcile path: adopted on resume, not made again

        # 5. between polls: adopted, polled once while still running, waiting for the next poll
        kill_when(tmp_path, spec, lambda: (the_chunk(tmp_path, name).batch_state or "").endswith(
            ("PENDING", "RUNNING")), "a poll answered while the batch runs")
        assert in_phase(tmp_path, name, Phase.CREATED) and logged(simulator, "batches.get") == 1
        assert logged(simulator, "files.download") == 0

        # 6. mid-download: the first rows written, the rest of the results file held back
        kill_when(tmp_path, spec, lambda: durable_results(tmp_path, name) >= ROWS_BEFORE_PAUSE,
                  "rows written mid-download")
        assert in_phase(tmp_path, name, Phase.CREATED)
        assert durable_results(tmp_path, name) == ROWS_BEFORE_PAUSE

        runs_until_done(tmp_path, spec)
        display_names = server_display_names(simulator)
    finally:
        simulator.stop()

    job = outputs(tmp_path, name)
    rows = job.rows()
    assert sorted(r["request_id"] for r in rows) == sorted(job.ids)  # exactly one final row per request
    assert all(r["status"] == "ok" for r in rows)
    for row in rows:
        assert hashlib.sha256((job.folder / row["image_path"]).read_bytes()).hexdigest() == row["image_sha256"]
    assert logged(simulator, "batches.create", "ok") == 1  # one chunk, its batch made once
    assert display_names == [the_chunk(tmp_path, name).display_name]  # no display name created twice
    lines = [line for line in simulator.requests() if line["rpc"] == "batch.line"]
    assert sends_by_id(lines, job.body_hashes()) == dict.fromkeys(job.ids, 1)  # each request answered once
