"""A server's `x-ratelimit-*` headers as a Headroom: what is left of its limits and when each refills.

OpenAI sends `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, the reset as a Go duration text
(`12ms`, `1s`, `6m0s`, `1h2m3.5s`); many gateways send none, Google sends none (reference §8). Values
that can't be read count as not sent: a header never makes a reply fail.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from ..records import Headroom

_PREFIX = "x-ratelimit-"
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")


def parse_headroom(headers: Mapping[str, str] | None) -> Headroom | None:
    """The Headroom the headers tell, or None when they hold no remaining count."""
    # most servers send none: one pass over the names costs less than two httpx lookups that miss
    if not headers or not any(name.lower().startswith(_PREFIX) for name in headers):
        return None
    requests = _int(headers.get("x-ratelimit-remaining-requests"))
    tokens = _int(headers.get("x-ratelimit-remaining-tokens"))
    if requests is None and tokens is None:
        return None
    return Headroom(
        requests=requests,
        requests_limit=_int(headers.get("x-ratelimit-limit-requests")),
        requests_reset_s=parse_duration(headers.get("x-ratelimit-reset-requests")),
        tokens=tokens,
        tokens_limit=_int(headers.get("x-ratelimit-limit-tokens")),
        tokens_reset_s=parse_duration(headers.get("x-ratelimit-reset-tokens")),
    )


def parse_duration(text: str | None) -> float | None:
    """Seconds in a Go duration text (`250ms`, `6m0s`), or in plain seconds (`1.5`); None if neither or not finite."""
    if not text:
        return None
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None  # 'inf' and 'nan' parse too
    position, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    return total if position == len(text) and position else None


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        return None
    return number if number >= 0 else None
