"""Charts drawn into the report as inline SVG: no script, no network, readable from file://.

Input: a series of (unix seconds, value) points. Output: an `<svg>` string with the line, its time
axis (first and last time, UTC) and its value axis (0 and the maximum). Pure: no files, no clock.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 420, 140
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 52, 10, 18, 22


def line_chart(points: Sequence[tuple[float, float]], *, title: str, value_format: str = "{:,.0f}") -> str:
    """An SVG line chart of (time, value) points; a note instead of a line when there are fewer than two."""
    head = (f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">'
            f'<text x="{PAD_LEFT}" y="12" style="font-weight:600">{escape(title)}</text>')
    if len(points) < 2:
        return head + f'<text x="{PAD_LEFT}" y="{HEIGHT // 2}">not enough points to draw</text></svg>'
    return head + _axes(points, value_format) + _polyline(points) + "</svg>"


def _scale(points: Sequence[tuple[float, float]]) -> tuple[float, float, float, float]:
    t0, t1 = points[0][0], points[-1][0]
    top = max(value for _, value in points) or 1.0
    return t0, max(t1 - t0, 1e-9), top, 0.0


def _xy(t: float, value: float, scale: tuple[float, float, float, float]) -> tuple[float, float]:
    t0, span, top, _ = scale
    x = PAD_LEFT + (t - t0) / span * (WIDTH - PAD_LEFT - PAD_RIGHT)
    y = HEIGHT - PAD_BOTTOM - value / top * (HEIGHT - PAD_TOP - PAD_BOTTOM)
    return round(x, 1), round(y, 1)


def _polyline(points: Sequence[tuple[float, float]]) -> str:
    scale = _scale(points)
    coords = " ".join("{},{}".format(*_xy(t, v, scale)) for t, v in points)
    return f'<polyline fill="none" stroke="#2f6fde" stroke-width="1.5" points="{coords}"/>'


def _axes(points: Sequence[tuple[float, float]], value_format: str) -> str:
    t0, span, top, _ = _scale(points)
    bottom, right = HEIGHT - PAD_BOTTOM, WIDTH - PAD_RIGHT
    return (f'<line x1="{PAD_LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#c9ced5"/>'
            f'<line x1="{PAD_LEFT}" y1="{PAD_TOP}" x2="{PAD_LEFT}" y2="{bottom}" stroke="#c9ced5"/>'
            f'<text x="{PAD_LEFT - 4}" y="{PAD_TOP + 8}" text-anchor="end">{escape(value_format.format(top))}</text>'
            f'<text x="{PAD_LEFT - 4}" y="{bottom}" text-anchor="end">0</text>'
            f'<text x="{PAD_LEFT}" y="{HEIGHT - 6}">{_clock(t0)}</text>'
            f'<text x="{right}" y="{HEIGHT - 6}" text-anchor="end">{_clock(t0 + span)}</text>')


def _clock(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%m-%d %H:%M:%S")
