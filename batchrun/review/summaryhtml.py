"""The report's summary section as HTML: tables of counts, cost, tokens, latency, runs, and two charts.

Input: the run summary (a dict, see `batchrun.review.summary`). Output: an HTML fragment, every value
escaped. Pure: no files.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from batchrun.review.charts import line_chart


def summary_html(summary: dict[str, Any]) -> str:
    """The summary section's inner HTML."""
    cards = [
        _table("Results", ("status", "rows"), sorted(summary.get("counts", {}).items())),
        _table("Errors", ("error kind", "rows"), sorted(summary.get("errors", {}).items())),
        _table("Cost", ("model", "tier", "rows", "USD"),
               [(c["model"], c["tier"], c["rows"], f"{c['cost_usd']:.4f}") for c in summary.get("cost", [])]),
        _table("Tokens", ("kind", "tokens"), [(k, f"{v:,}") for k, v in summary.get("tokens", {}).items()]),
        _table("Latency", ("percentile", "ms"), [(k, _number(v)) for k, v in summary.get("latency_ms", {}).items()]),
        _table("Retries", ("", ""), [("attempts after the first", summary.get("retries", 0))]),
        _table("Runs", ("run", "tier", "rows written"),
               [(r.get("run_id"), r.get("tier"), r.get("rows_written")) for r in summary.get("runs", [])]),
    ]
    charts = [line_chart(summary.get("throughput", []), title="Results per minute"),
              line_chart(summary.get("spend", []), title="Cumulative spend (USD)", value_format="{:,.2f}")]
    return f'<div class="cards">{"".join(cards)}</div><div class="cards">{"".join(charts)}</div>'


def _number(value: Any) -> str:
    return "" if value is None else f"{value:,.0f}"


def _table(title: str, head: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    body = "".join("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    if not body:
        return ""
    heads = "".join(f"<th>{escape(h)}</th>" for h in head)
    return f"<div><h3>{escape(title)}</h3><table><tr>{heads}</tr>{body}</table></div>"
