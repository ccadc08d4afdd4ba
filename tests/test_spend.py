"""A job's spend from its results alone, and `status`, `estimate` and the run's budget agreeing on it."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from batchrun.cost.estimate import estimate_report
from batchrun.cost.pricing import PriceCatalog
from batchrun.jobrun import spent_so_far
from batchrun.output.journal import JournalWriter, result_values
from batchrun.output.sink import Sink, rows_to_table, write_part
from batchrun.output.spend import JobSpend, job_spend, latest_results, spend_of
from batchrun.output.status import summarize
from batchrun.planning.manifest import ManifestWriter
from batchrun.records import RequestRecord, ResultRecord, TokenEstimate


def result(request_id: str, status: str = "ok", finished_at: float = 100.0, cost_usd: float | None = None) -> tuple:
    return result_values(ResultRecord(request_id, status, 1, finished_at - 1, finished_at, cost_usd=cost_usd))


def request(n: int) -> RequestRecord:
    body = {"contents": [{"role": "user", "parts": [{"text": f"line {n}"}]}], "generationConfig": {}}
    return RequestRecord(f"id{n}", n, "gemini-2.5-flash", body, {"n": n},
                         estimate=TokenEstimate(input_text=3, output_text_max=64))


def folder(tmp_path, manifest_size: int = 4):
    """An output folder with a real manifest of `manifest_size` requests and no results yet."""
    out = tmp_path / "out"
    (out / "results").mkdir(parents=True)
    writer = ManifestWriter(out / "manifest.parquet", "fp")
    writer.write([request(n) for n in range(manifest_size)])
    writer.commit()
    return out


def write_rows(out, number: int, rows: list[tuple]) -> None:
    write_part(rows_to_table(rows), out / "results" / f"part-{number:06d}.parquet")


def crashed_journal(out, rows: list[tuple]) -> None:
    writer = JournalWriter(out / "journal", "run-9", flush_every=1, fsync_interval_s=60, clock=lambda: 0.0)
    writer.open_segment()
    for row in rows:
        writer.append_result(row)
    writer.close()


def test_one_row_per_request_counts_as_the_sink_keeps_them(tmp_path):
    out = folder(tmp_path)
    write_rows(out, 1, [result("id0", "failed", 10.0, 0.5), result("id1", finished_at=10.0, cost_usd=0.25)])
    write_rows(out, 2, [result("id0", finished_at=20.0, cost_usd=1.0), result("id1", "failed", 30.0, 8.0)])

    latest = latest_results(out)

    assert sorted(zip(latest["request_id"].to_pylist(), latest["cost_usd"].to_pylist())) == [
        ("id0", 1.0), ("id1", 0.25)]  # the final row beats a later failed one
    assert job_spend(out) == JobSpend(1.25, 2)


def test_journal_rows_of_a_crashed_run_and_results_outside_the_manifest_are_spent(tmp_path):
    out = folder(tmp_path)
    write_rows(out, 1, [result("id0", cost_usd=0.5), result("gone-1", cost_usd=2.0)])
    crashed_journal(out, [result("id1", cost_usd=0.125), result("gone-2", cost_usd=4.0)])

    spend = job_spend(out, pa.array(["id0", "id1", "id2", "id3"]))

    assert spend == JobSpend(usd=6.625, results=4, not_in_manifest_usd=6.0, not_in_manifest_results=2)


def test_an_empty_folder_has_spent_nothing(tmp_path):
    out = folder(tmp_path)
    assert job_spend(out, pa.array(["id0"])) == JobSpend()
    assert spend_of(latest_results(out)) == JobSpend()


def test_status_estimate_and_the_runs_budget_agree_after_the_manifest_changed(tmp_path):
    out = folder(tmp_path, manifest_size=2)  # the plan of an edited spec: id0, id1
    write_rows(out, 1, [result(f"old{n}", cost_usd=0.1 + n * 0.0312345) for n in range(24)]
               + [result("id0", cost_usd=0.2)])
    crashed_journal(out, [result("old99", cost_usd=0.7), result("id1", cost_usd=0.3)])

    status = summarize(out).to_json()
    sink = Sink(out, run_id="budget")
    sink.open()  # as a run opens it: the crashed journal is recovered into a part first
    budget = sink.spent_usd()
    sink.close()
    assert spent_so_far(out) == pytest.approx(budget, abs=1e-12)
    estimate = json.loads(estimate_report(out / "manifest.parquet", out, PriceCatalog.load(), json_out=True,
                                          budget_usd=6.0))

    stale = sum(0.1 + n * 0.0312345 for n in range(24)) + 0.7
    assert budget == pytest.approx(stale + 0.5, abs=1e-12)
    assert status["spend_usd"] == estimate["spend_usd"] == round(budget, 6)
    assert status["not_in_manifest_spend_usd"] == estimate["not_in_manifest_spend_usd"] == round(stale, 6)
    assert status["not_in_manifest"] == 25
    assert estimate["budget"]["headroom_usd"] == round(6.0 - budget, 6)
