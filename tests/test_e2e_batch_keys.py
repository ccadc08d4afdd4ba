"""End to end: `batchrun run --tier batch` with a pool of keys, the real CLI against `batchrun simulate`.

The simulator counts each key apart (`limits.per_key`), so each key is a project of its own: a file or
batch is seen only with the key that made it (another key is answered 403), and its request log numbers
each key in the order first seen. Batches end on their second get (`min_gets`), so the first run submits
and exits 13, and later runs poll and collect; a run is repeated until it exits other than 13.
"""

from __future__ import annotations

from collections import Counter

from e2e_helpers import E2E_JOBS, assert_no_key, batchrun, cli_env, outputs, start_simulator, text_job, write_spec

from batchrun.batching.ledger import read_ledger

EXIT_BATCHES_RUNNING = 13
MAX_RUNS = 12
ROWS, PER_BATCH = 9, 3
KEYS = {"BATCH_KEY_1": "k1-test-batch-pool", "BATCH_KEY_2": "k2-test-batch-pool", "BATCH_KEY_3": "k3-test-batch-pool"}
REVOKED = "test-key-e2e-batch-revoked"  # listed in e2e_jobs/batch_keys.yaml


def pool_spec(folder, url: str, variables: list[str]):
    job = text_job("batchkeys", url, ROWS, batch={"max_requests": PER_BATCH})
    job["provider"]["api_key_env"] = variables
    return write_spec(folder, job)


def run(folder, spec, **env: str):
    return batchrun(folder, "run", str(spec), "--tier", "batch", "--progress", "plain",
                    env=cli_env(None, **{**KEYS, "BATCH_KEY_REVOKED": REVOKED, **env}))


def runs_until_done(folder, spec, **env: str) -> list:
    results = []
    for _ in range(MAX_RUNS):
        results.append(run(folder, spec, **env))
        if results[-1].returncode != EXIT_BATCHES_RUNNING:
            return results
    raise AssertionError(f"still running after {MAX_RUNS} runs")


def batch_calls(simulator, rpc: str) -> list[dict]:
    return [line for line in simulator.requests() if line["rpc"] == rpc]


def ledger_keys(folder) -> list[str | None]:
    return [chunk.key_env for chunk in read_ledger(folder / "outputs/batchkeys/batches/ledger.jsonl").chunks.values()]


def assert_complete(folder) -> None:
    job = outputs(folder, "batchkeys")
    rows = job.rows()
    assert sorted(r["request_id"] for r in rows) == sorted(job.ids)
    assert {(r["status"], r["service_tier"]) for r in rows} == {("ok", "batch")}


def test_batches_go_one_to_each_key_and_a_resumed_run_polls_and_collects_each_with_its_own(tmp_path):
    simulator = start_simulator(tmp_path, faults=E2E_JOBS / "batch_keys.yaml")
    try:
        first = run(tmp_path, pool_spec(tmp_path, simulator.url, list(KEYS)))
        assert first.returncode == EXIT_BATCHES_RUNNING, first.stderr
        assert ledger_keys(tmp_path) == list(KEYS)
        reordered = pool_spec(tmp_path, simulator.url, ["BATCH_KEY_3", "BATCH_KEY_1", "BATCH_KEY_2"])
        later = runs_until_done(tmp_path, reordered)
    finally:
        simulator.stop()

    assert later[-1].returncode == 0, later[-1].stderr
    assert_complete(tmp_path)
    creates = batch_calls(simulator, "batches.create")
    assert Counter(line["key"] for line in creates) == {1: 1, 2: 1, 3: 1}  # one batch on each key
    gets, downloads = batch_calls(simulator, "batches.get"), batch_calls(simulator, "files.download")
    assert {line["status"] for line in gets + downloads} == {200}  # another key's would be 403
    assert Counter(line["key"] for line in gets) == {1: 2, 2: 2, 3: 2}
    assert Counter(line["key"] for line in downloads) == {1: 1, 2: 1, 3: 1}
    for result in [first, *later]:
        for value in KEYS.values():
            assert_no_key(tmp_path, result.stderr, result.stdout, key=value)


def test_a_revoked_key_is_dropped_at_submit_with_one_warning_and_its_batch_goes_to_another_key(tmp_path):
    simulator = start_simulator(tmp_path, faults=E2E_JOBS / "batch_keys.yaml")
    try:
        spec = pool_spec(tmp_path, simulator.url, ["BATCH_KEY_1", "BATCH_KEY_REVOKED", "BATCH_KEY_2"])
        results = runs_until_done(tmp_path, spec)
    finally:
        simulator.stop()

    assert results[-1].returncode == 0, results[-1].stderr
    assert_complete(tmp_path)
    assert ledger_keys(tmp_path) == ["BATCH_KEY_1", "BATCH_KEY_2", "BATCH_KEY_1"]
    warnings = [line for r in results for line in r.stderr.splitlines() if "failed authentication" in line]
    assert len(warnings) == 1 and "BATCH_KEY_REVOKED" in warnings[0] and "dropped for this run" in warnings[0]
    assert Counter(line["outcome"] for line in batch_calls(simulator, "files.upload.start")) == {"ok": 3, "bad_key": 1}
    assert len(batch_calls(simulator, "batches.create")) == 3
    for result in results:
        assert_no_key(tmp_path, result.stderr, result.stdout, key=REVOKED)


def test_a_key_revoked_while_its_batch_runs_returns_the_batch_to_pending_and_a_later_run_sends_it(tmp_path):
    simulator = start_simulator(tmp_path, faults=E2E_JOBS / "batch_keys.yaml")
    try:
        spec = pool_spec(tmp_path, simulator.url, ["BATCH_KEY_1", "BATCH_KEY_2"])
        first = run(tmp_path, spec)
        assert first.returncode == EXIT_BATCHES_RUNNING, first.stderr
        revoked = runs_until_done(tmp_path, spec, BATCH_KEY_2=REVOKED)  # its value changed for a revoked one
    finally:
        simulator.stop()

    assert revoked[-1].returncode == 0, revoked[-1].stderr
    assert_complete(tmp_path)
    stderr = "\n".join(r.stderr for r in revoked)
    assert revoked[0].stderr.count("the key in BATCH_KEY_2 failed authentication") == 1  # one warning a run
    assert all(r.stderr.count("dropped for this run") <= 1 for r in revoked)
    assert "3 requests of batches sent with the key in BATCH_KEY_2 are pending again" in stderr
    assert "may be billed twice" in stderr
    chunks = list(read_ledger(tmp_path / "outputs/batchkeys/batches/ledger.jsonl").chunks.values())
    assert {chunk.key_env for chunk in chunks} == {"BATCH_KEY_1"}  # the returned chunk was sent again with key 1


def test_every_key_failing_authentication_stops_the_run_with_exit_6(tmp_path):
    simulator = start_simulator(tmp_path, faults=E2E_JOBS / "batch_keys.yaml")
    try:
        spec = pool_spec(tmp_path, simulator.url, ["BATCH_KEY_REVOKED", "BATCH_KEY_1"])
        result = run(tmp_path, spec, BATCH_KEY_1=REVOKED)
    finally:
        simulator.stop()

    assert result.returncode == 6, result.stderr
    assert "dropped for this run" in result.stderr and "with the key in BATCH_KEY_1" in result.stderr.splitlines()[-1]
    assert len(batch_calls(simulator, "batches.create")) == 0
    assert_no_key(tmp_path, result.stderr, result.stdout, key=REVOKED)
