"""Strata of small manifests built with pyarrow; the prior agrees with estimate.py's per-model sums."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from estimate_columns import estimate_columns

from batchrun.cost.estimate import estimate_manifest
from batchrun.cost.pricing import PriceCatalog
from batchrun.cost.strata import Stratum, stratum_table
from batchrun.cost.tokens import estimate_tokens
from batchrun.providers.registry import provider_entry
from batchrun.rendered import rendered_request

IMAGE = {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "16:9", "imageSize": "1K"}}


def body(prompt: str = "x" * 40, extras: dict | None = None, **config) -> dict:
    return rendered_request(None, [{"text": prompt}], config, None, extras or {})


def write_manifest(path, requests, *, variables=None, ids=None, with_ratio=True):
    """A manifest of (model, body) requests with the planner's estimate columns."""
    inputs = provider_entry("gemini").estimate_inputs
    estimates = [estimate_tokens(model, b, [], inputs(b)) for model, b in requests]
    n = len(requests)
    columns = {
        "request_id": pa.array(ids or [f"r{i}" for i in range(n)], pa.string()),
        "row_id": pa.array([f"row{i}" for i in range(n)], pa.string()),
        "model": pa.array([model for model, _ in requests], pa.string()),
        "variables": pa.array(variables or ["{}"] * n, pa.string()),
        **estimate_columns(estimates),
    }
    if with_ratio:
        columns["est_aspect_ratio"] = pa.array([e.aspect_ratio for e in estimates], pa.string())
    pq.write_table(pa.table(columns), path)
    return path


@pytest.fixture()
def catalog() -> PriceCatalog:
    return PriceCatalog.load()


def test_an_image_request_s_stratum_names_model_size_ratio_variant_and_band(tmp_path, catalog):
    path = write_manifest(tmp_path / "m.parquet", [("gemini-3.1-flash-image", body(**IMAGE))] * 2,
                          variables=['{"variant":0}', '{"variant":1}'])
    table = stratum_table(path, catalog)
    assert table["stratum"].to_pylist() == ["gemini-3.1-flash-image 1K 16:9 v0 short",
                                            "gemini-3.1-flash-image 1K 16:9 v1 short"]
    assert table["aspect_ratio"].to_pylist() == ["16:9", "16:9"]


def test_a_text_request_names_only_its_model_the_tier_its_body_names_and_its_band(tmp_path, catalog):
    path = write_manifest(tmp_path / "m.parquet", [("gemini-2.5-flash", body(serviceTier="SERVICE_TIER_FLEX"))])
    assert stratum_table(path, catalog)["stratum"].to_pylist() == ["gemini-2.5-flash flex short"]


def test_prompt_length_bands_are_terciles_within_each_model(tmp_path, catalog):
    prompts = ["x" * (40 * k) for k in range(1, 10)]
    requests = [("gemini-2.5-flash", body(p)) for p in prompts] + [("gemini-2.5-pro", body("y" * 400))]
    table = stratum_table(write_manifest(tmp_path / "m.parquet", requests), catalog)
    assert table["band"].to_pylist() == ["short"] * 3 + ["mid"] * 3 + ["long"] * 3 + ["short"]


def test_the_prior_sums_to_estimate_s_expected_and_high_per_model(tmp_path, catalog):
    requests = ([("gemini-3.1-flash-image", body(**IMAGE))] * 3 + [("gemini-2.5-flash", body("z" * 4000))] * 2
                + [("gemini-3-flash-preview", body(thinkingConfig={"thinkingLevel": "low"}, maxOutputTokens=900))])
    path = write_manifest(tmp_path / "m.parquet", requests)
    table = stratum_table(path, catalog)
    for m in estimate_manifest(path, catalog).models:
        mine = table.filter(pa.compute.equal(table["model"], m.model))
        assert sum(mine["expected_usd"].to_pylist()) == pytest.approx(m.cost["standard"]["expected"], abs=1e-6)
        assert sum(mine["high_usd"].to_pylist()) == pytest.approx(m.cost["standard"]["high"], abs=1e-6)


def test_a_model_without_a_price_has_a_null_prior(tmp_path, catalog):
    path = write_manifest(tmp_path / "m.parquet", [("no-such-model", body())])
    assert stratum_table(path, catalog).select(["expected_usd", "high_usd"]).to_pylist() == [
        {"expected_usd": None, "high_usd": None}]


def test_rows_sharing_a_request_give_one_row(tmp_path, catalog):
    path = write_manifest(tmp_path / "m.parquet", [("gemini-2.5-flash", body())] * 3, ids=["a", "b", "a"])
    assert stratum_table(path, catalog)["request_id"].to_pylist() == ["a", "b"]


def test_a_manifest_planned_before_aspect_ratios_reads_them_as_absent(tmp_path, catalog):
    path = write_manifest(tmp_path / "m.parquet", [("gemini-3.1-flash-image", body(**IMAGE))], with_ratio=False)
    assert stratum_table(path, catalog)["stratum"].to_pylist() == ["gemini-3.1-flash-image 1K short"]


def test_a_variables_value_that_merely_mentions_variant_is_not_a_variant(tmp_path, catalog):
    variables = [json.dumps({"note": '"variant":3'}, separators=(",", ":"))]
    path = write_manifest(tmp_path / "m.parquet", [("gemini-2.5-flash", body())], variables=variables)
    assert stratum_table(path, catalog)["variant"].to_pylist() == [None]


def test_stratum_label_leaves_out_what_the_request_does_not_name():
    assert Stratum("m", None, None, None, None, "long").label == "m long"


def test_the_table_s_labels_are_the_stratum_labels(tmp_path, catalog):
    requests = [("gemini-3.1-flash-image", body(**IMAGE)), ("gemini-2.5-flash", body(serviceTier="flex"))]
    table = stratum_table(write_manifest(tmp_path / "m.parquet", requests, variables=['{"variant":2}', "{}"]), catalog)
    rows = table.select(["model", "image_size", "aspect_ratio", "variant", "tier", "band"]).to_pylist()
    assert table["stratum"].to_pylist() == [Stratum(**r).label for r in rows]
