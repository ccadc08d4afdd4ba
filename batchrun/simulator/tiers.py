"""Service tiers in the simulator: `serviceTier` read, the serving tier decided, and how it is reported.

In:  a generateContent body's `serviceTier`, the FaultConfig's `flex` settings and `priority_downgrade`,
     the seed and the request's arrival number n. Out: a TierDecision (the tier that serves it, extra
     latency, or the flex capacity error that sheds it); the reply reports the served tier in
     `usageMetadata.serviceTier` and the `x-gemini-service-tier` header.
Invariants: only the lowercase names Google takes are accepted (any other spelling: 400 INVALID_ARGUMENT);
a request that names no tier gets the reply it always got; decisions come from their own seeded stream
(seed, "tier", n), so a seed gives the generate faults it always gave.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidRequest
from .faults import FaultConfig
from .replies import google_error

TIERS = ("standard", "flex", "priority")
SERVED_TIER_HEADER = "x-gemini-service-tier"


@dataclass(frozen=True, slots=True)
class TierDecision:
    served: str | None  # None: the request named no tier, and the reply says none
    delay_s: float = 0.0
    shed_status: int | None = None  # 503 or 429: the flex tier has no capacity for it


def read_service_tier(body: dict[str, Any]) -> str | None:
    """The body's serviceTier (camelCase or snake_case), None if absent; InvalidRequest if misspelt."""
    value = body.get("serviceTier", body.get("service_tier"))
    if value is None:
        return None
    if value not in TIERS:
        raise InvalidRequest(
            f"Invalid value at 'service_tier' ({value!r}): expected one of {', '.join(TIERS)} (lowercase)."
        )
    return str(value)


def decide_tier(config: FaultConfig, seed: int, n: int, asked: str | None) -> TierDecision:
    """How the n-th request, asking for `asked`, is served."""
    if asked is None:
        return TierDecision(None)
    rng = random.Random(f"{seed}/tier/{n}")
    u_shed, u_downgrade = rng.random(), rng.random()
    if asked == "priority":
        return TierDecision("standard" if u_downgrade < config.priority_downgrade else "priority")
    flex = config.flex
    if asked != "flex" or flex is None:
        return TierDecision(asked)
    capacity = flex.capacity
    if capacity is not None and (capacity.scheduled(n) or u_shed < capacity.rate):
        return TierDecision("flex", shed_status=flex.capacity_status)
    delay = flex.latency.sample_s(rng) if flex.latency is not None else 0.0
    return TierDecision("flex", delay_s=delay)


def capacity_error(status: int) -> dict[str, Any]:
    """What the flex tier answers when it sheds a request: 503 UNAVAILABLE or 429 RESOURCE_EXHAUSTED."""
    if status == 429:
        return google_error(429, "RESOURCE_EXHAUSTED", "Flex capacity is exhausted. Please try again later.")
    return google_error(503, "UNAVAILABLE", "The flex tier is at capacity. Please try again later.")


def report_served(reply_object: dict[str, Any], served: str | None) -> None:
    """Put the served tier in a reply's usageMetadata (a reply to a request that named none is left alone)."""
    if served is not None:
        reply_object.setdefault("usageMetadata", {})["serviceTier"] = served
