"""A run's cap from the pilot's projection (batchrun.cost.projectioncap)."""

from __future__ import annotations

import json
import logging

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchrun.cost.projectioncap import budget_cap, projected_ratios
from batchrun.errors import EXIT_USAGE, UsageError
from batchrun.planning.manifest import FINGERPRINT_KEY


def manifest(folder, fingerprint: str = "fp-1"):
    path = folder / "manifest.parquet"
    table = pa.table({"request_id": ["a"]}).replace_schema_metadata({FINGERPRINT_KEY: fingerprint.encode()})
    pq.write_table(table, path)
    return path


def projection(folder, fingerprint: str = "fp-1", *, expected: float = 10.0, high: float = 12.5, tier="standard"):
    document = {"fingerprint": fingerprint, "tier": tier, "total": {"expected": expected, "low": 8.0, "high": high},
                "strata": [{"stratum": "m 1K short", "basis": "observed", "ratio": 1.25},
                           {"stratum": "m 2K short", "basis": "model", "ratio": 0.8},
                           {"stratum": "t short", "basis": "prior", "ratio": None},
                           {"stratum": "u short", "basis": "unpriced", "ratio": None}]}
    (folder / "projection.json").write_text(json.dumps(document))


@pytest.mark.parametrize(("kind", "cap"), [("expected", 10.0), ("high", 12.5)])
def test_the_cap_is_the_projections_figure_for_the_whole_job(tmp_path, kind, cap):
    projection(tmp_path)

    assert budget_cap(None, kind, tmp_path, manifest(tmp_path), "standard") == cap


@pytest.mark.parametrize(("hard", "cap"), [(5.0, 5.0), (50.0, 12.5)])
def test_the_hard_cap_wins_only_when_it_is_lower(tmp_path, hard, cap):
    projection(tmp_path)

    assert budget_cap(hard, "high", tmp_path, manifest(tmp_path), "standard") == cap


def test_without_a_projection_asked_the_hard_cap_is_the_cap_and_no_file_is_needed(tmp_path):
    assert budget_cap(7.0, None, tmp_path, tmp_path / "none.parquet", "standard") == 7.0


def test_no_projection_is_a_usage_error_saying_to_run_the_pilot_first(tmp_path):
    with pytest.raises(UsageError) as raised:
        budget_cap(None, "expected", tmp_path, manifest(tmp_path), "standard")

    assert raised.value.exit_code == EXIT_USAGE
    assert str(raised.value) == (f"--max-cost-from-projection: {tmp_path / 'projection.json'} does not exist; "
                                 "run `batchrun estimate SPEC --pilot N` first, or cap the run with --max-cost")


def test_a_projection_made_for_an_earlier_plan_is_refused_as_stale(tmp_path):
    projection(tmp_path, fingerprint="fp-old")

    with pytest.raises(UsageError, match="was made for an earlier plan of the job .*--pilot N` first"):
        budget_cap(100.0, "expected", tmp_path, manifest(tmp_path, "fp-new"), "standard")


def test_a_projection_at_another_tier_still_caps_and_says_so(tmp_path, caplog):
    projection(tmp_path, tier="standard")

    with caplog.at_level(logging.WARNING):
        cap = budget_cap(None, "expected", tmp_path, manifest(tmp_path), "flex")

    assert cap == 10.0
    assert "at the standard tier and this run sends at the flex tier" in caplog.text


def test_the_ratios_keep_the_prior_as_1_and_leave_out_unpriced_strata():
    document = {"strata": [{"stratum": "a", "basis": "observed", "ratio": 1.25},
                           {"stratum": "b", "basis": "prior", "ratio": None},
                           {"stratum": "c", "basis": "unpriced", "ratio": None}]}

    assert projected_ratios(document) == {"a": 1.25, "b": 1.0}


def test_the_error_names_the_setting_that_asked_for_the_projection(tmp_path):
    with pytest.raises(UsageError, match=r"^budget\.max_cost_from_projection: .* does not exist"):
        budget_cap(None, "high", tmp_path, manifest(tmp_path), "standard", setting="budget.max_cost_from_projection")
