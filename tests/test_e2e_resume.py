"""End to end: `batchrun run` killed with SIGKILL at random points and resumed, against the flaky simulator.

What must hold once the job is complete: every manifest id has exactly one final row; no id that
had a durable result (results part or journal) when a kill landed was sent again afterwards (the
simulator's request log says what it received); every image file matches its row's sha256.
"""

from __future__ import annotations

import hashlib
import json
import random
import signal

import pytest
from e2e_helpers import (
    RUN_TIMEOUT_S,
    assert_no_key,
    durable_results,
    image_job,
    outputs,
    run_job,
    sends_by_id,
    start_batchrun,
    start_simulator,
    text_job,
    wait_for_results,
    write_spec,
)

KILLS = 6


@pytest.fixture
def flaky(tmp_path):
    simulator = start_simulator(tmp_path, profile="flaky", seed=11)
    yield simulator
    simulator.stop()


def kill_at_random_points(tmp_path, spec, simulator, rng: random.Random, kills: int, name: str,
                           steps=(5, 40)) -> list[tuple[set[str], int]]:
    """Start the run and SIGKILL it once it has added a random number (drawn from `rng` in `steps`) of
    durable results, `kills` times.

    Each kill waits on something observable (results in the journal or a part), never on the wall clock,
    so on a loaded machine it still lands while results come back; the random count varies the point.
    Returns, for each kill, the ids with a durable result right after it and the request-log length.
    """
    out = []
    for number in range(kills):
        target = durable_results(tmp_path, name) + rng.randint(*steps)
        process = start_batchrun(tmp_path, "run", str(spec), "--progress", "plain",
                                 stderr=tmp_path / f"killed-{number}.err")
        try:
            wait_for_results(tmp_path, name, target, process)
        except AssertionError as failure:
            pytest.fail(f"run {number}: {failure}: make the job longer")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=RUN_TIMEOUT_S)
        out.append((outputs(tmp_path, name).answered_ids(), len(simulator.requests())))
    return out


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


@pytest.mark.parametrize("kind", ["gemini", "openai"])
def test_text_job_killed_six_times_then_resumed_has_one_final_row_per_request(tmp_path, flaky, kind):
    base_url = flaky.url if kind == "gemini" else f"{flaky.url}/v1"  # openai: the chat route
    spec = write_spec(tmp_path, text_job("killed", flaky.url, 500, provider={"kind": kind, "base_url": base_url},
                                         limits={"concurrency": 4, "requests_per_minute": 3000}))
    kills = kill_at_random_points(tmp_path, spec, flaky, random.Random(20240611), KILLS, "killed")

    final = run_job(tmp_path, spec)

    assert final.returncode == 0, final.stderr
    job = outputs(tmp_path, "killed")
    rows = job.rows()
    assert sorted(r["request_id"] for r in rows) == sorted(job.ids)  # exactly one row per manifest id
    assert {r["status"] for r in rows} == {"ok"}
    assert all(r["text"] for r in rows)
    grew = [later[0] - earlier[0] for earlier, later in zip(kills, kills[1:])]
    assert all(grew), "every kill should land while results come back"
    log = flaky.requests()
    hashes = job.body_hashes(kind)
    assert_nothing_answered_was_sent_again(kills, log, hashes)
    served = sends_by_id(log, hashes, outcome="ok")
    served_twice = sum(count - 1 for count in served.values())
    assert served_twice <= crashed_runs_in_flight(job.folder)
    assert_no_key(tmp_path, final.stderr)


def test_image_job_killed_then_resumed_has_every_image_matching_its_row(tmp_path, flaky):
    spec = write_spec(tmp_path, image_job("photos", flaky.url, tmp_path, photos=12, scenes=4,
                                          limits={"concurrency": 2, "requests_per_minute": 480}))
    kills = kill_at_random_points(tmp_path, spec, flaky, random.Random(7), 3, "photos", steps=(1, 8))

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
