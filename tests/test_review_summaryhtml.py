from batchrun.review.summaryhtml import summary_html

SUMMARY = {
    "rows": 3, "by_status": {"ok": 2, "blocked": 1, "pending": 0}, "by_error_kind": {"SAFETY": 1},
    "cost_usd": 0.3, "cost_by_model": {"m1": 0.1, "m2": 0.2}, "cost_by_tier": {"flex": 0.3},
    "estimate": [{"model": "m1", "requests": 2, "expected_usd": 0.1, "actual_usd": 0.12, "ratio": 1.2}],
    "estimate_strata": {
        "strata": [{"stratum": "m1 1K short", "requests": 2, "expected_usd": 0.1, "projected_usd": 0.11,
                    "actual_usd": 0.12, "ratio": 1.2}],
        "other": {"stratum": "(3 other strata)", "requests": 5, "expected_usd": 0.2, "projected_usd": 0.2,
                  "actual_usd": 0.25, "ratio": 1.25},
        "total": {"stratum": "total", "requests": 7, "expected_usd": 0.3, "projected_usd": 0.31,
                  "actual_usd": 0.37, "ratio": 1.2333}},
    "tokens": {"prompt_tokens": 1200}, "latency_ms": {"p50": 200, "p95": 900, "p99": None},
    "retries": 4, "rate_limited": None,
    "runs": [{"run_id": "run-1", "started_at": "2026-11-27T10:00:00+00:00", "ended_at": "2026-11-27T10:05:00+00:00",
              "exit_reason": "<done>", "tier": "flex", "rows_written": 3}],
    "throughput": [{"t": "2026-11-27T10:00:00+00:00", "results": 2}, {"t": "2026-11-27T10:01:00+00:00", "results": 1}],
    "spend": [{"t": "2026-11-27T10:00:00+00:00", "cumulative_usd": 0.2}, {"t": "2026-11-27T10:01:00+00:00", "cumulative_usd": 0.3}],
    "bucket_s": 60,
}


def test_every_part_of_the_summary_is_shown():
    html = summary_html(SUMMARY)
    for text in ("<td>blocked</td><td>1</td>", "<td>total</td><td>3</td>", "<td>SAFETY</td><td>1</td>",
                 "<td>m2</td><td>$0.2000</td>", "<td>total</td><td>$0.3000</td>", "<td>flex</td><td>$0.3000</td>",
                 "<td>1.20x</td>", "<td>prompt</td><td>1,200</td>", "<td>p99</td><td>n/a</td>",
                 "<td>429 replies</td><td>n/a</td>", "<td>2026-11-27 10:00:00</td>", "Results per 60 s"):
        assert text in html, text
    assert html.count("<polyline") == 2


def test_the_estimate_per_stratum_shows_the_projection_beside_the_estimate_and_the_rest_summed():
    html = summary_html(SUMMARY)

    assert ("<tr><th>stratum</th><th>done</th><th>estimate</th><th>projected</th><th>actual</th><th>ratio</th></tr>"
            "<tr><td>m1 1K short</td><td>2</td><td>$0.1000</td><td>$0.1100</td><td>$0.1200</td><td>1.20x</td></tr>"
            "<tr><td>(3 other strata)</td><td>5</td>") in html
    assert "<tr><td>total</td><td>7</td><td>$0.3000</td><td>$0.3100</td><td>$0.3700</td><td>1.23x</td></tr>" in html


def test_without_a_projection_the_strata_table_has_no_projected_column():
    check = {"strata": [], "other": None, "total": {"stratum": "total", "requests": 1, "expected_usd": 0.1,
                                                   "projected_usd": None, "actual_usd": 0.1, "ratio": 1.0}}

    html = summary_html({**SUMMARY, "estimate_strata": check})

    assert "<th>estimate</th><th>actual</th>" in html and "projected" not in html


def test_values_are_escaped():
    assert "&lt;done&gt;" in summary_html(SUMMARY)


def test_an_empty_summary_shows_only_the_total_and_retries_and_says_the_charts_lack_points():
    html = summary_html({"rows": 0})
    assert html.count("<table>") == 2 and html.count("not enough points") == 2
