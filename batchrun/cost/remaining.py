"""What is left of a partly done job: spent so far, the expected and high cost of what remains, the total.

Inputs: the manifest's row and request ids, and the folder's latest result per row (`output.spend`).
Output: the requests still to send (`pending_requests`) and a `RemainingCost` the estimate prices them
into. A row is done once its latest result is final (ok, blocked, invalid); a failed row is sent again by
the next run, so it remains. Rows sharing one request are priced once. The spend counts every result in
the folder (the figure the run's budget starts from), so spent + remaining is what the whole job costs
across all its runs: the figure `--max-cost` caps. Once requests are answered, the expected figure is the
projection's (`cost.projection`: per stratum, observed cost over estimate), with its 90% interval; the
high bound stays the manifest's (the interval's top when that is higher).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from batchrun.outcomes import FINAL_STATUSES
from batchrun.planning.manifest import read_columns


@dataclass(frozen=True, slots=True)
class PendingRequests:
    """The manifest rows without a final result, and the distinct requests they send."""

    rows: int
    request_ids: pa.Array


@dataclass(frozen=True, slots=True)
class RemainingCost:
    """The cost of what a job has left to send at one tier, beside what it has spent."""

    tier: str
    rows: int
    requests: int
    spent_usd: float
    expected_usd: float | None  # None: a model's price is unknown
    high_usd: float | None
    interval: tuple[float, float] | None = None  # with a projection: its 90% interval of what remains

    @property
    def projected(self) -> bool:
        """Whether expected comes from the answered requests' observed costs (a projection)."""
        return self.interval is not None

    def with_projection(self, expected: float | None, low: float | None, high: float | None) -> RemainingCost:
        """The remaining cost with the projection's expected and 90% interval; the high bound is the manifest's,
        or the interval's top when that is higher."""
        if expected is None or low is None or high is None:
            return self
        top = None if self.high_usd is None else max(high, self.high_usd)
        return replace(self, expected_usd=round(expected, 6), high_usd=top, interval=(low, high))

    def total(self, kind: str) -> float | None:
        """Spent plus the remaining 'expected' or 'high' cost."""
        left = self.expected_usd if kind == "expected" else self.high_usd
        return None if left is None else round(self.spent_usd + left, 6)

    def _interval_json(self, base: float) -> dict[str, float] | None:
        return None if self.interval is None else {"low": round(base + self.interval[0], 6),
                                                   "high": round(base + self.interval[1], 6)}

    def to_json(self) -> dict[str, Any]:
        return {"tier": self.tier, "rows": self.rows, "requests": self.requests,
                "spent_usd": round(self.spent_usd, 6), "projected": self.projected,
                "remaining": {"expected": self.expected_usd, "high": self.high_usd,
                              "interval": self._interval_json(0.0)},
                "total": {"expected": self.total("expected"), "high": self.total("high"),
                          "interval": self._interval_json(self.spent_usd)}}

    def lines(self, usd) -> list[str]:
        """The report's lines; `usd` formats a dollar figure."""
        return [
            f"Remaining: {self.rows:,} rows without a final result ({self.requests:,} requests to send), "
            f"at the {self.tier} tier",
            f"  {'spent so far':<16}{usd(self.spent_usd):>14}",
            self._line("remaining", 0.0, self.expected_usd, self.high_usd, usd),
            self._line("whole job", self.spent_usd, self.total("expected"), self.total("high"), usd),
        ]

    def _line(self, name: str, base: float, expected: float | None, high: float | None, usd) -> str:
        if self.interval is None:
            return f"  {name:<16}{usd(expected):>14} expected{usd(high):>14} high"
        low, top = (base + value for value in self.interval)
        return f"  {name:<16}{usd(expected):>14} projected (90%: {usd(low)} to {usd(top)}){usd(high):>12} high"


def pending_requests(manifest_path: Path, latest: pa.Table) -> PendingRequests:
    """The rows of the manifest whose latest result (one row per row_id) is not final, and their requests."""
    rows = read_columns(Path(manifest_path), ["row_id", "request_id"])
    final = pa.array([str(s) for s in FINAL_STATUSES], pa.string())
    done = latest.filter(pc.is_in(latest["status"], value_set=final))["row_id"].combine_chunks()
    pending = rows.filter(pc.invert(pc.is_in(rows["row_id"], value_set=done)))
    return PendingRequests(len(pending), pc.unique(pending["request_id"].combine_chunks()))
