"""Estimate against actual per stratum (batchrun.cost.versus): pure tables in, figures out."""

from __future__ import annotations

import pyarrow as pa
import pytest

from batchrun.cost.versus import EstimateCheck, StratumCheck, compact, compare_strata

HALF = {"flex": 0.5, "batch": 0.5, "standard": 1.0, "priority": 1.8}


def by_tier(model: str, tier: str) -> float | None:
    return None if model == "unpriced" else HALF[tier]


def strata(*rows: tuple[str, str, float], model: str = "m") -> pa.Table:
    ids, labels, expected = zip(*rows)
    return pa.table({"request_id": list(ids), "stratum": list(labels), "model": [model] * len(ids),
                     "expected_usd": pa.array([None if model == "unpriced" else e for e in expected], pa.float64()),
                     "high_usd": [e * 3 for e in expected]})


def done(*rows: tuple[str, str | None, float]) -> pa.Table:
    ids, tiers, costs = zip(*rows)
    return pa.table({"request_id": list(ids), "cost_usd": list(costs), "service_tier": pa.array(tiers, pa.string())})


def test_each_stratum_sums_the_expected_and_actual_cost_of_its_done_requests_only():
    table = strata(("a1", "img 1K", 0.10), ("a2", "img 1K", 0.10), ("b1", "text", 0.01), ("b2", "text", 0.01))

    check = compare_strata(table, done(("a1", "standard", 0.12), ("b1", "standard", 0.005)), by_tier)

    assert [s.to_json() for s in check.strata] == [
        {"stratum": "img 1K", "requests": 1, "expected_usd": 0.1, "projected_usd": None, "actual_usd": 0.12,
         "ratio": 1.2, "projected_ratio": None},
        {"stratum": "text", "requests": 1, "expected_usd": 0.01, "projected_usd": None, "actual_usd": 0.005,
         "ratio": 0.5, "projected_ratio": None},
    ]
    assert check.other is None
    assert (check.total.requests, check.total.expected_usd, check.total.actual_usd) == (2, pytest.approx(0.11), 0.125)


def test_a_request_served_at_flex_is_expected_at_half_the_standard_estimate():
    table = strata(("a1", "s", 0.10), ("a2", "s", 0.10))

    check = compare_strata(table, done(("a1", "flex", 0.05), ("a2", None, 0.10)), by_tier)

    assert check.total.expected_usd == pytest.approx(0.05 + 0.10)
    assert check.total.ratio == pytest.approx(1.0)


def test_the_projection_is_its_ratio_times_the_estimate_of_the_same_done_requests_at_their_served_tier():
    table = strata(("a1", "s", 0.10), ("a2", "s", 0.10), ("a3", "s", 0.10))

    check = compare_strata(table, done(("a1", "batch", 0.06), ("a2", "standard", 0.12)), by_tier,
                           projected={"s": 1.2})

    assert check.strata[0].expected_usd == pytest.approx(0.05 + 0.10)
    assert check.strata[0].projected_usd == pytest.approx(1.2 * (0.05 + 0.10))
    assert check.strata[0].projected_ratio == pytest.approx(1.0)
    assert check.total.projected_usd == pytest.approx(0.18)


def test_a_stratum_the_projection_does_not_name_has_no_projected_figure_and_the_total_has_none_either():
    table = strata(("a1", "s", 0.10), ("b1", "t", 0.10))

    check = compare_strata(table, done(("a1", None, 0.1), ("b1", None, 0.1)), by_tier, projected={"s": 1.0})

    assert {s.stratum: s.projected_usd for s in check.strata} == {"s": pytest.approx(0.1), "t": None}
    assert check.total.projected_usd is None


def test_a_model_without_a_price_leaves_its_stratum_expected_unknown_not_zero():
    table = strata(("a1", "s", 0.10), model="unpriced")

    check = compare_strata(table, done(("a1", None, 0.2)), by_tier)

    assert check.strata[0].expected_usd is None and check.strata[0].ratio is None
    assert check.total.expected_usd is None


def test_nothing_done_is_no_check_at_all():
    table = strata(("a1", "s", 0.10))

    assert compare_strata(table, done(("zz", None, 0.2)), by_tier) is None


def test_compact_keeps_the_costliest_strata_and_sums_the_rest_into_one_line():
    rows = [StratumCheck(f"s{i}", 1, 0.1 * i, 0.2 * i) for i in range(1, 8)]

    check = compact(rows, top=3)

    assert [s.stratum for s in check.strata] == ["s7", "s6", "s5"]
    assert check.other.stratum == "(4 other strata)"
    assert (check.other.requests, check.other.actual_usd) == (4, pytest.approx(0.2 * (1 + 2 + 3 + 4)))
    assert check.total.actual_usd == pytest.approx(0.2 * 28)


def test_the_text_lines_show_done_expected_actual_and_ratio_per_stratum():
    check = compact([StratumCheck("gemini-3-pro-image 2K", 4, 0.5, 0.6)])

    assert check.lines() == [
        "estimate vs actual (answered requests, each at the tier that served it)",
        "  stratum                  done    expected      actual   ratio",
        "  gemini-3-pro-image 2K       4     $0.5000     $0.6000   1.20x",
        "  total                       4     $0.5000     $0.6000   1.20x",
    ]


def test_a_check_read_back_from_its_json_prints_the_same_lines():
    check = compact([StratumCheck(f"s{i}", i, 0.1 * i, 0.2 * i, 0.15 * i) for i in range(1, 4)], top=2)

    again = EstimateCheck.from_json(check.to_json())

    assert again.lines() == check.lines()
    assert again.lines()[1:] == [
        "  stratum              done    expected   projected      actual   ratio",
        "  s3                      3     $0.3000     $0.4500     $0.6000   2.00x",
        "  s2                      2     $0.2000     $0.3000     $0.4000   2.00x",
        "  (1 other stratum)       1     $0.1000     $0.1500     $0.2000   2.00x",
        "  total                   6     $0.6000     $0.9000     $1.2000   2.00x",
    ]


def test_a_label_longer_than_the_column_is_cut_in_the_text_and_whole_in_the_json():
    label = "gemini-3.1-flash-image 2K 16:9 v12 flex long " + "x" * 30
    check = compact([StratumCheck(label, 1, 0.1, 0.1)])

    assert check.lines()[2].startswith(f"  {label[:59]}… ")
    assert check.to_json()["strata"][0]["stratum"] == label
