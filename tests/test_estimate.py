"""Estimates from small manifests built with pyarrow; figures worked out by hand from the catalog."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from estimate_columns import estimate_columns

from batchrun.cost.estimate import (
    CALIBRATION_FILE,
    estimate_manifest,
    estimate_report,
    format_estimate,
    read_calibration,
    write_calibration,
)
from batchrun.cost.pricing import PriceCatalog
from batchrun.cost.tokens import estimate_tokens
from batchrun.output.journal import result_values
from batchrun.output.sink import rows_to_table, write_part
from batchrun.output.spend import JobSpend
from batchrun.providers.registry import provider_entry
from batchrun.records import ResultRecord
from batchrun.rendered import rendered_request

TODAY = dt.date(2026, 11, 21)
IMAGE_1K = {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "1:1", "imageSize": "1K"}}


def body(prompt: str = "x" * 40, extras: dict | None = None, **config) -> dict:
    return rendered_request(None, [{"text": prompt}], config, None, extras or {})


def write_manifest(path, requests: list[tuple[str, dict]]):
    """A manifest with the lead's columns; estimates come from tokens.estimate_tokens (no input images)."""
    inputs = provider_entry("gemini").estimate_inputs
    estimates = [estimate_tokens(model, b, [], inputs(b)) for model, b in requests]
    columns = {
        "request_id": pa.array([f"r{i}" for i in range(len(requests))], pa.string()),
        "seq": pa.array(range(len(requests)), pa.int64()),
        "model": pa.array([model for model, _ in requests], pa.string()),
        "body": pa.array([json.dumps(b, separators=(",", ":")) for _, b in requests], pa.string()),
        "variables": pa.array(["{}"] * len(requests), pa.string()),
        "output_name": pa.array([None] * len(requests), pa.string()),
        **estimate_columns(estimates),
    }
    pq.write_table(pa.table(columns), path)
    return path


@pytest.fixture()
def catalog() -> PriceCatalog:
    return PriceCatalog.load()


@pytest.fixture()
def image_job(tmp_path):
    return write_manifest(tmp_path / "manifest.parquet", [("gemini-3.1-flash-image", body(**IMAGE_1K))] * 10)


def test_image_job_expected_and_high(image_job, catalog):
    # Per request: 10 text tokens in x $0.50 = $0.000005; 850 thinking (minimal) x $3 = $0.00255;
    # one 1K image 1,120 x $60 = $0.0672  -> expected $0.069755, x 10 = $0.69755.
    # High: no maxOutputTokens, IMAGE only: the practical ceiling 4,096 thinking + 2 interim images x 1,120
    # = 6,336 x $3 = $0.019008, + $0.000005 + $0.0672 = $0.086213, x 10 = $0.86213.
    est = estimate_manifest(image_job, catalog, today=TODAY)
    (m,) = est.models
    assert (m.requests, m.input_text_tokens, m.output_image_tokens, m.images_out) == (10, 100, 11200, 10)
    assert (m.output_text_tokens_expected, m.thinking_tokens_expected) == (0, 8500)
    assert m.cost["standard"]["expected"] == pytest.approx(0.69755)
    assert m.cost["standard"]["high"] == pytest.approx(0.86213)
    assert m.cost["batch"]["expected"] == pytest.approx(0.348775)
    assert m.cost["flex"]["high"] == pytest.approx(0.431065)
    assert est.total("standard", "expected") == pytest.approx(0.69755)


def test_text_model_expected_text_and_capped_thinking(tmp_path, catalog):
    # gemini-2.5-flash, maxOutputTokens 1,000, 40-char prompt = 10 tokens:
    # expected text 250, thinking 1,024 capped to the 750 left -> 1,000 out x $2.50 = $0.0025;
    # 10 in x $0.30 = $0.000003 -> $0.002503 each, x 4 = $0.010012. High: 1,000 x $2.50 + $0.000003 = $0.002503.
    path = write_manifest(tmp_path / "m.parquet", [("gemini-2.5-flash", body(maxOutputTokens=1000))] * 4)
    (m,) = estimate_manifest(path, catalog, today=TODAY).models
    assert (m.output_text_tokens_expected, m.thinking_tokens_expected) == (1000, 3000)
    assert m.cost["standard"]["expected"] == pytest.approx(0.010012)
    assert m.cost["standard"]["high"] == pytest.approx(0.010012)


def test_long_prompt_is_priced_at_the_above_200k_rate(tmp_path, catalog):
    # gemini-2.5-pro, 1,000,000 characters = 250,000 tokens > 200k: 250,000 x $2.50 = $0.625;
    # maxOutputTokens 100 -> expected text 25 + thinking 75 = 100 x $15 = $0.0015; total $0.6265
    path = write_manifest(tmp_path / "m.parquet", [("gemini-2.5-pro", body("y" * 1_000_000, maxOutputTokens=100))])
    (m,) = estimate_manifest(path, catalog, today=TODAY).models
    assert m.cost["standard"]["expected"] == pytest.approx(0.6265)


def test_thinking_level_in_the_body_is_honoured(tmp_path, catalog):
    # 3.1 Flash Image at thinkingLevel high: 2,000 thinking x $3 = $0.006 instead of $0.00255
    config = dict(IMAGE_1K, thinkingConfig={"thinkingLevel": "high"})
    path = write_manifest(tmp_path / "m.parquet", [("gemini-3.1-flash-image", body(**config))])
    (m,) = estimate_manifest(path, catalog, today=TODAY).models
    assert m.thinking_tokens_expected == 2000
    assert m.cost["standard"]["expected"] == pytest.approx(0.000005 + 0.006 + 0.0672)


def test_several_models_are_reported_apart(tmp_path, catalog):
    rows = [("gemini-3.1-flash-image", body(**IMAGE_1K)), ("gemini-3-pro-image", body(**IMAGE_1K))]
    est = estimate_manifest(write_manifest(tmp_path / "m.parquet", rows), catalog, today=TODAY)
    assert [m.model for m in est.models] == ["gemini-3-pro-image", "gemini-3.1-flash-image"]
    # 3 Pro Image: 10 x $2 = $0.00002 + 850 thinking x $12 = $0.0102 + 1,120 x $120 = $0.1344 -> $0.14462
    assert est.models[0].cost["standard"]["expected"] == pytest.approx(0.14462)
    assert est.total("standard", "expected") == pytest.approx(0.14462 + 0.069755)


def test_unknown_model_has_no_cost_and_says_how_to_price_it(tmp_path, catalog):
    rows = [("acme-imagegen", body(responseModalities=["IMAGE"])), ("gemini-3.1-flash-image", body(**IMAGE_1K))]
    est = estimate_manifest(write_manifest(tmp_path / "m.parquet", rows), catalog, budget_usd=10, today=TODAY)
    acme = est.models[0]
    assert not acme.price_known and acme.cost["standard"]["expected"] is None
    assert "pricing:" in acme.warnings[0]
    assert est.total("standard", "expected") is None
    assert est.budget_verdict()[0] == "unknown"


def test_price_table_gives_image_tokens_for_a_model_batchrun_does_not_know(tmp_path):
    # acme-imagegen priced by the spec at $40/M for 1,000-token 1K images: 1,000 x $40 = $0.04;
    # 10 in x $1 = $0.00001; unknown model thinks 1,024 x $2 = $0.002048 -> $0.042058
    catalog = PriceCatalog.load(
        overrides={"acme-imagegen": {"input": 1, "output": 2, "output_image": 40, "output_image_tokens": {"1K": 1000}}}
    )
    path = write_manifest(tmp_path / "m.parquet", [("acme-imagegen", body(responseModalities=["IMAGE"]))])
    (m,) = estimate_manifest(path, catalog, today=TODAY).models
    assert m.output_image_tokens == 1000
    assert m.cost["standard"]["expected"] == pytest.approx(0.042058)


@pytest.mark.parametrize(("budget", "verdict"), [(2.0, "fits"), (0.8, "expected_fits"), (0.5, "over")])
def test_budget_verdict(image_job, catalog, budget, verdict):
    # expected $0.69755, high $0.86213
    est = estimate_manifest(image_job, catalog, budget_usd=budget, today=TODAY)
    assert est.budget_verdict()[0] == verdict
    assert est.to_json()["budget"]["verdict"] == verdict


@pytest.mark.parametrize(("stale", "verdict", "left"), [
    (0.3, "fits", "$1.70 left of the $2.00 budget after $0.3000 spent"),
    (1.2, "expected_fits", "$0.8000 left of the $2.00 budget after $1.20 spent"),
    (1.4, "over", "$0.6000 left of the $2.00 budget after $1.40 spent"),
])
def test_results_no_longer_in_the_manifest_take_their_cost_off_the_budget(image_job, catalog, stale, verdict, left):
    # a $2 budget less what results of an older plan cost, against expected $0.69755 and high $0.86213
    est = estimate_manifest(image_job, catalog, budget_usd=2.0, today=TODAY)
    est.spent = JobSpend(usd=stale + 0.1, results=3, not_in_manifest_usd=stale, not_in_manifest_results=2)
    assert est.budget_verdict()[0] == verdict
    assert f"{left} on results no longer in the manifest" in est.budget_verdict()[1]
    assert est.to_json()["budget"]["headroom_usd"] == round(2.0 - stale - 0.1, 6)


def test_a_budget_already_spent_says_the_run_stops_at_once_and_how_to_go_on(image_job, catalog):
    est = estimate_manifest(image_job, catalog, budget_usd=6.0, today=TODAY)
    est.spent = JobSpend(usd=6.2, results=24, not_in_manifest_usd=6.2, not_in_manifest_results=24)
    verdict, message = est.budget_verdict()
    assert verdict == "spent"
    assert "already cost $6.20 of the $6.00 cap, so a run stops at once; raise --max-cost" in message
    data = est.to_json()
    assert (data["spend_usd"], data["not_in_manifest_spend_usd"], data["budget"]["headroom_usd"]) == (6.2, 6.2, -0.2)


def test_the_report_shows_what_the_folders_results_cost(image_job, catalog, tmp_path):
    rows = [result_values(ResultRecord(request_id, "ok", 1, 1.0, 2.0, cost_usd=cost))
            for request_id, cost in [("r0", 0.0675), ("old-1", 0.5), ("old-2", 0.25)]]
    (tmp_path / "results").mkdir()
    write_part(rows_to_table(rows), tmp_path / "results" / "part-000001.parquet")

    text = estimate_report(image_job, tmp_path, catalog, budget_usd=1.5, today=TODAY)
    data = json.loads(estimate_report(image_job, tmp_path, catalog, json_out=True, budget_usd=1.5, today=TODAY))

    assert ("Spent so far: $0.8175 on 3 results ($0.7500 on 2 results no longer in the manifest: "
            "the spec changed since they ran)") in text.splitlines()
    assert (data["spend_usd"], data["not_in_manifest_spend_usd"]) == (0.8175, 0.75)
    assert data["budget"]["headroom_usd"] == 0.6825
    assert data["budget"]["verdict"] == "expected_fits"  # $0.75 left for the manifest: high $0.86 is over it


def test_no_budget_no_verdict(image_job, catalog):
    assert estimate_manifest(image_job, catalog, today=TODAY).budget_verdict() is None


def test_lifecycle_warning_is_carried(tmp_path, catalog):
    path = write_manifest(tmp_path / "m.parquet", [("gemini-2.5-flash-image", body())])
    (m,) = estimate_manifest(path, catalog, today=TODAY).models
    assert m.warnings == ["gemini-2.5-flash-image was shut down on 2026-10-02; use gemini-3.1-flash-image"]


def test_calibration_scales_expected_and_is_stated(image_job, catalog):
    est = estimate_manifest(image_job, catalog, calibration={"gemini-3.1-flash-image": 1.1}, today=TODAY)
    (m,) = est.models
    assert m.cost["standard"]["expected"] == pytest.approx(0.69755 * 1.1)
    assert m.cost["standard"]["high"] == pytest.approx(0.86213)
    assert "calibrated: expected x 1.100" in format_estimate(est)


def test_text_report(image_job, catalog):
    text = format_estimate(estimate_manifest(image_job, catalog, budget_usd=0.5, today=TODAY))
    assert "gemini-3.1-flash-image: 10 requests" in text
    assert "$0.6976" in text and "$0.8621" in text and "$0.3488" in text
    assert "verified 2026-03-30" in text
    assert "Budget $0.5000 (standard): does not fit" in text


def test_json_report_is_serialisable(image_job, catalog, tmp_path):
    data = json.loads(estimate_report(image_job, tmp_path, catalog, json_out=True, budget_usd=2, today=TODAY))
    assert data["requests"] == 10
    assert data["models"][0]["model"] == "gemini-3.1-flash-image"
    assert data["total"]["standard"]["expected"] == pytest.approx(0.69755)
    assert data["budget"]["verdict"] == "fits"
    assert set(data["total"]) == {"standard", "flex", "batch"}


def results_table(rows: list[tuple[str, str, float | None]]) -> pa.Table:
    return pa.table(
        {
            "request_id": pa.array([r[0] for r in rows], pa.string()),
            "status": pa.array([r[1] for r in rows], pa.string()),
            "cost_usd": pa.array([r[2] for r in rows], pa.float64()),
            "model": pa.array(["gemini-3.1-flash-image"] * len(rows), pa.string()),
        }
    )


def test_write_and_read_calibration(image_job, catalog, tmp_path):
    # r0..r3 ok at $0.075 each (r0 twice: counted once), r4 failed, r5 ok without a cost.
    # actual $0.30 / expected 4 x $0.069755 = $0.27902 -> 1.075192
    rows = [("r0", "ok", 0.075), ("r0", "ok", 0.075), ("r1", "ok", 0.075), ("r2", "ok", 0.075),
            ("r3", "ok", 0.075), ("r4", "failed", None), ("r5", "ok", None)]
    ratios = write_calibration(tmp_path, image_job, results_table(rows), catalog, today=TODAY)
    assert ratios == {"gemini-3.1-flash-image": pytest.approx(0.30 / 0.27902, rel=1e-5)}
    stored = json.loads((tmp_path / CALIBRATION_FILE).read_text())
    assert stored["written_at"] == "2026-11-21"
    assert stored["models"]["gemini-3.1-flash-image"]["requests"] == 4
    assert read_calibration(tmp_path) == ratios


def test_calibration_compares_at_the_tier_the_body_names(tmp_path, catalog):
    # flex body: expected $0.069755 x 0.5 = $0.0348775; actual $0.0348775 -> ratio 1
    config = dict(IMAGE_1K)
    rows = [("gemini-3.1-flash-image", body(extras={"serviceTier": "flex"}, **config))]
    path = write_manifest(tmp_path / "m.parquet", rows)
    ratios = write_calibration(tmp_path, path, results_table([("r0", "ok", 0.0348775)]), catalog, today=TODAY)
    assert ratios["gemini-3.1-flash-image"] == pytest.approx(1.0)


def test_read_calibration_without_a_file(tmp_path):
    assert read_calibration(tmp_path) == {}


def test_the_next_estimate_uses_the_stored_calibration(image_job, catalog, tmp_path):
    write_calibration(tmp_path, image_job, results_table([("r0", "ok", 0.069755 * 1.2)]), catalog, today=TODAY)
    data = json.loads(estimate_report(image_job, tmp_path, catalog, json_out=True, today=TODAY))
    assert data["models"][0]["calibration"] == pytest.approx(1.2)
    assert data["total"]["standard"]["expected"] == pytest.approx(0.69755 * 1.2, rel=1e-5)


def test_empty_manifest(tmp_path, catalog):
    est = estimate_manifest(write_manifest(tmp_path / "m.parquet", []), catalog, budget_usd=1, today=TODAY)
    assert (est.requests, est.models, est.total("standard", "high")) == (0, [], 0)
    assert est.budget_verdict()[0] == "fits"


def test_rows_that_share_a_request_are_estimated_once(tmp_path):
    from batchrun.cost.estimate import read_manifest_columns
    from batchrun.planning.manifest import ManifestWriter
    from batchrun.records import RequestRecord, TokenEstimate

    path = tmp_path / "manifest.parquet"
    writer = ManifestWriter(path, "fp")
    estimate = TokenEstimate(input_text=10, output_text_max=100)
    writer.write([RequestRecord(request_id=rid, row_id=f"row{i}", seq=i, model="gemini-3-flash-preview", body={},
                                variables={}, estimate=estimate) for i, rid in enumerate("abacb")])
    writer.commit()
    assert read_manifest_columns(path)["request_id"].to_pylist() == ["a", "b", "c"]


# --- the run's tier -------------------------------------------------------------------------------


def test_the_report_names_the_run_s_tier_and_checks_the_budget_at_it(image_job, catalog):
    text = format_estimate(estimate_manifest(image_job, catalog, budget_usd=0.4, budget_tier="flex", today=TODAY))
    assert "Tier: flex" in text
    assert "Budget $0.4000 (flex): expected $0.3488 fits" in text
    assert "priority" not in text


def test_a_priority_run_shows_a_priority_column_at_1_8_times_standard(image_job, catalog):
    # the image job at standard: expected $0.69755, high $0.86213 -> x 1.8 = $1.25559, $1.551834
    est = estimate_manifest(image_job, catalog, budget_usd=1.5, budget_tier="priority", today=TODAY)
    assert est.tiers == ("standard", "flex", "batch", "priority")
    assert est.total("priority", "expected") == pytest.approx(1.25559)
    assert est.total("priority", "high") == pytest.approx(1.551834)
    text = format_estimate(est)
    assert text.splitlines()[2] == "Tier: priority (the run's --tier or tier:; the budget is checked at it)"
    assert "Budget $1.50 (priority): expected $1.26 fits the $1.50 budget" in text
    assert "      priority" in text.split("Total")[1].splitlines()[0]


def test_estimate_json_carries_the_tier_and_priority_only_when_asked(image_job, catalog, tmp_path):
    flex = json.loads(estimate_report(image_job, tmp_path, catalog, json_out=True, budget_usd=2, tier="flex"))
    assert (flex["tier"], flex["budget"]["tier"]) == ("flex", "flex")
    assert set(flex["total"]) == set(flex["models"][0]["cost"]) == {"standard", "flex", "batch"}
    top = json.loads(estimate_report(image_job, tmp_path, catalog, json_out=True, tier="priority"))
    assert top["tier"] == "priority" and top["total"]["priority"]["expected"] == pytest.approx(1.25559)
    assert set(top["models"][0]["cost"]) == {"standard", "flex", "batch", "priority"}


def test_calibration_compares_each_request_at_the_tier_that_served_it(tmp_path, catalog):
    # a flex run: bodies name no tier. r0 served flex at $0.0340525, r1 said nothing (the run's flex),
    # r2 a priority request served at standard: $0.069755. Each matches its expected cost: ratio 1.
    path = write_manifest(tmp_path / "m.parquet", [("gemini-3.1-flash-image", body(**IMAGE_1K))] * 3)
    results = results_table([("r0", "ok", 0.0348775), ("r1", "ok", 0.0348775), ("r2", "ok", 0.069755)])
    results = results.append_column("service_tier", pa.array(["flex", None, "standard"], pa.string()))
    ratios = write_calibration(tmp_path, path, results, catalog, today=TODAY, run_tier="flex")
    assert ratios["gemini-3.1-flash-image"] == pytest.approx(1.0)


def test_a_half_done_job_shows_spent_so_far_the_remaining_expected_and_high_and_the_whole_job(image_job, catalog,
                                                                                              tmp_path):
    # r0-r3 ok, r4 blocked (final); r5 failed (sent again): 5 of the 10 requests remain
    done = [("r0", "ok", 0.07), ("r1", "ok", 0.07), ("r2", "ok", 0.07), ("r3", "ok", 0.07), ("r4", "blocked", 0.0),
            ("r5", "failed", None)]
    rows = [result_values(ResultRecord(request_id, status, 1, 1.0, 2.0, cost_usd=cost))
            for request_id, status, cost in done]
    (tmp_path / "results").mkdir()
    write_part(rows_to_table(rows), tmp_path / "results" / "part-000001.parquet")

    data = json.loads(estimate_report(image_job, tmp_path, catalog, json_out=True, today=TODAY))
    text = estimate_report(image_job, tmp_path, catalog, today=TODAY)

    remaining, projection = data["remaining"], data["projection"]
    assert (remaining["tier"], remaining["rows"], remaining["requests"], remaining["spent_usd"]) == (
        "standard", 5, 5, 0.28)
    # what remains is priced by the answered requests' observed cost (the projection), not the manifest alone:
    # r0-r4 cost $0.28 where the estimate said 5 x $0.069755 (r4, blocked, paid nothing), a ratio of 0.803
    assert remaining["projected"] is True
    assert remaining["remaining"]["expected"] == pytest.approx(0.69755 / 2 * 0.28 / (5 * 0.069755), rel=1e-4)
    assert remaining["remaining"]["expected"] == pytest.approx(projection["remaining"]["expected"], abs=1e-6)
    interval = remaining["remaining"]["interval"]
    assert interval == {"low": projection["remaining"]["low"], "high": projection["remaining"]["high"]}
    assert interval["low"] < remaining["remaining"]["expected"] < interval["high"]
    assert remaining["remaining"]["high"] == pytest.approx(max(0.86213 / 2, interval["high"]), abs=1e-5)
    assert remaining["total"]["expected"] == pytest.approx(0.28 + remaining["remaining"]["expected"])
    assert "Remaining: 5 rows without a final result (5 requests to send), at the standard tier" in text
    whole = next(line.split() for line in text.splitlines() if line.split()[:2] == ["whole", "job"])
    assert whole[3:5] == ["projected", "(90%:"] and whole[-1] == "high"


def test_a_job_with_no_results_has_no_remaining_section(image_job, catalog, tmp_path):
    data = json.loads(estimate_report(image_job, tmp_path, catalog, json_out=True, today=TODAY))
    assert data["remaining"] is None
    assert "Remaining:" not in estimate_report(image_job, tmp_path, catalog, today=TODAY)
