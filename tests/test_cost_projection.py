"""The projection from strata and answered requests: exact figures on small tables, and the edge cases."""

from __future__ import annotations

import math
import random

import pyarrow as pa
import pytest

from batchrun.cost.projection import project, t_quantile


def flat(model: str, tier: str) -> float:
    return {"standard": 1.0, "flex": 0.5, "batch": 0.5, "priority": 1.8}[tier]


def strata(rows: list[tuple[str, str, float]]) -> pa.Table:
    """(request_id, stratum, prior expected) rows; the model is the label's first word, high is 3x expected."""
    return pa.table({
        "request_id": [r[0] for r in rows], "stratum": [r[1] for r in rows],
        "model": [r[1].split()[0] for r in rows],
        "expected_usd": pa.array([r[2] for r in rows], pa.float64()),
        "high_usd": pa.array([None if r[2] is None else 3 * r[2] for r in rows], pa.float64()),
    })


def done(rows: list[tuple[str, float, str | None]]) -> pa.Table:
    return pa.table({"request_id": pa.array([r[0] for r in rows], pa.string()),
                     "cost_usd": pa.array([r[1] for r in rows], pa.float64()),
                     "service_tier": pa.array([r[2] for r in rows], pa.string())})


def test_the_ratio_of_observed_to_prior_prices_what_remains():
    table = strata([(f"r{i}", "m short", 1.0) for i in range(10)])
    answered = done([("r0", 2.0, "standard"), ("r1", 1.0, "standard"), ("r2", 3.0, "standard")])
    p = project(table, answered, "standard", flat)
    (s,) = p.strata
    assert (s.basis, s.ratio, s.done, s.requests) == ("observed", 2.0, 3, 10)
    assert s.remaining_usd == pytest.approx(14.0) and p.spent_usd == 6.0
    # residuals 0, -1, 1: c^2 = 2/2 = 1; variance = 1 * 7^2 * (1/3 + 1/7) = 23.33; t(2) = 2.920
    half = 2.920 * math.sqrt(49 * (1 / 3 + 1 / 7))
    assert (s.low_usd, s.high_usd) == (pytest.approx(max(14 - half, 0)), pytest.approx(14 + half))
    assert p.total("expected") == pytest.approx(20.0)


def test_a_flex_answer_is_compared_with_its_prior_at_flex_and_what_remains_is_priced_at_the_run_s_tier():
    table = strata([("a", "m short", 1.0), ("b", "m short", 1.0), ("c", "m short", 1.0)])
    answered = done([("a", 0.5, "flex"), ("b", 0.5, "flex")])
    p = project(table, answered, "priority", flat)
    assert p.strata[0].ratio == pytest.approx(1.0)
    assert p.remaining_usd == pytest.approx(1.8)
    assert p.strata[0].low_usd == pytest.approx(1.8) == p.strata[0].high_usd  # no spread seen


def test_with_no_answers_each_stratum_falls_back_to_its_prior_and_its_high_tops_the_interval():
    p = project(strata([("a", "m short", 1.0), ("b", "m long", 2.0)]), done([]), "standard", flat)
    assert [s.basis for s in p.strata] == ["prior", "prior"]
    assert [(s.remaining_usd, s.high_usd) for s in p.strata] == [(2.0, 6.0), (1.0, 3.0)]
    assert p.remaining_usd == 3.0 and p.high_usd == pytest.approx(3.0 + math.sqrt(4.0**2 + 2.0**2))
    assert [name for name, _ in p.dominant] == ["m long", "m short"]


def test_a_stratum_without_answers_borrows_its_model_s_ratio_and_spread():
    table = strata([("a", "m short", 1.0), ("b", "m short", 1.0), ("c", "m long", 2.0), ("d", "n short", 1.0)])
    p = project(table, done([("a", 1.0, None), ("b", 3.0, None)]), "standard", flat)
    by = {s.stratum: s for s in p.strata}
    assert (by["m long"].basis, by["m long"].ratio, by["m long"].remaining_usd) == ("model", 2.0, 4.0)
    assert by["n short"].basis == "prior"


def test_one_answer_borrows_the_spread_of_its_model_s_other_strata():
    table = strata([("a", "m short", 1.0), ("b", "m short", 1.0), ("c", "m short", 1.0),
                    ("d", "m long", 1.0), ("e", "m long", 1.0)])
    answered = done([("a", 1.0, None), ("b", 3.0, None), ("d", 2.0, None)])
    by = {s.stratum: s for s in project(table, answered, "standard", flat).strata}
    # m short: r = 2, residuals -1 and 1, c^2 = 2 with 1 df; m long borrows it: variance 2 * 1^2 * (1/1 + 1/1)
    assert by["m long"].ratio == 2.0 and by["m long"].df == 1
    assert by["m long"].variance == pytest.approx(4.0)


def test_a_single_answer_and_nothing_to_borrow_falls_back_to_the_prior():
    p = project(strata([("a", "m short", 1.0), ("b", "m short", 1.0)]), done([("a", 2.0, None)]), "standard", flat)
    (s,) = p.strata
    assert (s.basis, s.remaining_usd, s.high_usd, s.spent_usd) == ("prior", 1.0, 3.0, 2.0)


def test_all_done_leaves_nothing_to_project_and_no_uncertainty():
    table = strata([("a", "m short", 1.0), ("b", "m short", 1.0)])
    p = project(table, done([("a", 1.0, None), ("b", 2.0, None)]), "standard", flat)
    assert (p.remaining_usd, p.low_usd, p.high_usd, p.total("expected"), p.dominant) == (0.0, 0.0, 0.0, 3.0, [])


def test_zero_cost_answers_count_as_answers():
    table = strata([("a", "m short", 1.0), ("b", "m short", 1.0), ("c", "m short", 1.0)])
    p = project(table, done([("a", 0.0, None), ("b", 0.0, None)]), "standard", flat)
    assert (p.strata[0].basis, p.remaining_usd, p.high_usd) == ("observed", 0.0, 0.0)


def test_a_model_without_a_price_has_no_projection():
    table = strata([("a", "m short", None), ("b", "n short", 1.0)])
    p = project(table, done([]), "standard", flat)
    assert p.strata[0].basis == "unpriced" and p.remaining_usd is None and p.total("high") is None


def test_answers_not_in_the_strata_are_left_out():
    p = project(strata([("a", "m short", 1.0)]), done([("zz", 5.0, None)]), "standard", flat)
    assert p.spent_usd == 0.0 and p.strata[0].done == 0


def test_t_quantiles_never_narrower_than_the_table():
    assert (t_quantile(1), t_quantile(6.7), t_quantile(35), t_quantile(math.inf)) == (6.314, 1.943, 1.697, 1.645)


def test_the_interval_holds_the_truth_about_90_percent_of_the_time():
    """Many draws of a 200-request stratum from a gamma distribution, 20 answered each: coverage 85-95%."""
    rng, hits, trials = random.Random(7), 0, 400
    for _ in range(trials):
        costs = [rng.gammavariate(4.0, 0.25) for _ in range(200)]
        table = strata([(f"r{i}", "m short", 1.0) for i in range(200)])
        p = project(table, done([(f"r{i}", costs[i], None) for i in range(20)]), "standard", flat)
        hits += p.low_usd <= sum(costs[20:]) <= p.high_usd
    assert 0.85 <= hits / trials <= 0.95


def test_json_carries_each_stratum_and_the_dominant_ones():
    p = project(strata([("a", "m short", 1.0), ("b", "m long", 2.0)]), done([]), "flex", flat)
    out = p.to_json()
    assert out["tier"] == "flex" and out["interval"] == "90%"
    # flex halves the priors (1 and 2) and highs (3 and 6): the prior sds are 1/1.645 and 2/1.645
    assert out["total"] == {"expected": 1.5, "low": 0.0, "high": pytest.approx(1.5 + math.sqrt(5), abs=1e-6)}
    assert [s["stratum"] for s in out["strata"]] == ["m long", "m short"]
    assert out["dominant"][0] == {"stratum": "m long", "variance_share": 0.8}
