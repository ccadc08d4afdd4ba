"""`batchrun run` and `batchrun estimate`: from a spec to a finished (or cleanly stopped) run.

Wires the stages: load the spec, take the output folder's lock (held to the end), plan if the manifest
is stale, open the sink (recovering a crashed run), compute what is pending, build the client, limiter,
retry policy and provider, run the pool, close the sink, calibrate the estimate, and turn how it ended
into an exit code.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import anyio
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import (
    EXIT_FAILURES,
    EXIT_OK,
    AuthFailed,
    BudgetReached,
    DeadlineReached,
    Interrupted,
    QuotaExhausted,
    UsageError,
    missing_key_message,
)
from ..http import SIMULATOR_BASE_URL, make_client, make_transport
from ..lock import folder_lock
from ..manifest import iter_records
from ..plan import manifest_is_current, manifest_path, plan_job
from ..pricing import PriceCatalog, cost_usd, require_prices, worst_case_cost
from ..progress import Progress, make_display
from ..providers.gemini import GeminiProvider
from ..records import RequestRecord, Usage
from ..sink import Sink, list_parts, pending_ids, read_parts
from ..spec import LoadedSpec, load_spec
from ..spend import job_spend
from .clock import MonotonicClock
from .limiter import Limiter
from .pool import Budget, PoolStop, StopReason, WorkerPool
from .retry import RetryPolicy

log = logging.getLogger(__name__)

STOP_ERRORS = {
    StopReason.BUDGET: BudgetReached,
    StopReason.DEADLINE: DeadlineReached,
    StopReason.AUTH: AuthFailed,
    StopReason.QUOTA: QuotaExhausted,
    StopReason.INTERRUPTED: Interrupted,
}


@dataclass
class RunOptions:
    deadline_s: float | None = None  # seconds from now
    max_cost: float | None = None
    prices: Path | None = None
    retry_failed: bool = True
    concurrency: int | None = None
    grace_s: float = 30.0
    progress: str = "auto"
    status_every: float = 30.0
    handle_signals: bool = True


def run_command(args) -> int:
    options = RunOptions(
        deadline_s=deadline_from(args.until, args.max_duration, dt.datetime.now()),
        max_cost=args.max_cost,
        prices=args.prices,
        retry_failed=not args.no_retry_failed,
        concurrency=args.concurrency,
        grace_s=args.grace,
        progress=args.progress,
        status_every=args.status_every,
    )
    return run_job(load_spec(args.spec), options)


def estimate_command(args) -> int:
    from ..estimate import estimate_report

    loaded = prepare(load_spec(args.spec))
    catalog = load_catalog(loaded, args.prices)
    budget = args.max_cost if args.max_cost is not None else loaded.spec.budget.max_cost_usd
    print(estimate_report(manifest_path(loaded), loaded.output_dir, catalog, json_out=args.json, budget_usd=budget))
    return EXIT_OK


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


def parse_duration(text: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*", text)
    if not match:
        raise UsageError(f"--max-duration {text!r}: expected a number with s, m or h, e.g. 45m or 7h")
    return float(match[1]) * {"s": 1, "m": 60, "h": 3600, None: 1}[match[2]]


def prepare(loaded: LoadedSpec, *, lock_held: bool = False) -> LoadedSpec:
    """Warn, and plan again (under the folder's lock) when the manifest is missing or older than the spec."""
    from ..lifecycle import lifecycle_warning

    for line in loaded.warnings:
        log.warning(line)
    retiring = lifecycle_warning(loaded.spec.model, dt.date.today())
    if retiring:
        log.warning(retiring)
    if not manifest_is_current(loaded):
        summary = plan_job(loaded, lock_held=lock_held)
        log.info("planned %s requests into %s", f"{summary.requests:,}", summary.manifest)
    return loaded


def load_catalog(loaded: LoadedSpec, prices: Path | None) -> PriceCatalog:
    return PriceCatalog.load(overrides=loaded.spec.pricing, prices_file=prices)


def api_key(loaded: LoadedSpec) -> str | None:
    env = loaded.spec.provider.key_env
    if env is None:
        return None
    key = os.environ.get(env)
    if not key:
        raise UsageError(f"{loaded.shown}: provider.api_key_env: {missing_key_message(env)}")
    return key


def run_job(loaded: LoadedSpec, options: RunOptions) -> int:
    """Send what is pending; return the exit code, or raise the RunStopped error that ended the run."""
    # Locked before planning: two runs of a never-planned spec would otherwise both write its manifest.
    with folder_lock(loaded.output_dir) as lock:
        return _run_locked(loaded, options, lock)


def _run_locked(loaded: LoadedSpec, options: RunOptions, lock: Path) -> int:
    started = time.monotonic()
    spec = loaded.spec
    key = api_key(loaded)
    prepare(loaded, lock_held=True)
    catalog = load_catalog(loaded, options.prices)
    cap = options.max_cost if options.max_cost is not None else spec.budget.max_cost_usd
    if cap is not None:
        require_prices([spec.model], catalog)
    # Every journal line reaches the OS at once (one write, ~3 us): a `kill -9` then loses no reply that
    # had arrived, and no sent marker, so the next run reports every request it may send twice.
    sink = Sink(loaded.output_dir, run_id=_run_id(), flush_every=1)
    recovery = sink.open(held_lock=lock)
    try:
        if recovery.in_flight_at_crash:
            log.warning(
                "%d requests were in flight when an earlier run stopped without finishing; they are sent again "
                "and may have been billed twice", recovery.in_flight_at_crash,
            )
        pending = pending_request_ids(manifest_path(loaded), sink, options.retry_failed)
        kept_failed = 0 if options.retry_failed else len(sink.failed_ids())
        spent = spent_so_far(loaded.output_dir)
        progress = Progress(total=len(pending), prior_spend_usd=spent)
        log.info("%s requests pending; spent so far $%.4f", f"{len(pending):,}", spent)
        stop = anyio.run(_run_pool, loaded, options, key, catalog, sink, progress, pending, Budget(cap, spent))
    finally:
        sink.close()
    _calibrate(loaded, catalog)
    return _finish(stop, progress, time.monotonic() - started, kept_failed)


def _run_id() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def pending_request_ids(manifest: Path, sink: Sink, retry_failed: bool) -> pa.Array:
    """Ids of every request without a final result, in manifest order (columnar: fast for millions)."""
    done = sink.final_ids()
    if not retry_failed:
        done = pa.concat_arrays([done, sink.failed_ids()])
    ids = pq.read_table(manifest, columns=["request_id"])["request_id"].combine_chunks()
    return pending_ids(ids, done)


def results_table(out_dir: Path, columns: tuple[str, ...]) -> pa.Table:
    """Some columns of every result part of a job (an empty table before its first part)."""
    return read_parts(list_parts(out_dir / "results"), columns)


def spent_so_far(out_dir: Path) -> float:
    """Every result's cost, in the manifest or not: the figure `status` and `estimate` show too."""
    return job_spend(out_dir).usd


async def _run_pool(loaded, options, key, catalog, sink, progress, pending, budget) -> PoolStop:
    spec = loaded.spec
    concurrency = options.concurrency or spec.limits.concurrency
    clock = MonotonicClock()
    transport = make_transport(
        spec.provider.kind, concurrency, profile=spec.provider.profile, seed=spec.provider.seed,
        faults_file=str(loaded.folder / spec.provider.faults) if spec.provider.faults else None,
    )
    base_url = SIMULATOR_BASE_URL if spec.provider.kind == "simulator" else spec.provider.url
    provider = GeminiProvider(
        base_url, key, auth=spec.provider.auth, spec_dir=loaded.folder,
        stream=spec.provider.stream, timeout_s=spec.limits.timeout_s,
    )
    limits = spec.limits
    limiter = Limiter(
        concurrency=concurrency, requests_per_minute=limits.requests_per_minute,
        tokens_per_minute=limits.tokens_per_minute, images_per_minute=limits.images_per_minute, clock=clock,
        unpaced_until_429=True,  # bench/RESULTS.md: a slow start from 1 req/s cost 7 s of a 20,000-request run
    )
    retry = spec.retry
    policy = RetryPolicy(
        max_attempts=retry.max_attempts, initial_s=retry.initial_s, max_wait_s=retry.max_wait_s,
        no_image_attempts=retry.no_image_attempts,
    )
    display = make_display(options.progress, progress, options.status_every)
    pool = WorkerPool(
        provider=provider, client=None, limiter=limiter, policy=policy, sink=sink, progress=progress,
        clock=clock, concurrency=concurrency, cost=_coster(catalog), worst_case=_worst(catalog),
        budget=budget, deadline=None if options.deadline_s is None else clock.now() + options.deadline_s,
        grace_s=options.grace_s, handle_signals=options.handle_signals,
        on_tick=_ticker(display, sink, options.status_every), tick_s=0.5, on_reply=_status_warner(),
    )
    display.start()
    try:
        async with make_client(transport, spec.limits.timeout_s) as client:
            pool.client = client
            return await pool.run(iter_records(manifest_path(loaded), request_ids=pending, batch_rows=2048))
    finally:
        sink.flush()
        display.stop()


def _coster(catalog: PriceCatalog):
    def cost(record: RequestRecord, usage: Usage | None) -> float | None:
        if usage is None:
            return None
        tier = str(record.body.get("serviceTier") or "standard").lower()
        return cost_usd(usage, catalog.price_for(record.model), tier=tier if tier in ("flex", "batch") else "standard")

    return cost


def _worst(catalog: PriceCatalog):
    cache: dict[tuple, float | None] = {}

    def worst(record: RequestRecord) -> float | None:
        key = (record.model, record.estimate)
        if key not in cache:
            cache[key] = worst_case_cost(record.estimate, catalog.lookup(record.model))
        return cache[key]

    return worst


def _ticker(display, sink: Sink, every: float):
    state = {"last": time.monotonic()}

    def tick() -> None:
        sink.flush()
        now = time.monotonic()
        if now - state["last"] >= getattr(display, "every", every):
            state["last"] = now
            display.refresh()

    return tick


def _status_warner():
    from ..lifecycle import status_warning

    warned: set[str] = set()

    def on_reply(reply) -> None:
        if reply.model_stage is None and reply.retirement_time is None:
            return
        key = f"{reply.model_version}:{reply.model_stage}:{reply.retirement_time}"
        if key in warned:
            return
        warned.add(key)
        line = status_warning(reply.model_version or "the model", reply.model_stage, reply.retirement_time)
        if line:
            log.warning(line)

    return on_reply


def _calibrate(loaded: LoadedSpec, catalog: PriceCatalog) -> None:
    from ..estimate import write_calibration

    results = results_table(loaded.output_dir, ("request_id", "status", "cost_usd"))
    if results.num_rows:
        write_calibration(loaded.output_dir, manifest_path(loaded), results, catalog)


def _finish(stop: PoolStop, progress: Progress, elapsed: float, kept_failed: int = 0) -> int:
    log.info(
        "run ended after %.1fs: ok %d, blocked %d, invalid %d, failed %d; spent $%.4f this run",
        elapsed, progress.ok, progress.blocked, progress.invalid, progress.failed, progress.spend_usd,
    )
    if stop.reason is not None:
        left = progress.total - progress.finished
        raise STOP_ERRORS[stop.reason](
            f"run stopped: {stop.message or stop.reason.value}; {left:,} requests left pending; "
            "`batchrun run` again resumes"
        )
    if progress.failed:
        log.warning("%d requests failed after their last attempt; `batchrun run` again sends them", progress.failed)
        return EXIT_FAILURES
    if kept_failed:
        log.warning("%d requests failed in an earlier run and were not sent (--no-retry-failed)", kept_failed)
        return EXIT_FAILURES
    return EXIT_OK
