"""Each command's flags as one frozen options object, checked before anything is read or written.

Input: the argparse Namespace of one command (its spec path stays there). Output: PlanOptions, RunOptions, EstimateOptions,
StatusOptions or SimulateOptions. Invariant: a value that can't work (`--concurrency 0`, `--max-cost -5`,
`--until 25:00`, a missing `--prices` file) raises a one-line UsageError naming the flag and the fix, so
the command exits 2 having written nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import re
from dataclasses import dataclass
from pathlib import Path

from .cluster.target import RayTarget, parse_ray_target
from .errors import UsageError, fallback_tier_message
from .tiers import FALLBACK_TIERS, Tier, run_tier

MAX_CONCURRENCY = 10_000  # as limits.concurrency in a spec
MAX_PORT = 65_535


@dataclass(frozen=True)
class PlanOptions:
    show: int = 0  # print the first N rendered requests
    json: bool = False
    refresh: bool = False  # ask servers again about photos by URL already in the input cache
    skip_bad_inputs: bool = False  # plan the rows whose photos are good; list the others


@dataclass(frozen=True)
class RunOptions:
    deadline_s: float | None = None  # seconds from now
    max_cost: float | None = None
    max_cost_from_projection: str | None = None  # expected | high: cap at the pilot's projection; None: the spec's
    prices: Path | None = None
    retry_failed: bool = True
    retry: frozenset[str] = frozenset()  # final statuses sent again: invalid, blocked
    config_check: bool = True  # stop when the first replies are all 400/404 (a wrong endpoint or model)
    write_wait_s: float = 120.0  # after a write error, how long to wait for space to save what arrived
    concurrency: int | None = None
    grace_s: float = 30.0
    progress: str = "auto"
    status_every: float = 30.0
    handle_signals: bool = True
    tier: Tier | None = None  # --tier; None: the spec's `tier:`
    wait: bool = False  # --wait: a batch run polls until its batches are done (or the deadline)
    until_s: float | None = None  # --until alone, seconds from now: when a batch run switches to its fallback
    max_duration_s: float | None = None  # --max-duration alone: a hard bound, on a fallback's send too
    fallback: Tier | None = None  # --fallback; None: the spec's `batch.fallback`
    batch_timeout_s: float | None = None  # --batch-timeout; None: the spec's `batch.timeout`
    refresh: bool = False  # plan again, asking servers about photos by URL already in the input cache
    skip_bad_inputs: bool = False  # a plan the run makes leaves out rows with bad photos
    wait_quota: bool = False  # --wait-quota: park until a spent daily quota resets (or the spec's run.wait_quota)
    only_requests: frozenset[str] | None = None  # a pilot: send these request ids only (None: every pending one)
    ray: RayTarget | None = None  # --ray: send on a Ray cluster (None: in this process)
    take_over: bool = False  # --take-over: a bucket job runs even when another machine's lease is fresh


@dataclass(frozen=True)
class EstimateOptions:
    prices: Path | None = None
    max_cost: float | None = None  # the budget to compare against; None: the spec's
    json: bool = False
    tier: Tier | None = None  # --tier; None: the spec's `tier:`
    pilot: int | None = None  # --pilot N: send N requests across the strata, then project
    yes: bool = False  # --yes: send the pilot without asking


@dataclass(frozen=True)
class StatusOptions:
    json: bool = False


@dataclass(frozen=True)
class SimulateOptions:
    host: str = "127.0.0.1"
    port: int = 8089
    profile: str | None = None
    faults: Path | None = None
    seed: int = 0
    request_log: Path | None = None


def plan_options(args: argparse.Namespace) -> PlanOptions:
    if args.show < 0:
        raise UsageError(f"--show {args.show}: expected 0 or more requests to print, e.g. --show 3")
    return PlanOptions(show=args.show, json=args.json, refresh=getattr(args, "refresh", False),
                       skip_bad_inputs=getattr(args, "skip_bad_inputs", False))


def run_options(args: argparse.Namespace, now: dt.datetime) -> RunOptions:
    """The run's options; `now` is the local time --until counts from."""
    return RunOptions(
        deadline_s=deadline_from(args.until, args.max_duration, now),
        max_cost=_max_cost(args.max_cost),
        max_cost_from_projection=getattr(args, "max_cost_from_projection", None),
        prices=_prices_file(args.prices),
        retry_failed=not args.no_retry_failed,
        retry=parse_retry(args.retry),
        config_check=not args.no_config_check,
        write_wait_s=_at_least(args.write_wait, 0, "--write-wait", "0 or more seconds to wait for space, e.g. --write-wait 120"),
        concurrency=_concurrency(args.concurrency),
        grace_s=_at_least(args.grace, 0, "--grace", "0 or more seconds to wait for requests in flight, e.g. --grace 30"),
        progress="none" if args.quiet and args.progress == "auto" else args.progress,
        status_every=_positive(args.status_every, "--status-every",
                               "more than 0 seconds between status lines, e.g. --status-every 30"),
        tier=_tier(getattr(args, "tier", None)),
        wait=getattr(args, "wait", False),
        until_s=deadline_from(args.until, None, now),
        max_duration_s=deadline_from(None, args.max_duration, now),
        fallback=fallback_tier(getattr(args, "fallback", None), "--fallback"),
        batch_timeout_s=_batch_timeout(getattr(args, "batch_timeout", None)),
        refresh=getattr(args, "refresh", False),
        skip_bad_inputs=getattr(args, "skip_bad_inputs", False),
        wait_quota=getattr(args, "wait_quota", False),
        ray=None if getattr(args, "ray", None) is None else parse_ray_target(args.ray),
        take_over=getattr(args, "take_over", False),
    )


def estimate_options(args: argparse.Namespace) -> EstimateOptions:
    pilot = getattr(args, "pilot", None)
    if pilot is not None and pilot < 1:
        raise UsageError(f"--pilot {pilot}: expected 1 or more requests to send, e.g. --pilot 20")
    return EstimateOptions(prices=_prices_file(args.prices), max_cost=_max_cost(args.max_cost),
                           json=args.json, tier=_tier(getattr(args, "tier", None)), pilot=pilot,
                           yes=getattr(args, "yes", False))


def status_options(args: argparse.Namespace) -> StatusOptions:
    return StatusOptions(json=args.json)


def simulate_options(args: argparse.Namespace) -> SimulateOptions:
    if args.profile and args.faults:
        raise UsageError("give either --profile or --faults, not both")
    if not 0 <= args.port <= MAX_PORT:
        raise UsageError(f"--port {args.port}: expected 0 to {MAX_PORT} (0 picks a free port)")
    faults = Path(args.faults) if args.faults else None
    if faults is not None and not faults.is_file():
        raise UsageError(f"--faults {faults}: no such file; give the path of a faults YAML file")
    return SimulateOptions(host=args.host, port=args.port, profile=args.profile, faults=faults, seed=args.seed,
                           request_log=Path(args.request_log) if args.request_log else None)


def parse_retry(text: str | None) -> frozenset[str]:
    """`--retry invalid,blocked` -> {"invalid", "blocked"}."""
    if not text:
        return frozenset()
    from batchrun.running.pending import (
        RETRYABLE_FINAL,  # only here: it loads pyarrow, which plan's spec check waits for
    )

    names = {part.strip().lower() for part in text.split(",") if part.strip()}
    unknown = names - set(RETRYABLE_FINAL)
    if unknown:
        raise UsageError(f"--retry {text!r}: {', '.join(sorted(unknown))} is not a status to send again; "
                         f"use {' and/or '.join(RETRYABLE_FINAL)} (failed rows are sent again by default)")
    return frozenset(names)


def deadline_from(until: str | None, max_duration: str | None, now: dt.datetime) -> float | None:
    """Seconds from `now` to the earlier of --until HH:MM (next occurrence) and --max-duration."""
    limits = []
    if until:
        match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", until.strip())
        if not match:
            raise UsageError(f"--until {until!r}: expected a local time HH:MM, e.g. 06:30")
        target = now.replace(hour=int(match[1]), minute=int(match[2]), second=0, microsecond=0)
        if target <= now:
            target += dt.timedelta(days=1)
        limits.append((target - now).total_seconds())
    if max_duration:
        limits.append(parse_duration(max_duration))
    return min(limits) if limits else None


def parse_duration(text: str, flag: str = "--max-duration") -> float:
    try:
        return duration_seconds(text)
    except ValueError as exc:
        raise UsageError(f"{flag} {text!r}: expected {exc}") from None


def duration_seconds(text: str) -> float:
    """`90s`, `45m`, `7h` or a bare number of seconds; ValueError (saying what to write) if none or not above 0."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*", text)
    if not match:
        raise ValueError("a number with s, m or h, e.g. 45m or 7h")
    seconds = float(match[1]) * {"s": 1, "m": 60, "h": 3600, None: 1}[match[2]]
    if seconds <= 0:
        raise ValueError("more than 0, e.g. 45m or 7h")
    return seconds


def fallback_tier(value: object, where: str) -> Tier | None:
    """The tier a batch run falls back to (flex or standard); UsageError naming `where` otherwise."""
    if value is None:
        return None
    name = str(value).strip().lower()
    if name not in FALLBACK_TIERS:
        raise UsageError(f"{where} {value}: {fallback_tier_message(value)}")
    return Tier(name)


def _batch_timeout(text: str | None) -> float | None:
    return None if text is None else parse_duration(text, "--batch-timeout")


def _tier(value: str | None) -> Tier | None:
    if value is None:
        return None
    try:
        return run_tier(value)
    except ValueError as exc:
        raise UsageError(f"--tier {value}: {exc}") from None


def _max_cost(value: float | None) -> float | None:
    return None if value is None else _positive(value, "--max-cost", "a budget in USD above 0, e.g. --max-cost 25")


def _concurrency(value: int | None) -> int | None:
    if value is not None and not 1 <= value <= MAX_CONCURRENCY:
        raise UsageError(f"--concurrency {value}: expected 1 to {MAX_CONCURRENCY:,} requests in flight, "
                         "e.g. --concurrency 16")
    return value


def _prices_file(path: Path | None) -> Path | None:
    if path is not None and not path.is_file():
        raise UsageError(f"--prices {path}: no such file; give a YAML or JSON file of model -> rates")
    return path


def _positive(value: float, flag: str, fix: str) -> float:
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{flag} {value:g}: expected {fix}")
    return value


def _at_least(value: float, low: float, flag: str, fix: str) -> float:
    if not math.isfinite(value) or value < low:
        raise UsageError(f"{flag} {value:g}: expected {fix}")
    return value
