"""End to end: `batchrun run` killed with SIGKILL at random moments and resumed, against the flaky simulator.

What must hold once the job is complete: every manifest id has exactly one final row; no id that
had a durable result (results part or journal) when a kill landed was sent again afterwards (the
simulator's request log says what it received); every image file matches its row's sha256.
"""

from __future__ import annotations

import hashlib
import json
import random
import signal
import subprocess
import time

import pytest

from e2e_helpers import (
    RUN_TIMEOUT_S,
    assert_no_key,
    image_job,
    outputs,
    run_job,
    sends_by_id,
    start_batchrun,
    start_simulator,
    text_job,
    write_spec,
)

KILLS = 6


@pytest.fixture
def flaky(tmp_path):
    simulator = start_simulator(tmp_path, profile="flaky", seed=11)
    yield simulator
    simulator.stop()


def kill_at_random_moments(tmp_path, spec, simulator, rng: random.Random, kills: int, name: str,
                           moments=(0.05, 0.8)) -> list[tuple[set[str], int]]:
    """Start the run and SIGKILL it a random delay (drawn from `rng`) after its first request, `kills` times.

    The delay counts from something observable (the simulator logged a request of this run), not from
    the start, which on a loaded machine may take longer than the whole window.
    Returns, for each kill, the ids with a durable result right after it and the request-log length.
    """
    out = []
    for number in range(kills):
        logged = len(simulator.requests())
        process = start_batchrun(tmp_path, "run", str(spec), "--progress", "plain",
                                 stderr=tmp_path / f"killed-{number}.err")
        wait_for_a_request(simulator, logged, process)
        try:
            process.wait(timeout=rng.uniform(*moments))
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=RUN_TIMEOUT_S)
        else:
            pytest.fail(f"run {number} ended (exit {process.returncode}) before its kill: make the job longer")
        planned = (tmp_path / "outputs" / name / "manifest.parquet").exists()
        out.append((outputs(tmp_path, name).answered_ids() if planned else set(), len(simulator.requests())))
    return out


def wait_for_a_request(simulator, logged: int, process: subprocess.Popen) -> None:
    """Until the simulator has logged more than `logged` requests (bounded; fails if the run ends first)."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while len(simulator.requests()) <= logged:
        if process.poll() is not None:
            pytest.fail(f"the run ended (exit {process.returncode}) before sending anything")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the run sent nothing within the time limit")
        try:
            process.wait(timeout=0.02)
        except subprocess.TimeoutExpired:
            pass


def crashed_runs_in_flight(out_dir) -> int:
    """The requests the resumed runs reported as in flight at the crashes they recovered."""
    total = 0
    for path in (out_dir / "runs").glob("*.json"):
        record = json.loads(path.read_text())
        if record.get("crashed"):
            total += record["in_flight_at_crash"]
    return total


def assert_nothing_answered_was_sent_again(kills, log, hashes) -> None:
    for number, (answered, logged) in enumerate(kills):
        sent_later = set(sends_by_id(log[logged:], hashes))
        again = answered & sent_later
        assert not again, f"{len(again)} requests with a durable result at kill {number} were sent again"


def test_text_job_killed_six_times_then_resumed_has_one_final_row_per_request(tmp_path, flaky):
    spec = write_spec(tmp_path, text_job("killed", flaky.url, 500,
                                         limits={"concurrency": 4, "requests_per_minute": 3000}))
    kills = kill_at_random_moments(tmp_path, spec, flaky, random.Random(20240611), KILLS, "killed")

    final = run_job(tmp_path, spec)

    assert final.returncode == 0, final.stderr
    job = outputs(tmp_path, "killed")
    rows = job.rows()
    assert sorted(r["request_id"] for r in rows) == sorted(job.ids)  # exactly one row per manifest id
    assert {r["status"] for r in rows} == {"ok"}
    assert all(r["text"] for r in rows)
    grew = [later[0] - earlier[0] for earlier, later in zip(kills, kills[1:])]
    assert sum(1 for new in grew if new) >= 3, "the kills should land while results come back"
    log = flaky.requests()
    hashes = job.body_hashes()
    assert_nothing_answered_was_sent_again(kills, log, hashes)
    served = sends_by_id(log, hashes, outcome="ok")
    served_twice = sum(count - 1 for count in served.values())
    assert served_twice <= crashed_runs_in_flight(job.folder)
    assert_no_key(tmp_path, final.stderr)


def test_image_job_killed_then_resumed_has_every_image_matching_its_row(tmp_path, flaky):
    spec = write_spec(tmp_path, image_job("photos", flaky.url, tmp_path, photos=12, scenes=4,
                                          limits={"concurrency": 2, "requests_per_minute": 480}))
    kills = kill_at_random_moments(tmp_path, spec, flaky, random.Random(7), 3, "photos", moments=(0.2, 1.2))

    final = run_job(tmp_path, spec)

    assert final.returncode == 0, final.stderr
    job = outputs(tmp_path, "photos")
    rows = job.rows()
    assert sorted(r["request_id"] for r in rows) == sorted(job.ids)
    assert {r["status"] for r in rows} == {"ok"}
    for row in rows:
        data = (job.folder / row["image_path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["image_sha256"]
        assert len(data) == row["image_bytes"]
        assert (row["image_width"], row["image_height"]) == (512, 512)
    named = {row["image_path"] for row in rows}
    on_disk = {str(p.relative_to(job.folder)) for p in (job.folder / "images").rglob("*") if p.is_file()}
    assert on_disk == named  # no torn temp file left, no image without its row
    assert_nothing_answered_was_sent_again(kills, flaky.requests(), job.body_hashes())
    assert_no_key(tmp_path, final.stderr)
