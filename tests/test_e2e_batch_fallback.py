"""End to end: `--fallback` switches slow batches to a synchronous tier, and a batch run with nothing pending
still collects the batches in flight. The real CLI against `batchrun simulate` as a real server, whose
faults file makes its batches slow (`batch: {pending_s, running_s}`); the simulator's request log shows
what was created, cancelled and answered.
"""

from __future__ import annotations

import json
from collections import Counter

from e2e_helpers import batchrun, outputs, run_job, sends_by_id, start_simulator, text_job, write_faults, write_spec

from batchrun.tiers import Tier

EXIT_BATCHES_RUNNING = 13


def slow_batch_simulator(folder, pending_s: float = 1000.0, running_s: float = 1000.0):
    faults = write_faults(folder, "slowbatch", {"batch": {"pending_s": pending_s, "running_s": running_s}})
    return start_simulator(folder, faults=faults)


def run_record(folder, name: str) -> dict:
    (path,) = sorted((folder / "outputs" / name / "runs").glob("*.json"))[-1:]
    return json.loads(path.read_text())


def test_a_batch_past_its_timeout_is_cancelled_and_its_requests_answered_once_at_flex(tmp_path):
    simulator = slow_batch_simulator(tmp_path)
    try:
        spec = write_spec(tmp_path, text_job("fallback", simulator.url, 6))
        result = run_job(tmp_path, spec, "--tier", "batch", "--fallback", "flex", "--batch-timeout", "1s", "--wait")
        log = simulator.requests()
    finally:
        simulator.stop()

    assert result.returncode == 0, result.stderr
    job = outputs(tmp_path, "fallback")
    rows = job.rows()
    assert sorted(r["request_id"] for r in rows) == sorted(job.ids)  # one final row per request
    assert {(r["status"], r["service_tier"]) for r in rows} == {("ok", "flex")}
    rpcs = Counter(line["rpc"] for line in log)
    assert (rpcs["batches.create"], rpcs["batches.cancel"], rpcs["batch.line"]) == (1, 1, 0)
    synchronous = [line for line in log if line["rpc"] == "generateContent"]
    assert sends_by_id(synchronous, job.body_hashes(tier=Tier.FLEX)) == dict.fromkeys(job.ids, 1)
    cancel_at = next(line["t"] for line in log if line["rpc"] == "batches.cancel")
    assert all(line["t"] >= cancel_at for line in synchronous)
    assert "6 requests of cancelled batches had no result and are sent again at the flex tier" in result.stderr
    record = run_record(tmp_path, "fallback")["fallback"]
    assert {key: value for key, value in record.items() if key != "most_billed_twice_usd"} == {
        "tier": "flex", "batches_cancelled": 1, "chunks_unsubmitted": 0, "requests_sent": 6, "requests_sent_again": 6}
    assert record["most_billed_twice_usd"] > 0

def test_a_synchronous_run_leaves_requests_held_by_a_running_batch_to_it_and_exits_13(tmp_path):
    simulator = slow_batch_simulator(tmp_path)
    try:
        spec = write_spec(tmp_path, text_job("held", simulator.url, 3))
        first = run_job(tmp_path, spec, "--tier", "batch")
        standard = run_job(tmp_path, spec)
        log = simulator.requests()
    finally:
        simulator.stop()

    assert (first.returncode, standard.returncode) == (EXIT_BATCHES_RUNNING, EXIT_BATCHES_RUNNING), standard.stderr
    assert "3 requests (3 rows) are in batches still running at the server" in standard.stderr
    assert not [line for line in log if line["rpc"] == "generateContent"]


def test_a_batch_run_with_nothing_pending_collects_the_batches_its_rows_no_longer_need(tmp_path):
    simulator = slow_batch_simulator(tmp_path, pending_s=0.2, running_s=0.5)
    try:
        spec = write_spec(tmp_path, text_job("orphans", simulator.url, 4))
        first = run_job(tmp_path, spec, "--tier", "batch")  # submits, exits 13 while the batch runs
        # a synchronous run answers every row meanwhile, as 0.4.0 did (it sent what batches held): the
        # ledger out of its sight, this version's synchronous run would leave those requests to the batch
        ledger = tmp_path / "outputs" / "orphans" / "batches" / "ledger.jsonl"
        ledger.rename(ledger.with_suffix(".aside"))
        standard = run_job(tmp_path, spec)
        ledger.with_suffix(".aside").rename(ledger)
        last = run_job(tmp_path, spec, "--tier", "batch", "--wait")  # nothing pending: collects the batch
        status = batchrun(tmp_path, "status", str(spec), "--json")
    finally:
        simulator.stop()

    assert (first.returncode, standard.returncode, last.returncode) == (EXIT_BATCHES_RUNNING, 0, 0), last.stderr
    (batch,) = json.loads(status.stdout)["batches"]
    assert batch["state"] == "collected"
    rows = outputs(tmp_path, "orphans").rows()
    assert len(rows) == 4 and "batch" not in {r["service_tier"] for r in rows}  # the batch's replies skipped
