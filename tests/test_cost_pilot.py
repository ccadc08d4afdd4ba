"""Choosing a pilot's requests across strata, and what it costs."""

from __future__ import annotations

import pyarrow as pa
import pytest

from batchrun.cost.pilot import choose_pilot, pilot_cost
from batchrun.cost.pricing import PriceCatalog


def strata(spec: dict[str, int]) -> pa.Table:
    """Strata named by `spec` with that many requests each; request i of a stratum has i*10 prompt tokens."""
    rows = [(f"{name}-{i}", name, 10 * i) for name, count in spec.items() for i in range(count)]
    return pa.table({"request_id": [r[0] for r in rows], "stratum": [r[1] for r in rows],
                     "model": ["gemini-2.5-flash"] * len(rows),
                     "input_text_tokens": pa.array([r[2] for r in rows], pa.int64()),
                     "expected_usd": pa.array([0.01] * len(rows)), "high_usd": pa.array([0.05] * len(rows))})


def per_stratum(ids: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for request_id in ids:
        out[request_id.rsplit("-", 1)[0]] = out.get(request_id.rsplit("-", 1)[0], 0) + 1
    return out


NONE = pa.array([], pa.string())


def test_every_stratum_once_then_in_proportion():
    ids = choose_pilot(strata({"a": 80, "b": 15, "c": 5}), NONE, 10)
    assert per_stratum(ids) == {"a": 8, "b": 1, "c": 1}  # shares of 10: 8, 1.5, 0.5


def test_fewer_picks_than_strata_go_to_the_largest():
    assert per_stratum(choose_pilot(strata({"a": 5, "b": 50, "c": 20}), NONE, 2)) == {"b": 1, "c": 1}


def test_picks_spread_over_prompt_lengths_and_come_in_manifest_order():
    assert choose_pilot(strata({"a": 9}), NONE, 3) == ["a-1", "a-4", "a-7"]


def test_answered_requests_count_and_are_never_chosen_again():
    table = strata({"a": 50, "b": 50})
    answered = pa.array([f"a-{i}" for i in range(5)], pa.string())
    ids = choose_pilot(table, answered, 5)
    assert per_stratum(ids) == {"b": 5} and not set(ids) & set(answered.to_pylist())


def test_a_pilot_larger_than_what_is_left_takes_all_of_it():
    assert sorted(choose_pilot(strata({"a": 2, "b": 1}), pa.array(["a-0"]), 10)) == ["a-1", "b-0"]


def test_pilot_cost_at_the_run_s_tier():
    cost = pilot_cost(strata({"a": 4}), ["a-0", "a-1"], PriceCatalog.load(), "flex")
    assert (cost.requests, cost.expected_usd, cost.high_usd) == (2, pytest.approx(0.01), pytest.approx(0.05))
