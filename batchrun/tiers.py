"""Service tiers: the tier a run asks for and the tier a reply says served it.

In:  a tier name from the spec's `tier:` key, a `--tier` flag, or a reply (Gemini's `serviceTier`,
     OpenAI's `service_tier`, the `x-gemini-service-tier` header). Out: a `Tier`, or None for a
     value no tier is known by.
Invariant: the tier is never part of a request's identity; adapters add it to the wire body at send
time, so a job half-run at one tier and continued at another sends no answered row again.
"""

from __future__ import annotations

import enum

from .errors import tier_message

FLEX_TIMEOUT_S = 900.0  # flex's first byte can take up to 15 minutes (reference §1)
SERVED_TIER_HEADER = "x-gemini-service-tier"


class Tier(enum.StrEnum):
    """A service tier; the value is what Gemini's `serviceTier` takes (lowercase)."""

    STANDARD = "standard"
    FLEX = "flex"
    PRIORITY = "priority"
    BATCH = "batch"  # Gemini Batch Mode: the run submits batch jobs (batching/run.py), not requests


RUN_TIERS = (Tier.STANDARD, Tier.FLEX, Tier.PRIORITY, Tier.BATCH)  # what `tier:` and `--tier` accept
FALLBACK_TIERS = (Tier.STANDARD, Tier.FLEX)  # what a batch run may switch to: both send synchronously
BATCH_KINDS = ("gemini", "simulator")  # the provider kinds whose endpoint offers Batch Mode
# OpenAI's names for the same tiers: "default" is its standard
_ALIASES = {"default": Tier.STANDARD, "on_demand": Tier.STANDARD}


def run_tier(value: object) -> Tier:
    """The tier a run asks for, from `tier:` or `--tier`; ValueError (the message says the fix) if none."""
    name = str(value).strip().lower() if isinstance(value, str) else None
    if name in RUN_TIERS:
        return Tier(name)
    raise ValueError(tier_message(value))


def served_tier(value: object) -> Tier | None:
    """The tier a reply names (`flex`, `SERVICE_TIER_FLEX`, OpenAI's `default`), None if none or unknown."""
    if not isinstance(value, str) or not value.strip():
        return None
    name = value.strip().lower().removeprefix("service_tier_")
    if name in _ALIASES:
        return _ALIASES[name]
    try:
        return Tier(name)
    except ValueError:
        return None


def run_timeout_s(tier: Tier, spec_timeout_s: float, timeout_in_spec: bool) -> float:
    """The request timeout of a run: the spec's when it names one, else 900 s at flex, else the default."""
    if tier is Tier.FLEX and not timeout_in_spec:
        return max(spec_timeout_s, FLEX_TIMEOUT_S)
    return spec_timeout_s
