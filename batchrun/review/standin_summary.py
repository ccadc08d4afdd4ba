"""Stand-in for branch export's run summary (batchrun.review.summary), until it is merged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def summarize_rows(rows: list[dict[str, Any]], out_dir: Path) -> dict[str, Any]:
    counts: dict[str, int] = {}
    errors: dict[str, int] = {}
    cost: dict[tuple[str, str], list[float]] = {}
    tokens = {"input": 0, "output": 0, "thinking": 0}
    latencies, finished, retries = [], [], 0
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
        if r.get("error_kind"):
            errors[r["error_kind"]] = errors.get(r["error_kind"], 0) + 1
        key = (r.get("model") or "", r.get("service_tier") or "")
        cost.setdefault(key, [0, 0.0])
        cost[key][0] += 1
        cost[key][1] += r.get("cost_usd") or 0.0
        for name in tokens:
            tokens[name] += r.get(f"{name}_tokens") or 0
        if r.get("latency_ms") is not None:
            latencies.append(r["latency_ms"])
        if r.get("finished_at") is not None:
            finished.append((r["finished_at"].timestamp(), r.get("cost_usd") or 0.0))
        retries += max((r.get("attempts") or 1) - 1, 0)
    finished.sort()
    spend, total = [], 0.0
    for t, c in finished:
        total += c
        spend.append((t, total))
    throughput: dict[int, int] = {}
    for t, _ in finished:
        throughput[int(t // 60) * 60] = throughput.get(int(t // 60) * 60, 0) + 1
    runs = [json.loads(p.read_text()) for p in sorted((out_dir / "runs").glob("*.json")) if not p.name.endswith(".live.json")]
    return {"counts": counts, "errors": errors,
            "cost": [{"model": m, "tier": t, "rows": n, "cost_usd": c} for (m, t), (n, c) in cost.items()],
            "tokens": tokens, "latency_ms": {q: _percentile(latencies, v) for q, v in (("p50", .5), ("p95", .95), ("p99", .99))},
            "retries": retries, "runs": runs, "throughput": sorted(throughput.items()), "spend": spend}
