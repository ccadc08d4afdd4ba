"""End to end: how `batchrun run` stops, against the simulator as a real HTTP server.

Each test drives the CLI as a subprocess and checks its exit code, the rows it left, and what the
simulator's request log says it received: retries spent (exit 3), a bad key (exit 6), a spent daily
quota (exit 7), a deadline (exit 5) and Ctrl-C (exit 130), each resumable by running again; and two
first runs started at once, of which one runs and the other exits 9 (in-process simulator).
"""

from __future__ import annotations

import re
import signal
import time

from e2e_helpers import (  # noqa: F401 (serve is a fixture)
    RUN_TIMEOUT_S,
    LineReader,
    assert_no_key,
    batchrun,
    cli_env,
    outputs,
    run_job,
    sends_by_id,
    serve,
    start_batchrun,
    text_job,
    write_faults,
    write_spec,
)

REVOKED_KEY = "test-key-e2e-revoked-4242"  # listed in e2e_jobs/bad_key.yaml
IN_PROCESS = {"kind": "simulator", "base_url": None, "api_key_env": None}


def test_every_request_503_ends_with_exit_3_rows_failed_and_a_second_run_sends_them_again(tmp_path, serve):
    simulator = serve(faults="all_503.yaml")
    spec = write_spec(tmp_path, text_job("overloaded", simulator.url, 10, retry={"max_attempts": 3}))

    first = run_job(tmp_path, spec, "-vv")

    assert first.returncode == 3, first.stderr
    job = outputs(tmp_path, "overloaded")
    rows = job.rows()
    assert sorted(r["request_id"] for r in rows) == sorted(job.ids)
    assert {(r["status"], r["http_status"], r["attempts"]) for r in rows} == {("failed", 503, 3)}
    assert all(r["error_kind"] and r["error_message"] for r in rows)
    assert len(simulator.requests()) == 10 * 3

    second = run_job(tmp_path, spec)

    assert second.returncode == 3, second.stderr
    assert sends_by_id(simulator.requests(), job.body_hashes()) == dict.fromkeys(job.ids, 6)
    again = job.rows()
    assert sorted(r["request_id"] for r in again) == sorted(job.ids)  # still one row per request
    first_finish = {r["request_id"]: r["finished_at"] for r in rows}
    assert all(r["finished_at"] > first_finish[r["request_id"]] for r in again)
    assert_no_key(tmp_path, first.stderr, second.stderr)


def test_no_retry_failed_sends_nothing_again_and_still_reports_the_failures(tmp_path, serve):
    simulator = serve(faults="all_503.yaml")
    spec = write_spec(tmp_path, text_job("keepfailed", simulator.url, 6, retry={"max_attempts": 2}))
    assert run_job(tmp_path, spec).returncode == 3
    assert len(simulator.requests()) == 6 * 2

    again = run_job(tmp_path, spec, "--no-retry-failed")

    assert again.returncode == 3, again.stderr  # the job is not all done: its failures remain
    assert len(simulator.requests()) == 6 * 2  # nothing sent again
    assert {r["status"] for r in outputs(tmp_path, "keepfailed").rows()} == {"failed"}


def test_a_bad_key_stops_the_run_with_exit_6_after_at_most_concurrency_requests(tmp_path, serve):
    simulator = serve(faults="bad_key.yaml")
    spec = write_spec(tmp_path, text_job("badkey", simulator.url, 200, limits={"concurrency": 4}))

    result = run_job(tmp_path, spec, "-vv", key=REVOKED_KEY)  # debug lines and the traceback too

    assert result.returncode == 6, result.stderr
    received = simulator.requests()
    assert 1 <= len(received) <= 4
    assert {line["outcome"] for line in received} == {"bad_key"}
    assert outputs(tmp_path, "badkey").rows() == []  # nothing recorded: every request stays pending
    assert "auth" in result.stderr.lower() or "key" in result.stderr.lower()
    assert_no_key(tmp_path, result.stdout, result.stderr, key=REVOKED_KEY)


def test_a_spent_daily_quota_stops_the_run_with_exit_7_and_says_when_it_resets(tmp_path, serve):
    simulator = serve(profile="quota")
    spec = write_spec(tmp_path, text_job("quota", simulator.url, 40, limits={"concurrency": 4}))

    result = run_job(tmp_path, spec)

    assert result.returncode == 7, result.stderr
    assert re.search(r"resets at midnight Pacific time \(\d{4}-\d\d-\d\dT00:00:00-0[78]:00", result.stderr)
    rows = outputs(tmp_path, "quota").rows()
    assert len(rows) == 20 and {r["status"] for r in rows} == {"ok"}  # the profile's 20 a day
    refused = [line for line in simulator.requests() if line["outcome"] == "quota"]
    assert 1 <= len(refused) <= 4
    assert_no_key(tmp_path, result.stderr)


def until_in(seconds: float) -> tuple[str, dict[str, str]]:
    """An HH:MM and a TZ setting under which that local time comes in about `seconds` from now."""
    ahead = round(time.time() + seconds)
    offset = -ahead % 60  # local = UTC + offset puts `ahead` on a whole minute
    local = time.gmtime(ahead + offset)
    return f"{local.tm_hour:02d}:{local.tm_min:02d}", {"TZ": f"XXX-00:00:{offset:02d}"}


def test_max_duration_and_until_stop_with_exit_5_and_a_later_run_sends_only_the_rest(tmp_path, serve):
    simulator = serve(faults="slow.yaml")
    spec = write_spec(tmp_path, text_job("deadline", simulator.url, 300, limits={"concurrency": 2}))

    started = time.monotonic()
    by_duration = run_job(tmp_path, spec, "--max-duration", "1s")
    after_duration = len(outputs(tmp_path, "deadline").rows())
    # --until is a wall-clock time read when the run starts: leave room for twice what a run took besides
    # its 1 s of sending (interpreter, imports, plan), or on a loaded machine it passes before the run starts
    # and means tomorrow
    overhead_s = max(time.monotonic() - started - 1, 0.5)
    hhmm, tz = until_in(3 + 2 * overhead_s)
    by_clock = batchrun(tmp_path, "run", str(spec), "--progress", "plain", "--until", hhmm, env=cli_env(**tz))
    after_clock = len(outputs(tmp_path, "deadline").rows())
    rest = run_job(tmp_path, spec, "--concurrency", "64")

    assert by_duration.returncode == 5, by_duration.stderr
    assert by_clock.returncode == 5, by_clock.stderr
    assert "deadline" in by_clock.stderr and "`batchrun run` again resumes" in by_clock.stderr
    assert 0 < after_duration < after_clock < 300
    assert rest.returncode == 0, rest.stderr
    job = outputs(tmp_path, "deadline")
    assert sorted(r["request_id"] for r in job.rows()) == sorted(job.ids)
    assert sends_by_id(simulator.requests(), job.body_hashes()) == dict.fromkeys(job.ids, 1)
    assert_no_key(tmp_path, by_duration.stderr, by_clock.stderr, rest.stderr)


def test_ctrl_c_waits_for_requests_in_flight_exits_130_and_a_later_run_finishes_the_rest(tmp_path, serve):
    simulator = serve(faults="slow.yaml")
    spec = write_spec(tmp_path, text_job("interrupted", simulator.url, 300, limits={"concurrency": 4}))
    process = start_batchrun(tmp_path, "run", str(spec), "--progress", "plain", "--status-every", "0.2",
                             "--grace", "20")
    stderr = LineReader(process.stderr)
    try:
        stderr.wait_for(re.compile(r"done [1-9][\d,]*/300"), RUN_TIMEOUT_S)

        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=RUN_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=RUN_TIMEOUT_S)

    assert code == 130, stderr.text()
    job = outputs(tmp_path, "interrupted")
    recorded = {r["request_id"] for r in job.rows()}
    assert 0 < len(recorded) < 300
    sent = sends_by_id(simulator.requests(), job.body_hashes())
    assert set(sent) == recorded  # every request in flight came back within the grace and was kept
    rest = run_job(tmp_path, spec, "--concurrency", "64")
    assert rest.returncode == 0, rest.stderr
    assert sorted(r["request_id"] for r in job.rows()) == sorted(job.ids)
    assert sends_by_id(simulator.requests(), job.body_hashes()) == dict.fromkeys(job.ids, 1)
    assert_no_key(tmp_path, stderr.text(), rest.stderr)


def test_a_streamed_text_job_gets_the_same_text_and_usage_as_a_plain_one(tmp_path, serve):
    simulator = serve(profile="clean")
    plain = write_spec(tmp_path, text_job("plain", simulator.url, 12))
    streamed = write_spec(tmp_path, text_job("streamed", simulator.url, 12, provider={"stream": True}))

    assert run_job(tmp_path, plain).returncode == 0
    assert [line["rpc"] for line in simulator.requests()] == ["generateContent"] * 12
    assert run_job(tmp_path, streamed).returncode == 0
    assert [line["rpc"] for line in simulator.requests()[12:]] == ["streamGenerateContent"] * 12

    def by_id(name):
        return {r["request_id"]: r for r in outputs(tmp_path, name).rows()}

    plain_rows, streamed_rows = by_id("plain"), by_id("streamed")
    assert len(streamed_rows) == 12 and {r["status"] for r in streamed_rows.values()} == {"ok"}
    # ids differ by nothing but the job's bodies, which are the same: pair rows through the manifest order
    plain_ids, streamed_ids = outputs(tmp_path, "plain").ids, outputs(tmp_path, "streamed").ids
    for a, b in zip(plain_ids, streamed_ids):
        assert streamed_rows[b]["text"] == plain_rows[a]["text"] and streamed_rows[b]["text"]
        assert streamed_rows[b]["total_tokens"] == plain_rows[a]["total_tokens"] > 0


def test_two_first_runs_at_once_one_runs_and_the_other_exits_9_with_one_line(tmp_path):
    (tmp_path / "jobs").mkdir()
    write_faults(tmp_path / "jobs", "slow", {"latency": {"distribution": "fixed", "ms": 200}})
    provider = {**IN_PROCESS, "faults": "slow.yaml"}  # 60 requests, 2 at a time: the first run lasts ~6 s
    spec = write_spec(tmp_path, text_job("twice", "", 60, provider=provider, limits={"concurrency": 2}))
    logs = [tmp_path / "first.err", tmp_path / "second.err"]

    runs = [start_batchrun(tmp_path, "run", str(spec), "--progress", "none", stderr=log, key=None) for log in logs]
    try:
        codes = [run.wait(timeout=RUN_TIMEOUT_S) for run in runs]
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
                run.wait(timeout=RUN_TIMEOUT_S)

    assert sorted(codes) == [0, 9], [log.read_text() for log in logs]
    winner, loser = codes.index(0), codes.index(9)
    refused = logs[loser].read_text().splitlines()
    assert len(refused) == 1 and refused[0].startswith("batchrun: error: another batchrun run is writing ")
    assert f"(pid {runs[winner].pid}, started " in refused[0]
    assert refused[0].endswith("); wait for it to end or stop it, then run again")
    job = outputs(tmp_path, "twice")
    assert len(job.ids) == 60 and sorted(r["request_id"] for r in job.rows()) == sorted(job.ids)
    assert sorted(p.name for p in job.folder.iterdir() if p.is_file()) == ["calibration.json", "manifest.parquet"]
