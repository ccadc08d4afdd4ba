"""End to end: what a run does with the server's retryDelay, against the simulator as a real HTTP server.

The simulator's per-minute limit answers 429 with the time until its 60-second window has room.
A delay past `retry.max_server_delay_s` is a quota signal: the run stops at once with exit 7 and one
line that says how long the server asked for and what to do, and records nothing for that request.
Under the cap, a 429 storm pauses every sender: the progress line says so, why and for how long;
`batchrun status` shows it from the run's live file, which the run removes when it ends.
"""

from __future__ import annotations

import json
import re
import signal
import time

from e2e_helpers import (  # noqa: F401 (serve is a fixture)
    RUN_TIMEOUT_S,
    LineReader,
    assert_no_key,
    batchrun,
    outputs,
    run_job,
    serve,
    start_batchrun,
    text_job,
    write_faults,
    write_spec,
)

DELAY = r"(?:\d+s|1m00s)"  # the simulator's: the time until its 60-second window has room


def test_a_delay_past_the_cap_stops_the_run_with_exit_7_and_leaves_that_request_pending(tmp_path, serve):
    write_faults(tmp_path, "two_a_minute", {"limits": {"requests_per_minute": 2}})
    simulator = serve(faults=str(tmp_path / "two_a_minute.yaml"))
    limits = {"concurrency": 1, "requests_per_minute": None}  # no pace: the simulator's limit answers
    spec = write_spec(tmp_path, text_job("capped", simulator.url, 6, limits=limits, retry={"max_server_delay_s": 5}))

    run = run_job(tmp_path, spec)

    assert run.returncode == 7, run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert re.fullmatch(rf"batchrun: error: run stopped: the server asked to wait {DELAY} before sending again, "
                        r"more than retry\.max_server_delay_s \(5s\): a quota is likely spent; run `batchrun run` "
                        r"again later, or raise retry\.max_server_delay_s to wait it out; 4 rows left pending; "
                        r"`batchrun run` again resumes \(with --wait-quota, or run\.wait_quota: true, a run waits for "
                        r"the reset when it comes before --until\)", last), last
    job = outputs(tmp_path, "capped")
    assert [r["status"] for r in job.rows()] == ["ok", "ok"]  # the refused request is not recorded
    assert [line["status"] for line in simulator.requests()] == [200, 200, 429]  # nor sent again
    status = json.loads(batchrun(tmp_path, "status", str(spec), "--json", key=None).stdout)
    assert (status["pending"], status["done"]["failed"]) == (4, 0)
    assert_no_key(tmp_path, run.stderr)


def test_a_429_storm_pauses_every_sender_and_progress_and_status_say_why_and_for_how_long(tmp_path, serve):
    write_faults(tmp_path, "four_a_minute", {"limits": {"requests_per_minute": 4}})
    simulator = serve(faults=str(tmp_path / "four_a_minute.yaml"))
    limits = {"concurrency": 16, "requests_per_minute": None}
    spec = write_spec(tmp_path, text_job("stormy", simulator.url, 40, limits=limits))
    process = start_batchrun(tmp_path, "run", str(spec), "--progress", "plain", "--status-every", "0.2", "--grace", "5")
    stderr = LineReader(process.stderr)
    try:
        # the live file is written on the tick before the one that prints this line
        line = stderr.wait_for(re.compile(r"batchrun: paused: rate limited, resuming in (\d+) s \(a 429 storm \(\d+ of "
                                          rf"the last \d+ replies\); the server asked for {DELAY}\) \| done"), RUN_TIMEOUT_S)
        assert 30 <= int(line[1]) <= 60
        paused_by = time.time()

        status = batchrun(tmp_path, "status", str(spec), key=None)
        as_json = json.loads(batchrun(tmp_path, "status", str(spec), "--json", key=None).stdout)

        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=RUN_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=RUN_TIMEOUT_S)

    assert status.returncode == 0, status.stderr
    assert re.search(r"^paused: rate limited, resuming in \d+ s \(a 429 storm \(\d+ of the last \d+ replies\); the "
                     rf"server asked for {DELAY}\)$", status.stdout, re.MULTILINE), status.stdout
    assert 25 <= as_json["pause"]["left_s"] <= 60 and as_json["pause"]["reason"].startswith("a 429 storm")
    assert code == 130, stderr.text()
    assert list((outputs(tmp_path, "stormy").folder / "runs").glob("*.live.json")) == []
    assert max(line["t"] for line in simulator.requests()) < paused_by  # nothing sent once paused, to Ctrl-C
    assert_no_key(tmp_path, stderr.text(), status.stdout)
