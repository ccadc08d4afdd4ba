"""The report's summary section as HTML: tables of counts, cost, estimate, tokens, latency, retries,
runs, and two charts (results per time bucket, cumulative spend).

Input: the run summary as JSON (`batchrun.review.summary.RunSummary.to_json()`). Output: an HTML
fragment, every value escaped. Pure: no files, no clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from batchrun.review.charts import line_chart


def summary_html(summary: dict[str, Any]) -> str:
    """The summary section's inner HTML."""
    cards = [
        _table("Rows", ("status", "rows"), [*summary.get("by_status", {}).items(), ("total", summary.get("rows", 0))]),
        _table("Errors", ("error kind", "rows"), sorted(summary.get("by_error_kind", {}).items())),
        _table("Cost by model", ("model", "USD"), _money_rows(summary.get("cost_by_model", {}), summary.get("cost_usd"))),
        _table("Cost by tier", ("tier", "USD"), _money_rows(summary.get("cost_by_tier", {}), None)),
        _table("Estimate vs actual", ("model", "requests", "estimate", "actual", "ratio"),
               [(e.get("model"), e.get("requests"), _usd(e.get("expected_usd")), _usd(e.get("actual_usd")),
                 _ratio(e.get("ratio"))) for e in summary.get("estimate", [])]),
        _strata_table(summary.get("estimate_strata")),
        _table("Tokens", ("kind", "tokens"), [(k.removesuffix("_tokens"), f"{v:,}") for k, v in summary.get("tokens", {}).items()]),
        _table("Latency", ("percentile", "ms"), [(k, _count(v)) for k, v in summary.get("latency_ms", {}).items()]),
        _table("Retries and 429s", ("", ""), [("attempts after the first", _count(summary.get("retries"))),
                                             ("429 replies", _count(summary.get("rate_limited")))]),
        _table("Runs", ("run", "started", "ended", "exit", "tier", "rows written"),
               [(r.get("run_id"), _when(r.get("started_at")), _when(r.get("ended_at")), r.get("exit_reason"),
                 r.get("tier"), _count(r.get("rows_written"))) for r in summary.get("runs", [])]),
    ]
    bucket = summary.get("bucket_s", 60)
    charts = [
        line_chart(_series(summary.get("throughput", []), "results"), title=f"Results per {bucket} s"),
        line_chart(_series(summary.get("spend", []), "cumulative_usd"), title="Cumulative spend (USD)",
                   value_format="{:,.2f}"),
    ]
    return f'<div class="cards">{"".join(cards)}</div><div class="cards">{"".join(charts)}</div>'


def _strata_table(check: dict[str, Any] | None) -> str:
    """Estimate against actual per stratum; a projected column when the pilot's projection is there."""
    if not check:
        return ""
    projected = check["total"].get("projected_usd") is not None
    head = ("stratum", "done", "estimate", *(("projected",) if projected else ()), "actual", "ratio")
    rows = [*check["strata"], *([check["other"]] if check.get("other") else []), check["total"]]
    return _table("Estimate vs actual by stratum", head, [
        (r["stratum"], _count(r["requests"]), _usd(r["expected_usd"]),
         *((_usd(r["projected_usd"]),) if projected else ()), _usd(r["actual_usd"]), _ratio(r["ratio"]))
        for r in rows])


def _series(points: Iterable[dict[str, Any]], key: str) -> list[tuple[float, float]]:
    """(unix seconds, value) of summary points whose `t` is an ISO time."""
    return [(dt.datetime.fromisoformat(p["t"]).timestamp(), float(p[key] or 0)) for p in points if p.get("t")]


def _money_rows(costs: dict[str, float], total: float | None) -> list[tuple[str, str]]:
    rows = [(name, _usd(value)) for name, value in sorted(costs.items())]
    return rows + ([("total", _usd(total))] if total is not None and len(rows) > 1 else [])


def _usd(value: Any) -> str:
    return "" if value is None else f"${value:,.4f}"


def _ratio(value: Any) -> str:
    return "" if value is None else f"{value:.2f}x"


def _count(value: Any) -> str:
    return "n/a" if value is None else f"{value:,}"


def _when(value: Any) -> str:
    return "" if not value else str(value)[:19].replace("T", " ")


def _table(title: str, head: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    body = "".join("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    if not body:
        return ""
    heads = "".join(f"<th>{escape(h)}</th>" for h in head)
    return f"<div><h3>{escape(title)}</h3><table><tr>{heads}</tr>{body}</table></div>"
