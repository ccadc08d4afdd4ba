"""A job's projection from its folder: which results count as answered, projection.json, the report's lines."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest
from test_cost_strata import IMAGE, body, write_manifest

from batchrun.cost.estimate import estimate_report
from batchrun.cost.pricing import PriceCatalog
from batchrun.cost.projected import (
    answered_requests,
    project_job,
    projection_lines,
    read_projection,
    save_projection,
)
from batchrun.output.journal import result_values
from batchrun.output.sink import rows_to_table, write_part
from batchrun.records import ResultRecord

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def latest(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=pa.schema([
        ("row_id", pa.string()), ("request_id", pa.string()), ("status", pa.string()),
        ("cost_usd", pa.float64()), ("service_tier", pa.string()), ("shared_from", pa.string())]))


def test_answered_requests_are_final_and_paid_once_per_request():
    table = latest([
        {"row_id": "a", "request_id": "A", "status": "ok", "cost_usd": 0.1, "service_tier": "flex"},
        {"row_id": "a2", "request_id": "A", "status": "ok", "cost_usd": 0.0, "shared_from": "a"},
        {"row_id": "b", "request_id": "B", "status": "blocked", "cost_usd": 0.0},
        {"row_id": "c", "request_id": "C", "status": "failed", "cost_usd": 0.05},
    ])
    assert answered_requests(table).to_pylist() == [
        {"request_id": "A", "cost_usd": 0.1, "service_tier": "flex"},
        {"request_id": "B", "cost_usd": 0.0, "service_tier": None}]


@pytest.fixture()
def half_done(tmp_path):
    """Ten alike image requests and four text ones; r0-r3 answered at $0.05 each."""
    requests = [("gemini-3.1-flash-image", body(**IMAGE))] * 10 + [("gemini-2.5-flash", body())] * 4
    manifest = write_manifest(tmp_path / "manifest.parquet", requests)
    rows = [result_values(ResultRecord(f"r{i}", "ok", 1, 1.0, 2.0, cost_usd=c))
            for i, c in enumerate([0.05, 0.06, 0.04, 0.05])]
    (tmp_path / "results").mkdir()
    write_part(rows_to_table(rows), tmp_path / "results" / "part-000001.parquet")
    return manifest


def test_a_half_done_job_is_projected_from_its_answers(half_done, tmp_path):
    p = project_job(half_done, tmp_path, PriceCatalog.load(), "standard")
    by = {s.stratum: s for s in p.strata}
    image = by["gemini-3.1-flash-image 1K 16:9 short"]
    assert (image.done, image.basis, p.spent_usd) == (4, "observed", pytest.approx(0.2))
    assert image.remaining_usd == pytest.approx(6 * 0.05)  # the mean answer, for each of the six left
    assert by["gemini-2.5-flash short"].basis == "prior"


def test_projection_json_keeps_the_time_the_pilot_and_the_manifest_s_fingerprint(half_done, tmp_path):
    p = project_job(half_done, tmp_path, PriceCatalog.load(), "flex")
    save_projection(tmp_path, half_done, p, pilot_requests=4, now=NOW)
    saved = read_projection(tmp_path)
    assert {k: saved[k] for k in ("written_at", "manifest", "fingerprint", "pilot_requests", "tier", "done")} == {
        "written_at": "2026-11-27T12:00:00+00:00", "manifest": "manifest.parquet", "fingerprint": None,
        "pilot_requests": 4, "tier": "flex", "done": 4}
    assert set(saved) >= {"requests", "spent_usd", "remaining", "total", "interval", "strata", "dominant"}
    assert read_projection(tmp_path / "none") is None


def test_estimate_on_a_job_with_answers_carries_the_projection(half_done, tmp_path):
    catalog = PriceCatalog.load()
    data = json.loads(estimate_report(half_done, tmp_path, catalog, json_out=True))
    text = estimate_report(half_done, tmp_path, catalog)
    assert data["projection"]["done"] == 4 and data["remaining"] is not None  # the older keys stay
    assert "Projection at the standard tier from 4 answered of 14 requests" in text
    assert "most of the uncertainty:" in text and "basis prior:" in text


def test_the_report_lines_show_each_stratum_and_the_whole_job(half_done, tmp_path):
    p = project_job(half_done, tmp_path, PriceCatalog.load(), "standard")
    lines = projection_lines(p, lambda v: f"${v:.2f}")
    assert lines[2].split()[:4] == ["gemini-2.5-flash", "short", "0/4", "prior"]
    assert lines[3].split()[:9] == ["gemini-3.1-flash-image", "1K", "16:9", "short", "4/10", "observed", "$0.50",
                                    "$0.43", "to"]
    assert lines[4].split()[:3] == ["whole", "job", "4/14"]
