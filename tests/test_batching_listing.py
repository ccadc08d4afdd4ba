"""`batchrun status`'s batches, read from the ledger alone."""

from __future__ import annotations

from test_status import make_folder

from batchrun.batching.chunks import Chunk
from batchrun.batching.ledger import Ledger
from batchrun.batching.listing import BatchLine, batch_lines
from batchrun.output.status import format_status, summarize


class Ticks:
    """A wall clock that moves 10 s at each ledger line."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 10.0
        return self.now


def chunk(chunk_id: str, count: int) -> Chunk:
    return Chunk(chunk_id, f"batchrun-job-{chunk_id}", "gemini-2.5-flash", None, _Ids(f"{chunk_id}.ids"), count, 100)


class _Ids:
    def __init__(self, name: str) -> None:
        self.name = name


def ledger_of_three(tmp_path) -> Ledger:
    ledger = Ledger(tmp_path, now=Ticks())
    for chunk_id, count in (("a", 2), ("b", 3), ("c", 1)):
        ledger.planned(chunk(chunk_id, count))  # at 1010, 1020, 1030
    for chunk_id in ("a", "b"):
        ledger.uploading(chunk_id)
        ledger.uploaded(chunk_id, f"files/{chunk_id}")
        ledger.creating(chunk_id)
        ledger.created(chunk_id, f"batches/{chunk_id}")  # a at 1070, b at 1110
    ledger.state("a", "BATCH_STATE_SUCCEEDED", {}, "files/out-a")
    ledger.collected("a", 2, 0, 0)
    ledger.state("b", "JOB_STATE_RUNNING", {}, None)
    return ledger


def test_each_chunk_is_listed_with_its_batch_state_requests_age_and_results_collected(tmp_path):
    ledger_of_three(tmp_path)

    assert batch_lines(tmp_path, now=2000.0) == [
        BatchLine("a", "batches/a", "collected", 2, 930.0, 2),
        BatchLine("b", "batches/b", "running", 3, 890.0, None, 48 * 3600.0 - 890.0),
        BatchLine("c", None, "planned", 1, 970.0, None),
    ]


def test_a_job_that_never_ran_at_the_batch_tier_lists_no_batches(tmp_path):
    assert batch_lines(tmp_path, now=0.0) == []


def test_status_shows_the_batches_in_text_and_json(tmp_path):
    out = make_folder(tmp_path, manifest_size=6)
    ledger_of_three(out)
    summary = summarize(out, now=2000.0)

    assert [b["state"] for b in summary.to_json()["batches"]] == ["collected", "running", "planned"]
    assert format_status(summary).splitlines()[-4:] == [
        "batches 3",
        "  a  batches/a  collected, 2 requests, age 15m30s, 2 results collected",
        "  b  batches/b  running, 3 requests, age 14m50s, expires in 47h45m",
        "  c  (not created)  planned, 1 request, age 16m10s",
    ]


def test_a_batch_given_up_on_for_the_fallback_shows_cancelling_until_the_switch_ends(tmp_path):
    ledger = ledger_of_three(tmp_path)
    ledger.cancel_requested("b", "past the batch timeout")
    [_, b, _] = batch_lines(tmp_path, now=2000.0)
    assert b.state == "cancelling"
    ledger.returned_to_pending("b", "cancelled for the fallback")
    [_, b, _] = batch_lines(tmp_path, now=2000.0)
    assert (b.state, b.expires_in_s) == ("returned_to_pending", None)


def test_a_batch_past_its_expiry_shows_no_time_left(tmp_path):
    ledger_of_three(tmp_path)
    [_, b, _] = batch_lines(tmp_path, now=1110.0 + 50 * 3600)
    assert b.expires_in_s == 0.0


def test_status_names_the_variable_of_each_batchs_key_never_the_key(tmp_path):
    out = make_folder(tmp_path, manifest_size=6)
    ledger = Ledger(out, now=Ticks())
    ledger.planned(chunk("a", 2))
    ledger.uploading("a", "GEMINI_KEY_B")
    ledger.uploaded("a", "files/a")
    summary = summarize(out, now=2000.0)

    assert [b["key"] for b in summary.to_json()["batches"]] == ["GEMINI_KEY_B"]
    assert format_status(summary).splitlines()[-1] == "  a  (not created)  uploaded, 2 requests, age 16m30s, key in GEMINI_KEY_B"
