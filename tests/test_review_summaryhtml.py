from batchrun.review.summaryhtml import summary_html

SUMMARY = {
    "rows": 3, "by_status": {"ok": 2, "blocked": 1, "pending": 0}, "by_error_kind": {"SAFETY": 1},
    "cost_usd": 0.3, "cost_by_model": {"m1": 0.1, "m2": 0.2}, "cost_by_tier": {"flex": 0.3},
    "estimate": [{"model": "m1", "requests": 2, "expected_usd": 0.1, "actual_usd": 0.12, "ratio": 1.2}],
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


def test_values_are_escaped():
    assert "&lt;done&gt;" in summary_html(SUMMARY)


def test_an_empty_summary_shows_only_the_total_and_retries_and_says_the_charts_lack_points():
    html = summary_html({"rows": 0})
    assert html.count("<table>") == 2 and html.count("not enough points") == 2
