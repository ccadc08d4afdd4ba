"""End to end: what a bucket job (`output.dir: s3://…`) tells the user, against moto's S3 server on 127.0.0.1.

What must hold: a run whose last upload fails exits 10 and its run record (and notification) say so; a run
whose lease another machine takes over stops with exit 9 and leaves its rows in the bucket; the
CLI names the bucket, not the local staging folder, wherever it says where the output is.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest
from e2e_helpers import (
    RUN_TIMEOUT_S,
    batchrun,
    cli_env,
    run_job,
    start_batchrun,
    start_simulator,
    text_job,
    wait_until,
    write_faults,
    write_spec,
)
from s3_server import S3Server, moto_server, s3, s3_endpoint  # noqa: F401  (fixtures)

from batchrun.output.lease import Lease, parse_lease
from batchrun.output.mirror import staging_folder

SLOW = {"latency": {"distribution": "fixed", "ms": 150}}  # 30 requests one at a time: 4.5 s or more


def env_for(server: S3Server, cache, **extra: str) -> dict[str, str]:
    return cli_env(**server.env, BATCHRUN_CACHE_DIR=str(cache), **extra)


def copy_script(folder) -> str:
    """A notify command: copies the file named by its last argument to the path its first names."""
    script = folder / "copy_summary.py"
    script.write_text("import shutil, sys\nshutil.copy(sys.argv[-1], sys.argv[1])\n")
    return str(script)


def run_records(location: str, cache) -> list[dict]:
    folder = staging_folder(location, {"BATCHRUN_CACHE_DIR": str(cache)})
    return [json.loads(path.read_text()) for path in sorted((folder / "runs").glob("*.json"))]


def test_a_run_whose_last_upload_fails_exits_10_and_its_record_and_notification_say_so(tmp_path):
    simulator = start_simulator(tmp_path, faults=write_faults(tmp_path, "slow", SLOW))
    copied = tmp_path / "copied.json"
    try:
        with moto_server() as (endpoint, moto):
            server = S3Server(endpoint, "lost")
            server.filesystem().create_dir(server.bucket)
            notify = {"command": [sys.executable, copy_script(tmp_path), str(copied)], "timeout_s": 20}
            spec = write_spec(tmp_path, text_job("lines", simulator.url, 30, limits={"concurrency": 1},
                                                 output={"dir": "s3://lost/lines"}, notify=notify))
            process = start_batchrun(tmp_path, "run", str(spec), "--progress", "plain", stderr=tmp_path / "run.err",
                                     env=env_for(server, tmp_path / "cache"))
            wait_until(lambda: len(simulator.requests()) >= 3, process, "3 requests sent")
            moto.terminate()  # the bucket's server is gone before the run's last push
            moto.wait(timeout=RUN_TIMEOUT_S)
            process.wait(timeout=RUN_TIMEOUT_S)
    finally:
        simulator.stop()
    stderr = (tmp_path / "run.err").read_text()
    assert process.returncode == 10, stderr
    assert "the run ended (exit 0) but its last upload failed" in stderr
    [record] = run_records("s3://lost/lines", tmp_path / "cache")
    assert (record["exit_code"], record["exit_reason"], record["ok"]) == (10, "write", 30)
    assert "its last upload failed" in record["message"] and "s3://lost/lines" in record["message"]
    assert json.loads(copied.read_text()) == record


def test_the_cli_names_the_bucket_where_it_says_where_the_output_is(tmp_path, s3):  # noqa: F811
    simulator = start_simulator(tmp_path, faults=write_faults(tmp_path, "slow", SLOW))
    location = f"s3://{s3.bucket}/lines"
    env = env_for(s3, tmp_path / "cache")
    try:
        spec = write_spec(tmp_path, text_job("lines", simulator.url, 30, limits={"concurrency": 1},
                                             output={"dir": location}))
        process = start_batchrun(tmp_path, "run", str(spec), "--progress", "plain", stderr=tmp_path / "run.err", env=env)
        wait_until(lambda: len(simulator.requests()) >= 3, process, "3 requests sent")
        leased = parse_lease(s3.read("lines/.batchrun-lease.json"))
        second = run_job(tmp_path, spec, env=env)
        status = batchrun(tmp_path, "status", str(spec), env=env)
        process.wait(timeout=RUN_TIMEOUT_S)
    finally:
        simulator.stop()
    staging = str(staging_folder(location, {"BATCHRUN_CACHE_DIR": str(tmp_path / "cache")}))
    assert second.returncode == 9, second.stderr
    assert f"another batchrun run is writing {location} (pid {process.pid}" in second.stderr
    assert status.stdout.splitlines()[0].startswith(location)
    ran = (tmp_path / "run.err").read_text()
    assert process.returncode == 0, ran
    assert f"planned 30 rows (30 requests) into {location}/manifest.parquet" in ran
    assert f"the job's output is in {location}" in ran
    assert leased is not None and (leased.pid, leased.staging) == (process.pid, staging)
    assert ".batchrun-lease.json" not in s3.files("lines")  # the run's end removed it
    report = batchrun(tmp_path, "report", str(spec), env=env)
    assert report.stdout.startswith(f"{location}/report/index.html  (a copy here: {staging}/report/index.html)")
    exported = batchrun(tmp_path, "export", str(spec), env=env)
    assert exported.stdout.startswith(f"{location}/export.parquet  (30 rows; a copy here: {staging}/export.parquet)")
    assert "export.parquet" in s3.files("lines")
    for text in (second.stderr, status.stdout, ran, report.stdout, exported.stdout):
        assert staging not in text.replace(f"a copy here: {staging}", "")


def foreign_lease(renewed_s_ago: float) -> bytes:
    """The lease of a run on another machine, last renewed `renewed_s_ago` seconds ago."""
    renewed = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=renewed_s_ago)
    started = (renewed - dt.timedelta(hours=1)).isoformat(timespec="seconds")
    return Lease("gpu-7", 4242, "20260101T000000-abcdef", "/var/cache/batchrun/staging/x", started,
                 renewed.isoformat(timespec="seconds")).to_bytes()


def test_a_fresh_lease_of_another_machine_refuses_the_run_and_status_and_report_ignore_it(tmp_path, s3):  # noqa: F811
    simulator = start_simulator(tmp_path, profile="clean")
    env = env_for(s3, tmp_path / "cache")
    try:
        spec = write_spec(tmp_path, text_job("lines", simulator.url, 4, output={"dir": f"s3://{s3.bucket}/lines"}))
        first = run_job(tmp_path, spec, env=env)
        assert first.returncode == 0, first.stderr
        lease = foreign_lease(renewed_s_ago=30)
        s3.write("lines/.batchrun-lease.json", lease)
        sent = len(simulator.requests())
        refused = run_job(tmp_path, spec, env=env)
        status = batchrun(tmp_path, "status", str(spec), env=env)
        report = batchrun(tmp_path, "report", str(spec), env=env)
        assert len(simulator.requests()) == sent
    finally:
        simulator.stop()
    assert refused.returncode == 9, refused.stderr
    [line] = [text for text in refused.stderr.splitlines() if "error" in text]
    assert line.startswith(f"batchrun: error: s3://{s3.bucket}/lines is being run on gpu-7 (pid 4242, started ")
    assert "--take-over" in line
    assert (status.returncode, report.returncode) == (0, 0), status.stderr + report.stderr
    assert s3.read("lines/.batchrun-lease.json") == lease
    assert not (staging_folder(f"s3://{s3.bucket}/lines", {"BATCHRUN_CACHE_DIR": str(tmp_path / "cache")})
                / ".batchrun-lease.json").exists()


def test_a_stale_lease_is_taken_over_with_a_warning_and_the_runs_end_removes_it(tmp_path, s3):  # noqa: F811
    simulator = start_simulator(tmp_path, profile="clean")
    try:
        spec = write_spec(tmp_path, text_job("lines", simulator.url, 4, output={"dir": f"s3://{s3.bucket}/lines"}))
        s3.write("lines/.batchrun-lease.json", foreign_lease(renewed_s_ago=600))
        stale = run_job(tmp_path, spec, env=env_for(s3, tmp_path / "cache"))
        s3.write("lines/.batchrun-lease.json", foreign_lease(renewed_s_ago=5))
        forced = run_job(tmp_path, spec, "--take-over", env=env_for(s3, tmp_path / "cache"))
    finally:
        simulator.stop()
    assert stale.returncode == 0, stale.stderr
    assert "taking over gpu-7's lease on" in stale.stderr and "stale" in stale.stderr
    assert forced.returncode == 0, forced.stderr
    assert "fresh, taken over as --take-over asks" in forced.stderr
    assert ".batchrun-lease.json" not in s3.files("lines")
    assert len(s3.result_rows("lines")) == 4


def hold_lease_until_exit(s3: S3Server, prefix: str, process, lease: bytes) -> None:  # noqa: F811
    """Another machine's run holding the job's lease: written again every 0.2 s, as a run renews its own (a
    renewal of the first run that read its own lease just before may write over it once: no compare-and-swap)."""
    key = f"{prefix}/.batchrun-lease.json"
    while True:
        if s3.read(key) != lease:
            s3.write(key, lease)
        try:
            process.wait(timeout=0.2)
            return
        except subprocess.TimeoutExpired:
            continue


def test_a_run_whose_lease_another_machine_takes_over_stops_with_exit_9_and_a_take_over_run_finishes_the_job(
        tmp_path, s3):  # noqa: F811
    simulator = start_simulator(tmp_path, faults=write_faults(tmp_path, "slow", SLOW))
    location = f"s3://{s3.bucket}/lines"
    env = env_for(s3, tmp_path / "cache", BATCHRUN_UPLOAD_EVERY_S="0.5")  # the lease renews every 0.5 s
    try:
        spec = write_spec(tmp_path, text_job("lines", simulator.url, 60, limits={"concurrency": 1},
                                             output={"dir": location}))
        process = start_batchrun(tmp_path, "run", str(spec), "--progress", "plain", stderr=tmp_path / "run.err",
                                 env=env)
        wait_until(lambda: len(simulator.requests()) >= 3, process, "3 requests sent")
        hold_lease_until_exit(s3, "lines", process, foreign_lease(renewed_s_ago=0))  # another machine took it over
        sent_by_first = len(simulator.requests())
        in_bucket = s3.result_rows("lines")
        second = run_job(tmp_path, spec, "--take-over", env=env)
    finally:
        simulator.stop()
    stderr = (tmp_path / "run.err").read_text()
    assert process.returncode == 9, stderr
    [line] = [text for text in stderr.splitlines() if text.startswith("batchrun: error")]
    assert line.startswith(f"batchrun: error: run stopped: {location} was taken over by gpu-7 (pid 4242, run "
                           f"20260101T000000-abcdef), so this run stopped sending; its results so far are in {location}")
    assert sent_by_first < 50  # stopped within about a second of 0.15 s requests, not at the end
    assert len(in_bucket) == sent_by_first and {row["status"] for row in in_bucket} == {"ok"}
    [record] = run_records(location, tmp_path / "cache")[:1]
    assert (record["exit_code"], record["stop_reason"]) == (9, "lease")
    assert record["message"] == line.removeprefix("batchrun: error: ")
    assert second.returncode == 0, second.stderr
    rows = s3.result_rows("lines")
    assert sorted({row["request_id"] for row in rows}) == sorted(row["request_id"] for row in rows)
    assert len(rows) == 60 and ".batchrun-lease.json" not in s3.files("lines")


def test_a_cluster_run_whose_lease_another_machine_takes_over_stops_every_worker_with_exit_9(tmp_path, s3):  # noqa: F811
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'batchrun[ray]' runs this test")
    simulator = start_simulator(tmp_path, faults=write_faults(tmp_path, "slow", SLOW))
    location = f"s3://{s3.bucket}/lines"
    env = env_for(s3, tmp_path / "cache", BATCHRUN_UPLOAD_EVERY_S="0.5")
    try:
        spec = write_spec(tmp_path, text_job("lines", simulator.url, 200, limits={"concurrency": 2},
                                             output={"dir": location}))
        process = start_batchrun(tmp_path, "run", str(spec), "--progress", "plain", "--ray", "local:2",
                                 stderr=tmp_path / "run.err", env=env)
        wait_until(lambda: len(simulator.requests()) >= 3, process, "3 requests sent", timeout_s=240)
        hold_lease_until_exit(s3, "lines", process, foreign_lease(renewed_s_ago=0))
        sent_by_first = len(simulator.requests())
    finally:
        simulator.stop()
    stderr = (tmp_path / "run.err").read_text()
    assert process.returncode == 9, stderr
    [line] = [text for text in stderr.splitlines() if text.startswith("batchrun: error")]
    assert line.startswith(f"batchrun: error: run stopped: {location} was taken over by gpu-7 (pid 4242, run ")
    assert sent_by_first < 200  # the cluster stopped sending, not at the end
    in_bucket = s3.result_rows("lines")
    assert len(in_bucket) == sent_by_first and {row["status"] for row in in_bucket} == {"ok"}
