import json
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchrun.errors import UsageError
from batchrun.output.journal import JournalWriter, result_values
from batchrun.output.live import LiveFile, live_path
from batchrun.output.lock import acquire_lock, release_lock
from batchrun.output.progress import Progress
from batchrun.output.sink import rows_to_table, write_part
from batchrun.output.status import format_status, last_run_record, summarize
from batchrun.records import ResultRecord

DEAD_PID = 4_194_304 + 17



@pytest.fixture
def hold_lock():
    """Hold an output folder's lock until the test ends, as a live run does."""
    held: list[Path] = []
    yield lambda out: held.append(acquire_lock(out))
    for path in held:
        release_lock(path)

def result(request_id: str, status: str = "ok", finished_at: float = 1_700_000_100.0, **extra) -> tuple:
    return result_values(ResultRecord(request_id, status, 1, finished_at - 1, finished_at, **extra))


def make_folder(tmp_path: Path, manifest_size: int = 10, model: str = "gemini-2.5-flash") -> Path:
    out = tmp_path / "out"
    (out / "results").mkdir(parents=True)
    ids = [f"id{n}" for n in range(manifest_size)]
    manifest = pa.table({"request_id": ids, "seq": pa.array(range(manifest_size), pa.int64()),
                         "model": [model] * manifest_size})
    pq.write_table(manifest, out / "manifest.parquet")
    return out


def write_rows(out: Path, number: int, rows: list[tuple]) -> None:
    write_part(rows_to_table(rows), out / "results" / f"part-{number:06d}.parquet")


def journal(out: Path, run_id: str, sent: list[str], rows: list[tuple]) -> None:
    writer = JournalWriter(out / "journal", run_id, flush_every=1, fsync_interval_s=60, clock=lambda: 0.0)
    writer.open_segment()
    for request_id in sent:
        writer.append_sent(request_id)
    for row in rows:
        writer.append_result(row)
    writer.close()


def test_counts_and_spend_of_a_hand_made_folder(tmp_path):
    out = make_folder(tmp_path)
    write_rows(out, 1, [
        result("id0", cost_usd=0.04, prompt_tokens=100, output_image_tokens=1290, total_tokens=1390,
               model="gemini-2.5-flash-image"),
        result("id1", cost_usd=0.02, prompt_tokens=50, total_tokens=80),
        result("id2", "blocked", finish_reason="IMAGE_SAFETY", cost_usd=0.001, prompt_tokens=40),
        result("id3", "invalid", error_kind="http_400"),
        result("id4", "failed", error_kind="http_503"),
        result("id5", "failed", error_kind="timeout"),
        result("id6", "failed", error_kind="http_503"),
    ])

    summary = summarize(out)

    assert (summary.total, summary.final, summary.pending) == (10, 4, 6)
    assert summary.done == {"ok": 2, "blocked": 1, "invalid": 1, "failed": 3}
    assert summary.failed_by_error_kind == {"http_503": 2, "timeout": 1}
    assert summary.blocked_by_finish_reason == {"IMAGE_SAFETY": 1}
    assert summary.spend_usd == pytest.approx(0.061)
    assert summary.spend == [
        {"model": "gemini-2.5-flash", "status": "blocked", "cost_usd": pytest.approx(0.001), "results": 1},
        {"model": "gemini-2.5-flash", "status": "failed", "cost_usd": 0.0, "results": 3},
        {"model": "gemini-2.5-flash", "status": "invalid", "cost_usd": 0.0, "results": 1},
        {"model": "gemini-2.5-flash", "status": "ok", "cost_usd": pytest.approx(0.02), "results": 1},
        {"model": "gemini-2.5-flash-image", "status": "ok", "cost_usd": pytest.approx(0.04), "results": 1},
    ]
    assert summary.tokens == {"prompt_tokens": 190, "output_text_tokens": 0, "output_image_tokens": 1290,
                              "thoughts_tokens": 0, "total_tokens": 1470}
    assert (summary.unpriced_results, summary.not_in_manifest, summary.live_pid, summary.in_flight) == (
        0, 0, None, None)


def test_only_the_latest_row_of_a_request_counts(tmp_path):
    out = make_folder(tmp_path)
    write_rows(out, 1, [result("id0", "failed", finished_at=10.0), result("id1", "failed", finished_at=10.0)])
    write_rows(out, 2, [result("id0", finished_at=20.0, cost_usd=0.5), result("id1", "failed", finished_at=30.0,
                                                                            error_kind="timeout")])
    summary = summarize(out)
    assert summary.done == {"ok": 1, "blocked": 0, "invalid": 0, "failed": 1}
    assert summary.failed_by_error_kind == {"timeout": 1}
    assert summary.spend_usd == 0.5


def test_a_crashed_runs_journal_counts_and_its_in_flight_requests_are_shown(tmp_path):
    out = make_folder(tmp_path)
    write_rows(out, 1, [result("id0")])
    journal(out, "run-9", sent=["id1", "id2", "id3"], rows=[result("id1"), result("id2", "failed")])
    (out / ".lock").write_text(f"{DEAD_PID}\n")

    summary = summarize(out)

    assert (summary.final, summary.done["failed"], summary.pending) == (2, 1, 8)
    assert (summary.in_flight, summary.crashed_run_id, summary.live_pid) == (1, "run-9", None)
    assert "in flight at the crash of run run-9: 1" in format_status(summary)


def test_a_live_run_is_reported_with_its_requests_in_flight(tmp_path, hold_lock):
    out = make_folder(tmp_path)
    journal(out, "run-1", sent=["id0", "id1"], rows=[result("id0")])
    hold_lock(out)

    summary = summarize(out)

    assert (summary.live_pid, summary.in_flight, summary.crashed_run_id) == (os.getpid(), 1, None)
    assert f"run in progress, pid {os.getpid()}" in format_status(summary)


def test_the_crash_the_last_run_recovered_from_is_reported(tmp_path):
    out = make_folder(tmp_path)
    (out / "runs").mkdir()
    records = [{"run_id": "run-1", "written_at": 5, "crashed": True, "in_flight_at_crash": 7},
               {"run_id": "run-2", "written_at": 9, "rows_written": 3,
                "recovered": {"recovered_rows": 2, "in_flight_at_crash": 7, "crashed_run_id": "run-1"}}]
    for record in records:
        (out / "runs" / f"{record['run_id']}.json").write_text(json.dumps(record))

    summary = summarize(out)
    assert (summary.in_flight, summary.crashed_run_id) == (7, "run-1")

    (out / "runs" / "run-3.json").write_text(json.dumps({"run_id": "run-3", "written_at": 12,
                                                         "recovered": {"crashed_run_id": None}}))
    assert summarize(out).in_flight is None


def test_results_outside_the_manifest_are_counted_apart_but_their_cost_is_spent(tmp_path):
    out = make_folder(tmp_path, manifest_size=2)
    write_rows(out, 1, [result("id0", cost_usd=0.5), result("gone-1"), result("gone-2", cost_usd=9.0)])

    summary = summarize(out)

    assert (summary.final, summary.pending, summary.not_in_manifest) == (1, 1, 2)
    assert (summary.spend_usd, summary.not_in_manifest_spend_usd) == (9.5, 9.0)
    assert summary.spend == [{"model": "gemini-2.5-flash", "status": "ok", "cost_usd": 0.5, "results": 1}]
    assert ("spend                            $9.5000   ($9.0000 on 2 results no longer in the manifest: "
            "the spec changed since they ran)") in format_status(summary).splitlines()


def test_a_journal_row_outside_the_manifest_is_spent_too(tmp_path):
    out = make_folder(tmp_path, manifest_size=1)
    write_rows(out, 1, [result("gone-1", "failed", finished_at=10.0, cost_usd=0.25)])
    journal(out, "run-3", sent=["gone-1"], rows=[result("gone-1", finished_at=20.0, cost_usd=1.0)])

    summary = summarize(out)

    assert (summary.spend_usd, summary.not_in_manifest_spend_usd, summary.not_in_manifest) == (1.0, 1.0, 1)


def test_a_spec_changed_since_the_plan_is_said_in_one_line(tmp_path):
    out = make_folder(tmp_path)

    changed, current = summarize(out, spec_changed=True), summarize(out)

    line = ("the spec changed since the last plan: counts are for the old manifest; "
            "`batchrun plan` refreshes it")
    assert format_status(changed).splitlines()[1] == line
    assert line not in format_status(current)
    assert (changed.to_json()["spec_changed"], current.to_json()["spec_changed"]) == (True, False)


def test_every_non_ok_status_is_broken_down_by_error_kind_with_an_example(tmp_path):
    out = make_folder(tmp_path)
    long_message = "Request contains an invalid argument: " + "x" * 200
    write_rows(out, 1, [
        result("id0", "invalid", error_kind="http_400", error_message=long_message),
        result("id1", "invalid", error_kind="http_400", error_message="another 400"),
        result("id2", "invalid", error_kind="unsupported_language", error_message="finishReason LANGUAGE"),
        result("id3", "blocked", finish_reason="IMAGE_SAFETY", error_kind="safety_block",
               error_message="finishReason IMAGE_SAFETY"),
        result("id4", "blocked", error_kind="prompt_blocked", error_message="prompt blocked: OTHER"),
        result("id5", "failed", error_kind="timeout"),
        result("id6", "failed", error_kind="unavailable", error_message="The model is overloaded."),
        result("id7", "failed", error_kind="unavailable", error_message="The model is overloaded."),
        result("id8", "ok"),
    ])

    summary = summarize(out)

    assert summary.problems == {
        "failed": [{"error_kind": "unavailable", "count": 2, "example": "The model is overloaded."},
                   {"error_kind": "timeout", "count": 1, "example": None}],
        "invalid": [{"error_kind": "http_400", "count": 2, "example": long_message},
                    {"error_kind": "unsupported_language", "count": 1, "example": "finishReason LANGUAGE"}],
        "blocked": [{"finish_reason": "(none)", "error_kind": "prompt_blocked", "count": 1,
                     "example": "prompt blocked: OTHER"},
                    {"finish_reason": "IMAGE_SAFETY", "error_kind": "safety_block", "count": 1,
                     "example": "finishReason IMAGE_SAFETY"}],
    }
    assert json.loads(json.dumps(summary.to_json()))["problems"] == summary.problems
    text = format_status(summary).splitlines()
    invalid = text.index("  invalid: http_400                    2")
    assert text[invalid + 1] == "      e.g. " + long_message[:119] + "…"
    assert "  blocked: prompt_blocked               1" in text
    assert "  blocked: IMAGE_SAFETY                1" in text
    assert "e.g." not in text[text.index("  failed: timeout                      1") + 1]  # no message, no example
    assert summary.blocked_by_finish_reason == {"(none)": 1, "IMAGE_SAFETY": 1}  # the older keys still hold
    assert summary.failed_by_error_kind == {"unavailable": 2, "timeout": 1}


def test_json_money_is_rounded_to_six_decimals(tmp_path):
    out = make_folder(tmp_path)
    write_rows(out, 1, [result("id0", cost_usd=0.1), result("id1", cost_usd=0.2), result("gone", cost_usd=0.1),
                        result("id2", cost_usd=3.2991080000000004)])

    text = json.dumps(summarize(out).to_json())
    document = json.loads(text)

    assert (document["spend_usd"], document["not_in_manifest_spend_usd"]) == (3.699108, 0.1)
    assert [row["cost_usd"] for row in document["spend"]] == [3.599108]
    assert "00000" not in text and "99999" not in text


def test_usage_without_a_cost_is_counted_as_unpriced(tmp_path):
    out = make_folder(tmp_path)
    write_rows(out, 1, [result("id0", prompt_tokens=10), result("id1", "failed")])
    assert summarize(out).unpriced_results == 1


def test_an_empty_folder_has_everything_pending(tmp_path):
    out = make_folder(tmp_path, manifest_size=3)
    summary = summarize(out)
    assert (summary.total, summary.final, summary.pending, summary.spend_usd) == (3, 0, 3, 0.0)
    assert summary.spend == []


def test_a_folder_without_manifest_says_what_to_do(tmp_path):
    with pytest.raises(UsageError, match="no manifest.parquet: run `batchrun plan`"):
        summarize(tmp_path)


def test_the_text_table_and_json_carry_the_numbers(tmp_path):
    out = make_folder(tmp_path)
    write_rows(out, 1, [result("id0", cost_usd=1.25), result("id1", "failed", error_kind="http_503")])

    summary = summarize(out)
    text = format_status(summary)
    document = json.loads(json.dumps(summary.to_json()))

    assert "rows                                  10" in text
    assert "pending                                9   failed 1, never sent 8" in text
    assert "  failed: http_503                     1" in text
    assert "$1.2500" in text
    assert (document["total"], document["final"], document["pending"]) == (10, 1, 9)
    assert document["failed_by_error_kind"] == {"http_503": 1}


def test_a_live_runs_pause_is_shown_with_the_time_left_and_why(tmp_path, hold_lock):
    out = make_folder(tmp_path)
    hold_lock(out)
    wall = 1_800_000_000.0
    progress = Progress(total=10, started=0.0, clock=lambda: 100.0)
    progress.pause(45.0, "a 429 storm (12 of the last 20 replies); the server asked for 45s")
    LiveFile(live_path(out, "run-1"), progress, wall=lambda: wall).sync()

    summary = summarize(out, now=wall + 3.0)

    assert summary.pause == {"until": wall + 45.0, "left_s": 42.0,
                             "reason": "a 429 storm (12 of the last 20 replies); the server asked for 45s",
                             "parked": False}
    assert ("paused: rate limited, resuming in 42 s (a 429 storm (12 of the last 20 replies); the server asked for 45s)"
            in format_status(summary).splitlines())
    assert json.loads(json.dumps(summary.to_json()))["pause"]["left_s"] == 42.0


def test_a_live_run_parked_for_a_spent_quota_shows_parked_until_its_reset(tmp_path, hold_lock):
    out = make_folder(tmp_path)
    hold_lock(out)
    wall = 1_800_000_000.0  # 2027-01-15 08:00 UTC
    progress = Progress(total=10, started=0.0, clock=lambda: 100.0)
    progress.park(3600.0, until_wall=wall + 3600.0)
    LiveFile(live_path(out, "run-1"), progress, wall=lambda: wall).sync()

    summary = summarize(out, now=wall + 60.0)

    assert summary.pause == {"until": wall + 3600.0, "left_s": 3540.0, "reason": "quota", "parked": True}
    reset = time.strftime("%H:%M", time.localtime(wall + 3600.0))  # local time, as the user reads it
    assert f"parked until {reset} (quota): 59m00s left" in format_status(summary).splitlines()


def test_no_pause_is_shown_once_it_is_over_or_when_no_run_is_live(tmp_path, hold_lock):
    out = make_folder(tmp_path)
    wall = 1_800_000_000.0
    progress = Progress(total=10, started=0.0, clock=lambda: 100.0)
    progress.pause(45.0, "a 429 storm")
    LiveFile(live_path(out, "run-1"), progress, pid=DEAD_PID, wall=lambda: wall).sync()  # left by a kill -9
    (out / ".lock").write_text(f"{DEAD_PID}\n")
    assert summarize(out, now=wall).pause is None
    hold_lock(out)
    assert summarize(out, now=wall).pause is None  # the live run is another one
    assert "paused" not in format_status(summarize(out, now=wall + 50.0))


def test_a_live_file_is_not_taken_for_the_last_runs_summary(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "run-1.json").write_text(json.dumps({"run_id": "run-1", "written_at": 10.0}))
    (runs / "run-2.live.json").write_text(json.dumps({"run_id": "run-2", "pid": 1, "written_at": 20.0}))
    assert last_run_record(runs)["run_id"] == "run-1"
