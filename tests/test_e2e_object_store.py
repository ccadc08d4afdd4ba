"""End to end: `output.dir: s3://bucket/job` and `gs://bucket/job` with the real CLI, the simulator and a real
server on 127.0.0.1 for each (moto's S3 server; gcp-storage-emulator, found through the standard
`STORAGE_EMULATOR_HOST` and no other setting). Every test runs against both.

What must hold: a run's results, images, manifest and run records land in the bucket; `status`, `report`
and `export` from another folder, with another (empty) staging folder, read them from the bucket alone; a
run killed with SIGKILL whose machine is then lost (its staging folder deleted) is refused while its lease
is fresh, then with `--take-over` resumes from the bucket, sends again nothing whose result had been
uploaded, and reports the requests in flight at the last upload as sent again; a mistyped bucket stops
every command with one line naming it and the fix, before any request is sent.
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq
import pytest
from e2e_helpers import (
    RUN_TIMEOUT_S,
    Outputs,
    batchrun,
    cli_env,
    image_job,
    run_job,
    sends_by_id,
    start_batchrun,
    start_simulator,
    text_job,
    wait_until,
    write_faults,
    write_spec,
)
from gcs_server import gcs, gcs_host  # noqa: F401  (fixtures)
from s3_server import CREDENTIALS, s3, s3_endpoint  # noqa: F401  (fixtures)

from batchrun.output.mirror import staging_folder
from batchrun.simulator.faults import PROFILES

FIX_NAMED = {"s3": "AWS_ENDPOINT_URL", "gs": "GOOGLE_APPLICATION_CREDENTIALS"}  # each scheme's fix in its message


@dataclass
class Bucket:
    """A test's bucket on one of the two servers."""

    scheme: str
    server: Any  # S3Server or GcsServer: env, bucket, files(prefix), result_rows(prefix)

    def uri(self, prefix: str) -> str:
        return f"{self.scheme}://{self.server.bucket}/{prefix}"

    def missing(self, prefix: str) -> str:
        return f"{self.scheme}://no-such-bucket/{prefix}"

    def env(self, cache, **extra: str) -> dict[str, str]:
        return cli_env(**self.server.env, BATCHRUN_CACHE_DIR=str(cache), **extra)

    def staging(self, prefix: str, cache):
        return staging_folder(self.uri(prefix), {"BATCHRUN_CACHE_DIR": str(cache)})


@pytest.fixture(params=["s3", "gs"])
def bucket(request) -> Bucket:
    return Bucket(request.param, request.getfixturevalue("s3" if request.param == "s3" else "gcs"))


def final_ids(rows: list[dict]) -> set[str]:
    return {row["request_id"] for row in rows if row["status"] == "ok"}


def test_an_image_job_lands_in_the_bucket_and_status_report_export_from_elsewhere_read_it(tmp_path, bucket):
    simulator = start_simulator(tmp_path, profile="clean")
    try:
        spec = write_spec(tmp_path, image_job("photos", simulator.url, tmp_path, photos=2, scenes=2,
                                              output={"dir": bucket.uri("photos")}))
        done = run_job(tmp_path, spec, env=bucket.env(tmp_path / "cache-a"))
    finally:
        simulator.stop()
    assert done.returncode == 0, done.stderr
    files = bucket.server.files("photos")
    rows = bucket.server.result_rows("photos")
    assert len(rows) == 4 and {row["status"] for row in rows} == {"ok"}
    assert {row["image_path"] for row in rows} <= set(files)
    assert "manifest.parquet" in files and any(name.startswith("runs/") for name in files)
    assert not any(name.startswith("journal/") or name == ".lock" for name in files)
    assert not (tmp_path / "outputs").exists()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env_b = bucket.env(tmp_path / "cache-b")
    status = batchrun(elsewhere, "status", str(tmp_path / spec), "--json", env=env_b)
    assert status.returncode == 0, status.stderr
    document = json.loads(status.stdout)
    assert document["done"]["ok"] == 4 and document["pending"] == 0
    report = batchrun(elsewhere, "report", str(tmp_path / spec), env=env_b)
    assert report.returncode == 0, report.stderr
    assert "report/index.html" in bucket.server.files("photos")
    exported = batchrun(elsewhere, "export", str(tmp_path / spec), "--out", str(elsewhere / "rows.parquet"), env=env_b)
    assert exported.returncode == 0, exported.stderr
    assert pq.read_table(elsewhere / "rows.parquet").num_rows == 4
    for text in (done.stderr, status.stdout, status.stderr, report.stderr, exported.stderr):
        assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in text


def test_a_killed_run_on_a_lost_machine_resumes_from_the_bucket_sending_nothing_uploaded_again(tmp_path, bucket):
    # the flaky profile's faults, every reply 150 ms late: 300 requests two at a time take 20 s or more, so the
    # kill lands mid-run however fast the machine is
    slow_flaky = {**PROFILES["flaky"], "latency": {"distribution": "fixed", "ms": 150}}
    simulator = start_simulator(tmp_path, faults=write_faults(tmp_path, "slow-flaky", slow_flaky), seed=11)
    try:
        spec = write_spec(tmp_path, text_job("lines", simulator.url, 300, output={"dir": bucket.uri("lines")},
                                             limits={"concurrency": 2}))
        env_a = bucket.env(tmp_path / "cache-a", BATCHRUN_UPLOAD_EVERY_S="0")
        process = start_batchrun(tmp_path, "run", str(spec), "--progress", "plain", env=env_a,
                                 stderr=tmp_path / "killed.err")
        wait_until(lambda: len(final_ids(bucket.server.result_rows("lines"))) >= 20, process,
                   "20 results in the bucket")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=RUN_TIMEOUT_S)
        uploaded = final_ids(bucket.server.result_rows("lines"))
        assert len(uploaded) < 300, "the kill should land mid-run: make the job longer"
        logged = len(simulator.requests())
        assert (bucket.staging("lines", tmp_path / "cache-a") / "journal").is_dir()  # what the lost machine takes

        # the lost machine's lease is still fresh: another machine takes over, as the refusal says
        refused = run_job(tmp_path, spec, env=bucket.env(tmp_path / "cache-b"))
        assert refused.returncode == 9 and "--take-over" in refused.stderr, refused.stderr
        resumed = run_job(tmp_path, spec, "--take-over", env=bucket.env(tmp_path / "cache-b"))
        assert resumed.returncode in (0, 3), resumed.stderr
        assert "taking over" in resumed.stderr
        log = simulator.requests()
    finally:
        simulator.stop()
    hashes = Outputs(bucket.staging("lines", tmp_path / "cache-b"), tmp_path / "jobs").body_hashes()
    again = uploaded & set(sends_by_id(log[logged:], hashes))
    assert not again, f"{len(again)} requests whose result was in the bucket were sent again"
    rows = bucket.server.result_rows("lines")
    assert len({row["request_id"] for row in rows}) == 300
    assert "requests were in flight and are sent again" in resumed.stderr  # from the journal in the bucket
    assert not [name for name in bucket.server.files("lines") if name.startswith("journal/")]


def test_a_bucket_that_does_not_exist_stops_the_run_before_any_request_is_sent(tmp_path, bucket):
    simulator = start_simulator(tmp_path, profile="clean")
    try:
        spec = write_spec(tmp_path, text_job("lines", simulator.url, 5, output={"dir": bucket.missing("lines")}))
        done = run_job(tmp_path, spec, env=bucket.env(tmp_path / "cache"))
        sent = len(simulator.requests())
    finally:
        simulator.stop()
    assert done.returncode == 10, done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith(f"batchrun: error: {bucket.missing('lines')}: cannot read the job: ")
    assert "the bucket no-such-bucket does not exist" in last and FIX_NAMED[bucket.scheme] in last
    assert "Traceback" not in done.stderr and "error_info" not in done.stderr
    assert sent == 0  # a mistyped bucket costs nothing: it is found before the first paid request


def test_status_report_and_export_of_a_mistyped_bucket_say_it_does_not_exist_and_of_a_new_job_to_plan_it(
        tmp_path, bucket):
    env = bucket.env(tmp_path / "cache")
    for command in ("status", "report", "export"):
        mistyped = write_spec(tmp_path, text_job("lines", "http://127.0.0.1:9", 3, output={"dir": bucket.missing("x")}))
        done = batchrun(tmp_path, command, str(mistyped), env=env)
        assert done.returncode == 10, done.stderr
        [line] = done.stderr.splitlines()
        assert line.startswith(f"batchrun: error: {bucket.missing('x')}: cannot read the job: the bucket no-such-bucket "
                               "does not exist; fix output.dir"), line
        new = write_spec(tmp_path, text_job("lines", "http://127.0.0.1:9", 3, output={"dir": bucket.uri("x")}))
        empty = batchrun(tmp_path, command, str(new), env=env)
        assert empty.returncode == 2, empty.stderr
        assert f"{bucket.uri('x')} has no manifest.parquet" in empty.stderr and "run `batchrun plan`" in empty.stderr
