"""`batchrun run` and `batchrun estimate`: from a spec to a finished (or cleanly stopped) run.

Wires the stages: load the spec, take the output folder's lock (held to the end), plan if the manifest
is stale, open the sink (recovering a crashed run), compute what is pending, build the client, limiter,
retry policy and provider, run the pool, close the sink, calibrate the estimate, and turn how it ended
into an exit code.
"""

from __future__ import annotations

import contextlib
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
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import (
    EXIT_FAILURES,
    EXIT_OK,
    AuthFailed,
    BillingStopped,
    BudgetReached,
    DeadlineReached,
    EXIT_NOT_OK,
    ConfigRejected,
    Interrupted,
    QuotaExhausted,
    UsageError,
    WriteFailed,
    missing_key_message,
    unsendable_key_message,
)
from ..http import make_client
from ..live import LiveFile, live_path
from ..lock import acquire_lock, release_lock
from ..manifest import read_columns, require_request_format
from ..plan import manifest_is_current, manifest_path, plan_job
from ..pricing import PriceCatalog, cost_usd, require_prices, worst_case_cost
from ..progress import Progress, make_display
from ..providers.registry import ProviderSettings, build_provider, build_transport, provider_entry
from ..records import RequestRecord, Usage
from ..sink import INDEX_COLUMNS, Sink, latest_row_indices, list_parts, read_parts
from ..status import last_run_record
from ..spec import LoadedSpec, load_spec
from ..spend import job_spend
from .clock import MonotonicClock
from .limiter import Limiter
from .pending import RETRYABLE_FINAL, Work, iter_work, plan_work
from .pool import Budget, PoolStop, StopReason, WorkerPool
from .retry import RetryPolicy
from .saving import Finished, copy_replies, save_finished
from .writeerrors import write_error_message

log = logging.getLogger(__name__)

STOP_ERRORS = {
    StopReason.BUDGET: BudgetReached,
    StopReason.DEADLINE: DeadlineReached,
    StopReason.AUTH: AuthFailed,
    StopReason.QUOTA: QuotaExhausted,
    StopReason.INTERRUPTED: Interrupted,
    StopReason.WRITE: WriteFailed,
    StopReason.CONFIG: ConfigRejected,
    StopReason.BILLING: BillingStopped,
}


@dataclass
class RunOptions:
    deadline_s: float | None = None  # seconds from now
    max_cost: float | None = None
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


def run_command(args) -> int:
    options = RunOptions(
        deadline_s=deadline_from(args.until, args.max_duration, dt.datetime.now()),
        max_cost=args.max_cost,
        prices=args.prices,
        retry_failed=not args.no_retry_failed,
        retry=parse_retry(args.retry),
        config_check=not args.no_config_check,
        write_wait_s=args.write_wait,
        concurrency=args.concurrency,
        grace_s=args.grace,
        progress="none" if args.quiet and args.progress == "auto" else args.progress,
        status_every=args.status_every,
    )
    return run_job(load_spec(args.spec), options)


def parse_retry(text: str | None) -> frozenset[str]:
    """`--retry invalid,blocked` -> {"invalid", "blocked"}."""
    if not text:
        return frozenset()
    names = {part.strip().lower() for part in text.split(",") if part.strip()}
    unknown = names - set(RETRYABLE_FINAL)
    if unknown:
        raise UsageError(f"--retry {text!r}: {', '.join(sorted(unknown))} is not a status to send again; "
                         f"use {' and/or '.join(RETRYABLE_FINAL)} (failed rows are sent again by default)")
    return frozenset(names)


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
    require_request_format(manifest_path(loaded), loaded.shown)  # 0.2's manifests: plan again, told so
    if not manifest_is_current(loaded):
        summary = plan_job(loaded, lock_held=lock_held)
        for line in summary.warnings:
            log.warning(line)
        log.info("planned %s rows (%s requests) into %s", f"{summary.rows:,}", f"{summary.requests:,}",
                 summary.manifest)
    for model in manifest_models(manifest_path(loaded)):
        retiring = lifecycle_warning(model, dt.date.today())
        if retiring:
            log.warning(retiring)
    return loaded


def load_catalog(loaded: LoadedSpec, prices: Path | None) -> PriceCatalog:
    return PriceCatalog.load(overrides=loaded.spec.pricing, prices_file=prices)


def api_key(loaded: LoadedSpec) -> str | None:
    """The key from the variable provider.api_key_env names (None for a provider that needs none)."""
    env = loaded.spec.provider.key_env
    if env is None:
        return None
    return usable_key(os.environ.get(env), env, loaded.shown)


_HEADER_SAFE = re.compile(r"[\x20-\x7e]+")  # printable ASCII: what httpx and aiohttp send in a header


def usable_key(value: str | None, env: str, shown: str) -> str:
    """`value` without surrounding whitespace; UsageError, naming `env` but never the value, if unusable."""
    # A key file's trailing newline or a .env file's CR is never part of a key: dropped without a word.
    # Anything else a header can't carry is refused here, at start, not by the HTTP client per request.
    key = (value or "").strip()
    if not key:
        raise UsageError(f"{shown}: provider.api_key_env: {missing_key_message(env)}")
    if not _HEADER_SAFE.fullmatch(key):
        raise UsageError(f"{shown}: provider.api_key_env: {unsendable_key_message(env)}")
    return key


def run_job(loaded: LoadedSpec, options: RunOptions) -> int:
    """Send what is pending; return the exit code, or raise the RunStopped error that ended the run."""
    key = api_key(loaded)  # before anything is written: a bad key leaves no trace
    # Locked before planning: two runs of a never-planned spec would otherwise both write its manifest.
    try:
        lock = acquire_lock(loaded.output_dir)
    except OSError as exc:
        raise WriteFailed(f"cannot start the run: {write_error_message(exc, loaded.output_dir)}; nothing was sent") from None
    try:
        return _run_locked(loaded, options, lock, key)
    finally:
        release_lock(lock)


def _run_locked(loaded: LoadedSpec, options: RunOptions, lock: Path, key: str | None) -> int:
    started = time.monotonic()
    prepare(loaded, lock_held=True)
    models = manifest_models(manifest_path(loaded))
    catalog = load_catalog(loaded, options.prices)
    cap = options.max_cost if options.max_cost is not None else loaded.spec.budget.max_cost_usd
    if cap is not None:
        require_prices(models, catalog)
    # Every journal line reaches the OS at once (one write, ~3 us): a `kill -9` then loses no reply that
    # had arrived, and no sent marker, so the next run reports every request it may send twice.
    sink = Sink(loaded.output_dir, run_id=_run_id(), flush_every=1)
    try:
        recovery = sink.open(held_lock=lock)
    except OSError as exc:
        raise WriteFailed(f"cannot start the run: {write_error_message(exc, loaded.output_dir)}; nothing was sent") from None
    held: list[Finished] = []
    try:
        _report_recovery(recovery)
        _report_endpoint_change(loaded, sink, options)
        work = plan_work(manifest_path(loaded), sink.latest_rows(), retry_failed=options.retry_failed,
                         retry=options.retry)
        copied = _reuse_saved_replies(sink, work)
        spent = sink.spent_usd()
        progress = Progress(total=work.rows - copied, prior_spend_usd=spent)
        log.info("%s rows pending (%s requests to send); spent so far $%.4f", f"{progress.total:,}",
                 f"{len(work.send):,}", spent)
        stop = PoolStop()
        if progress.total:
            pool = anyio.run(_run_pool, loaded, options, key, catalog, sink, progress, work, Budget(cap, spent))
            stop, held = pool.stop, _save_held(sink, pool.held, options.write_wait_s, progress)
        else:
            log.info("nothing to send: every row of the job has a final result")
    finally:
        _close(sink, held)
    _calibrate(loaded, catalog)
    return _finish(stop, progress, time.monotonic() - started, work.kept_failed, held, _not_ok_rows(loaded))


def _report_recovery(recovery) -> None:
    if recovery.in_flight_at_crash:
        log.warning(
            "%d requests were in flight when an earlier run stopped without finishing; they are sent again "
            "and may have been billed twice", recovery.in_flight_at_crash,
        )


def _report_endpoint_change(loaded: LoadedSpec, sink: Sink, options: RunOptions) -> None:
    """Record where this run sends; warn when the last run sent elsewhere and left rows invalid."""
    endpoint = provider_endpoint(loaded)
    sink.run_facts["endpoint"] = endpoint
    last = last_run_record(loaded.output_dir / "runs")
    before = (last or {}).get("endpoint")
    if before is None or before == endpoint or "invalid" in options.retry:
        return
    invalid = int(pc.sum(pc.equal(sink.latest_rows()["status"], "invalid")).as_py() or 0)
    if invalid:
        log.warning("the provider endpoint changed since the last run (%s, now %s); %d rows recorded invalid "
                    "there stay so: `batchrun run --retry invalid` sends them again", before, endpoint, invalid)


def provider_endpoint(loaded: LoadedSpec) -> str:
    provider = loaded.spec.provider
    return provider_entry(provider.kind).endpoint_label(provider)


def _reuse_saved_replies(sink: Sink, work: Work) -> int:
    """Rows whose request already has a saved reply take a copy of it (nothing is sent); how many did."""
    if not work.reusable_rows:
        return 0
    try:
        again = copy_replies(sink, work.reusable)
    except OSError as exc:
        raise WriteFailed(f"run stopped: {write_error_message(exc, sink.out_dir)}; nothing was sent") from None
    if again:
        work.send = pa.concat_arrays([work.send, pa.array(again, pa.string())])
    copied = work.reusable_rows - len(again)
    log.info("%d rows took a copy of a reply already saved for the same request (nothing sent for them)", copied)
    return copied


def _save_held(sink: Sink, held: list[Finished], wait_s: float, progress: Progress) -> list[Finished]:
    """Write the replies a write error held back, waiting up to `wait_s` for the cause to go away."""
    if not held:
        return []
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        try:
            for done in list(held):
                save_finished(sink, done)
                held.remove(done)
                for _ in range(done.rows):
                    progress.count(done.status)
            sink.flush()
            return []
        except OSError as exc:
            if time.monotonic() >= deadline:
                return held
            if not told:
                told = True
                log.warning("%s; %d replies that arrived are held in memory: free the space (or fix the "
                            "folder) within %gs and they are saved; Ctrl-C gives up", write_error_message(exc, sink.out_dir),
                            len(held), wait_s)
        try:
            time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
        except KeyboardInterrupt:
            return held


def _close(sink: Sink, held: list[Finished]) -> None:
    try:
        sink.close()
    except OSError as exc:
        lost = f"; {len(held)} replies that arrived could not be saved" if held else ""
        raise WriteFailed(f"run stopped: {write_error_message(exc, sink.out_dir)}; the results of this run are kept in "
                          f"{sink.journal_dir} and `batchrun run` recovers them once it can write again{lost}") from None


def _run_id() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def manifest_models(manifest: Path) -> list[str]:
    """The distinct models a manifest sends to."""
    column = pq.read_table(manifest, columns=["model"])["model"]
    return sorted(pc.unique(column.combine_chunks()).to_pylist())


def results_table(out_dir: Path, columns: tuple[str, ...]) -> pa.Table:
    """Some columns of every result part of a job (an empty table before its first part)."""
    return read_parts(list_parts(out_dir / "results"), columns)


def spent_so_far(out_dir: Path) -> float:
    """Every result's cost, in the manifest or not: the figure `status` and `estimate` show too."""
    return job_spend(out_dir).usd


async def _run_pool(loaded, options, key, catalog, sink, progress, work: Work, budget) -> WorkerPool:
    spec = loaded.spec
    concurrency = options.concurrency or spec.limits.concurrency
    clock = MonotonicClock()
    settings = ProviderSettings(spec.provider, key, loaded.folder, spec.limits.timeout_s, concurrency)
    transport, provider = build_transport(settings), build_provider(settings)
    limits = spec.limits
    limiter = Limiter(
        concurrency=concurrency, requests_per_minute=limits.requests_per_minute,
        tokens_per_minute=limits.tokens_per_minute, images_per_minute=limits.images_per_minute, clock=clock,
        unpaced_until_429=True,  # bench/RESULTS.md: a slow start from 1 req/s cost 7 s of a 20,000-request run
    )
    retry = spec.retry
    policy = RetryPolicy(
        max_attempts=retry.max_attempts, initial_s=retry.initial_s, max_wait_s=retry.max_wait_s,
        no_image_attempts=retry.no_image_attempts, max_server_delay_s=retry.max_server_delay_s,
    )
    display = make_display(options.progress, progress, options.status_every)
    live = LiveFile(live_path(sink.out_dir, sink.run_id), progress)  # what `status` shows of a pause
    pool = WorkerPool(
        provider=provider, client=None, limiter=limiter, policy=policy, sink=sink, progress=progress,
        clock=clock, concurrency=concurrency, cost=_coster(catalog), worst_case=_worst(catalog),
        budget=budget, deadline=None if options.deadline_s is None else clock.now() + options.deadline_s,
        grace_s=options.grace_s, handle_signals=options.handle_signals,
        on_tick=_ticker(display, sink, options.status_every, live), tick_s=0.5, on_reply=_status_warner(),
        input_image_bytes=int(limits.input_image_mb_in_flight * 1_000_000),
    )
    if not options.config_check:
        pool.probe.cleared = True
    display.start()
    try:
        async with make_client(transport, spec.limits.timeout_s) as client:
            pool.client = client
            await pool.run(iter_work(manifest_path(loaded), work))
            return pool
    finally:
        with contextlib.suppress(OSError):  # a failed flush already stopped the run
            sink.flush()
        display.stop()
        live.remove()


def _coster(catalog: PriceCatalog):
    def cost(record: RequestRecord, usage: Usage | None) -> float | None:
        if usage is None:
            return None
        tier = str(record.estimate.service_tier or "standard").lower()
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


def _ticker(display, sink: Sink, every: float, live: LiveFile):
    state = {"last": time.monotonic()}

    def tick() -> None:
        sink.flush()
        live.sync()
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

    results = results_table(loaded.output_dir, ("request_id", "status", "cost_usd", "shared_from"))
    if not results.num_rows:
        return
    try:
        write_calibration(loaded.output_dir, manifest_path(loaded), results, catalog)
    except OSError as exc:  # only the next estimate's calibration is lost
        log.warning("calibration not saved: %s", write_error_message(exc, loaded.output_dir))


def _finish(stop: PoolStop, progress: Progress, elapsed: float, kept_failed: int, held: list[Finished],
            not_ok: dict[str, int]) -> int:
    log.info(
        "run ended after %.1fs: ok %d, blocked %d, invalid %d, failed %d; spent $%.4f this run",
        elapsed, progress.ok, progress.blocked, progress.invalid, progress.failed, progress.spend_usd,
    )
    if stop.reason is not None:
        left = progress.total - progress.finished
        raise STOP_ERRORS[stop.reason](
            f"run stopped: {stop.message or stop.reason.value}; {_rows(left)} left pending"
            f"{_held_note(stop, held)}{_in_flight_note(stop)}; `batchrun run` again resumes"
        )
    if progress.failed:
        log.warning("%d rows failed after their last attempt; `batchrun run` again sends them", progress.failed)
        return EXIT_FAILURES
    if kept_failed:
        log.warning("%d rows failed in an earlier run and were not sent (--no-retry-failed)", kept_failed)
        return EXIT_FAILURES
    if not_ok:
        counts = ", ".join(f"{status} {count:,}" for status, count in sorted(not_ok.items()))
        log.warning("rows final but not ok: %s; `batchrun status` shows why, `batchrun run --retry %s` "
                    "sends them again", counts, ",".join(sorted(not_ok)))
        return EXIT_NOT_OK
    return EXIT_OK


def _rows(count: int) -> str:
    return f"{count:,} row" + ("" if count == 1 else "s")


def _in_flight_note(stop: PoolStop) -> str:
    if stop.in_flight_abandoned:
        return (f"; {stop.in_flight_abandoned} requests in flight were abandoned (they may be billed; the next "
                "run sends them again)")
    if stop.reason is StopReason.INTERRUPTED:
        return "; every request in flight finished and was saved"
    return ""


def _held_note(stop: PoolStop, held: list[Finished]) -> str:
    if stop.reason is not StopReason.WRITE:
        return ""
    if not held:
        return "; every reply that arrived is saved"
    rows = sum(done.rows for done in held)
    return (f"; {len(held)} replies that arrived ({rows} rows) could not be saved and are sent again by the "
            "next run (they may be billed twice)")


def _not_ok_rows(loaded: LoadedSpec) -> dict[str, int]:
    """Rows of the current manifest whose result is final but not ok, by status."""
    rows = results_table(loaded.output_dir, INDEX_COLUMNS)
    latest = rows.take(latest_row_indices(rows))
    manifest = read_columns(manifest_path(loaded), ["row_id"])["row_id"]
    latest = latest.filter(pc.is_in(latest["row_id"], value_set=manifest.combine_chunks()))
    counts = {}
    for status in RETRYABLE_FINAL:
        count = int(pc.sum(pc.equal(latest["status"], status)).as_py() or 0)
        if count:
            counts[status] = count
    return counts
