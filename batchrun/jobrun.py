"""`batchrun run` and `batchrun estimate`: from a loaded spec and checked options to a finished run or a price.

Wires the stages: read the key, take the output folder's lock (held to the end), plan if the manifest
is stale, open the sink (recovering a crashed run), compute what is pending, run the pool
(`run_pool` builds it: client, limiter, retry policy, provider) or, at the batch tier, the batch run
(batchtier.py: batching/run.py over the same sink), close the sink, calibrate the estimate, and turn how the run ended into an
exit code or the RunStopped error that says why. Prints nothing: results go back to the CLI, state
changes to the log.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import anyio
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batchrun.batching.run import BatchOutcome
from batchrun.cost.pricing import PriceCatalog, require_prices
from batchrun.output.lease import LeaseKeeper
from batchrun.output.live import LiveFile, live_path
from batchrun.output.lock import acquire_lock, release_lock
from batchrun.output.mirror import mirror_of, push_output, shown_output
from batchrun.output.progress import Progress, make_display
from batchrun.output.runrecord import finish_run_record
from batchrun.output.sink import (
    INDEX_COLUMNS,
    Sink,
    latest_row_indices,
    list_parts,
    read_parts,
)
from batchrun.output.spend import job_spend
from batchrun.output.status import last_run_record
from batchrun.planning.inputcache import cache_folder
from batchrun.planning.manifest import planned_by_an_earlier_version, read_columns
from batchrun.planning.plan import InputChoices, manifest_is_current, manifest_path, plan_job
from batchrun.planning.spec import JobSpec, KeyEnvSpec, LoadedSpec
from batchrun.running.account import CatalogPrices, SpendingAccount
from batchrun.running.clock import Clock, MonotonicClock
from batchrun.running.hooks import ModelStatusWarner, ProgressTicker, RunHooks
from batchrun.running.http import make_client
from batchrun.running.keys import KeyLane, KeyPool
from batchrun.running.limiter import Limiter
from batchrun.running.pending import RETRYABLE_FINAL, Work, iter_work, plan_work
from batchrun.running.pool import PoolSettings, PoolStop, StopReason, WorkerPool
from batchrun.running.retry import RetryPolicy
from batchrun.running.saving import Finished, copy_replies, save_finished
from batchrun.running.writeerrors import write_error_message

from .batchtier import (
    batch_stop,
    batches_to_advance,
    check_batch_kind,
    leave_to_batches,
    run_batch_tier,
    send_fallback,
)
from .errors import (
    EXIT_BATCHES_RUNNING,
    EXIT_FAILURES,
    EXIT_NOT_OK,
    EXIT_OK,
    AuthFailed,
    BatchrunError,
    BillingStopped,
    BudgetReached,
    ConfigRejected,
    DeadlineReached,
    Interrupted,
    LeaseLost,
    QuotaExhausted,
    StorageFailed,
    UsageError,
    WriteFailed,
    batches_running_message,
    final_upload_failed_message,
    lease_lost_message,
    missing_key_message,
    unsendable_key_message,
)
from .options import EstimateOptions, RunOptions
from .outcomes import ErrorKind, Status
from .providers.registry import (
    ProviderSettings,
    build_provider,
    build_transport,
    provider_entry,
)
from .tiers import Tier, run_timeout_s

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
    StopReason.LEASE: LeaseLost,
}


def estimate_job(loaded: LoadedSpec, options: EstimateOptions) -> str:
    """The estimate report (text, or JSON with `options.json`) of a job, planned first if stale."""
    from batchrun.cost.estimate import estimate_report

    loaded = prepare(loaded)
    catalog = load_catalog(loaded, options.prices)
    budget = options.max_cost if options.max_cost is not None else loaded.spec.budget.max_cost_usd
    return estimate_report(manifest_path(loaded), loaded.output_dir, catalog, json_out=options.json, budget_usd=budget,
                           tier=options.tier or loaded.spec.tier)


def prepare(loaded: LoadedSpec, *, lock_held: bool = False, inputs: InputChoices | None = None) -> LoadedSpec:
    """Warn, and plan again (under the folder's lock) when the manifest is missing or older than the spec, or
    when `inputs.refresh` asks for the photos by URL to be checked again."""
    from batchrun.cost.lifecycle import lifecycle_warning

    for line in loaded.warnings:
        log.warning(line)
    if planned_by_an_earlier_version(manifest_path(loaded)):
        log.info("the manifest was planned by batchrun 0.2: planning it again (request ids are the same, "
                 "so nothing already answered is sent again)")
        plan_job(loaded, lock_held=lock_held)
    elif (inputs is not None and inputs.refresh) or not manifest_is_current(loaded) or _cache_emptied(loaded):
        summary = plan_job(loaded, lock_held=lock_held, inputs=inputs or InputChoices())
        for line in summary.warnings:
            log.warning(line)
        if summary.skipped:
            log.warning("skipped %s input rows with a bad photo (listed in %s)", f"{len(summary.skipped):,}",
                        shown_output(summary.skipped_file or loaded.output_dir))
        log.info("planned %s rows (%s requests) into %s", f"{summary.rows:,}", f"{summary.requests:,}",
                 shown_output(summary.manifest))
    for model in manifest_models(manifest_path(loaded)):
        retiring = lifecycle_warning(model, dt.date.today())
        if retiring:
            log.warning(retiring)
    return loaded


def _cache_emptied(loaded: LoadedSpec) -> bool:
    """Whether the input cache lost photos the manifest sends (deleted between runs): plan again to fetch them."""
    from batchrun.planning.imagesources import missing_cached_images

    missing = missing_cached_images(loaded, manifest_path(loaded))
    if missing:
        log.warning("%s input photos the plan fetched or prepared are no longer in the input cache: planning "
                    "again to fetch them", f"{missing:,}")
    return bool(missing)


def load_catalog(loaded: LoadedSpec, prices: Path | None) -> PriceCatalog:
    return PriceCatalog.load(overrides=loaded.spec.pricing, prices_file=prices)


def api_key(loaded: LoadedSpec) -> str | None:
    """The key from the variable provider.api_key_env names, the first of a pool (None for a provider that
    needs none)."""
    keys = pool_keys(loaded)
    return keys[0][1] if keys else None


def pool_keys(loaded: LoadedSpec) -> list[tuple[KeyEnvSpec, str]]:
    """Every key of provider.api_key_env with its entry; UsageError, naming the variable, if one is unusable."""
    return [(entry, usable_key(os.environ.get(entry.env), entry.env, loaded.shown))
            for entry in loaded.spec.provider.key_envs]


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
    check_batch_kind(loaded, options)
    key = api_key(loaded)  # every key of a pool, before anything is written: a bad key leaves no trace
    if options.ray is not None:
        _check_cluster_run(loaded, options)
    # Locked before planning: two runs of a never-planned spec would otherwise both write its manifest.
    try:
        lock = acquire_lock(loaded.output_dir)
    except OSError as exc:
        raise WriteFailed(f"cannot start the run: {write_error_message(exc, loaded.output_dir)}; nothing was sent") from None
    run_id = _run_id()
    lease = _take_lease(loaded, options, run_id, lock)
    try:
        code = _run_locked(loaded, options, lock, key, run_id)
    except BatchrunError as exc:
        calibration = _estimate_vs_actual(loaded, options)
        summary = finish_run_record(loaded.output_dir, run_id, exc.exit_code, str(exc), calibration)
        summary = _upload_after_error(loaded, run_id, exc, calibration) or summary
        _release_lease(loaded, lease)
        release_lock(lock)
        _notify(loaded, summary)
        raise
    except BaseException:
        release_lock(lock)
        raise
    calibration = _estimate_vs_actual(loaded, options)
    summary = finish_run_record(loaded.output_dir, run_id, code, None, calibration)
    try:
        push_output(loaded.output_dir)  # a bucket's folder: what is left goes up before the lock is released
    except StorageFailed as exc:
        failed = StorageFailed(final_upload_failed_message(str(exc), code, loaded.output_dir))
        summary = finish_run_record(loaded.output_dir, run_id, failed.exit_code, str(failed), calibration) or summary
        _release_lease(loaded, lease)
        release_lock(lock)
        _notify(loaded, summary)
        raise failed from None
    except BaseException:
        release_lock(lock)
        raise
    _release_lease(loaded, lease)
    release_lock(lock)
    if mirror_of(loaded.output_dir) is not None:
        log.info("the job's output is in %s", shown_output(loaded.output_dir))
    _notify(loaded, summary)
    return code


def _take_lease(loaded: LoadedSpec, options: RunOptions, run_id: str, lock: Path) -> LeaseKeeper | None:
    """A bucket job: this run's lease in the bucket (exit 9 when another machine's is fresh); None when local."""
    mirror = mirror_of(loaded.output_dir)
    if mirror is None:
        return None
    keeper = LeaseKeeper(mirror.store, run_id, loaded.output_dir, mirror.upload_every_s, time.time)
    try:
        keeper.take(options.take_over)
    except BaseException:
        release_lock(lock)
        raise
    mirror.lease = keeper  # renewed at each push from now on, and on a timer while nothing is pushed
    keeper.keep_alive(mirror.upload_every_s)
    return keeper


def _release_lease(loaded: LoadedSpec, lease: LeaseKeeper | None) -> None:
    """Remove this run's lease from the bucket; a failure is logged (the lease lapses by itself)."""
    mirror = mirror_of(loaded.output_dir)
    if lease is None or mirror is None:
        return
    mirror.lease = None
    try:
        lease.release()
    except StorageFailed as exc:
        log.warning("this run's lease could not be removed (it lapses %g min after the last upload): %s",
                    lease.fresh_s / 60, exc)


def _check_cluster_run(loaded: LoadedSpec, options: RunOptions) -> None:
    """--ray: Ray installed, and a tier a cluster sends at (before anything is written)."""
    from batchrun.cluster.target import import_ray

    import_ray()
    if run_tier(loaded, options) is Tier.BATCH:
        raise UsageError("--ray sends requests one by one (the standard or flex tier); a batch run (--tier batch, "
                         "or the spec's tier: batch) needs no cluster: run it without --ray")


def _upload_after_error(loaded: LoadedSpec, run_id: str, error: BatchrunError,
                        calibration: dict[str, object] | None) -> Path | None:
    """Upload what a stopped run left (a bucket's folder). The run's own error wins; a failed upload is
    logged and added to the run's record, whose path is returned then (else None)."""
    try:
        push_output(loaded.output_dir)
    except StorageFailed as exc:
        log.warning("%s", exc)
        return finish_run_record(loaded.output_dir, run_id, error.exit_code,
                                 f"{error}; and the run's last upload failed: {exc}", calibration)
    return None


def _notify(loaded: LoadedSpec, summary: Path | None) -> None:
    """Send the run's summary where the spec's `notify:` says (after the lock is released; never raises)."""
    if loaded.spec.notify is None or summary is None:
        return
    from batchrun.output.notify import notify_run

    record = json.loads(summary.read_text())
    notify_run(loaded.spec.notify, loaded.spec.name, record, summary)


def _estimate_vs_actual(loaded: LoadedSpec, options: RunOptions) -> dict[str, object] | None:
    """Per model, the expected and actual cost of the job's ok results so far (the calibration), and per
    stratum those of its answered requests (`batchrun.cost.versus`), if any."""
    from batchrun.cost.estimate import CALIBRATION_FILE

    models = strata = None
    with contextlib.suppress(OSError, ValueError):
        models = json.loads((loaded.output_dir / CALIBRATION_FILE).read_text()).get("models")
    with contextlib.suppress(OSError, ValueError, BatchrunError):  # the run's exit comes first
        strata = _strata_check(loaded, options)
    if not models and not strata:
        return None
    return {"scope": "every ok result of the job so far", "models": models or None, "strata": strata}


def _strata_check(loaded: LoadedSpec, options: RunOptions) -> dict[str, object] | None:
    from batchrun.cost.versus import estimate_check

    if not manifest_path(loaded).exists():
        return None
    check = estimate_check(manifest_path(loaded), loaded.output_dir, load_catalog(loaded, options.prices))
    return None if check is None else check.to_json()


def _run_locked(loaded: LoadedSpec, options: RunOptions, lock: Path, key: str | None, run_id: str) -> int:
    started = time.monotonic()
    prepare(loaded, lock_held=True, inputs=InputChoices(options.refresh, options.skip_bad_inputs))
    models = manifest_models(manifest_path(loaded))
    catalog = load_catalog(loaded, options.prices)
    cap, soft_cap = _budget_caps(loaded, options)
    if cap is not None or soft_cap is not None:
        require_prices(models, catalog)
    # Every journal line reaches the OS at once (one write, ~3 us): a `kill -9` then loses no reply that
    # had arrived, and no sent marker, so the next run reports every request it may send twice.
    sink = Sink(loaded.output_dir, run_id=run_id, flush_every=1, mirror=mirror_of(loaded.output_dir))
    try:
        recovery = sink.open(held_lock=lock)
    except OSError as exc:
        raise WriteFailed(f"cannot start the run: {write_error_message(exc, loaded.output_dir)}; nothing was sent") from None
    held: list[Finished] = []
    batches: BatchOutcome | None = None
    left_to_batches = 0  # rows a synchronous run left to the batches in flight that hold their requests
    sink.run_facts["started_at"] = sink.clock()
    progress: Progress | None = None
    stop = PoolStop()
    try:
        _report_recovery(recovery)
        _report_endpoint_change(loaded, sink, options)
        sink.run_facts["tier"] = run_tier(loaded, options).value  # the tier asked for; rows say which served
        work = plan_work(manifest_path(loaded), sink.latest_rows(), retry_failed=options.retry_failed,
                         retry=options.retry, only_requests=options.only_requests)
        copied = _reuse_saved_replies(sink, work)
        spent = sink.spent_usd()
        progress = Progress(total=work.rows - copied, prior_spend_usd=spent)
        log.info("%s rows pending (%s requests to send); spent so far $%.4f", f"{progress.total:,}",
                 f"{len(work.send):,}", spent)
        stop = PoolStop()
        if progress.total or _orphaned_batches(loaded, options):
            account = SpendingAccount(CatalogPrices(catalog, run_tier(loaded, options)), cap, spent,
                                      soft_cap_usd=soft_cap)
            if run_tier(loaded, options) is Tier.BATCH:
                batches = anyio.run(run_batch_tier, loaded, options, key, sink, progress, work, account)
                pool = send_fallback(loaded, options, key, catalog, sink, progress, work, batches, account, started)
                if pool is not None:
                    stop, held = pool.stop, _save_held(sink, pool.held, options.write_wait_s, progress)
            else:
                work, left_to_batches = leave_to_batches(loaded, work, run_tier(loaded, options))
                progress.total -= left_to_batches
                pool = _send(loaded, options, key, catalog, sink, progress, work, account)
                stop, held = pool.stop, _save_held(sink, pool.held, options.write_wait_s, progress)
        else:
            log.info("nothing to send: every row of the job has a final result")
    finally:
        sink.run_facts.update(run_end_facts(progress, stop))
        _close(sink, held)
    _calibrate(loaded, catalog, run_tier(loaded, options))
    if batches is not None and stop.reason is None:  # a fallback's stop (deadline, budget) says more
        stop = batch_stop(batches, progress)
        if batches.still_running:
            log.warning(batches_running_message(len(batches.report.unfinished)))
            return EXIT_BATCHES_RUNNING
    code = _finish(stop, progress, time.monotonic() - started, work.kept_failed, held, _not_ok_rows(loaded))
    return EXIT_BATCHES_RUNNING if left_to_batches and code == EXIT_OK else code


def _budget_caps(loaded: LoadedSpec, options: RunOptions) -> tuple[float | None, float | None]:
    """The run's hard cap (--max-cost, else budget.max_cost_usd) and its soft cap (the pilot's projection, when
    one is asked and is below the hard cap). The pilot itself is capped by the hard cap alone: the projection is
    what it is about to make."""
    from batchrun.cost.projectioncap import run_caps

    hard = options.max_cost if options.max_cost is not None else loaded.spec.budget.max_cost_usd
    kind = options.max_cost_from_projection or loaded.spec.budget.max_cost_from_projection
    setting = "--max-cost-from-projection" if options.max_cost_from_projection else "budget.max_cost_from_projection"
    kind = None if options.only_requests is not None else kind
    return run_caps(hard, kind, loaded.output_dir, manifest_path(loaded), run_tier(loaded, options).value,
                    setting=setting)


def _send(loaded: LoadedSpec, options: RunOptions, key: str | None, catalog: PriceCatalog, sink: Sink,
          progress: Progress, work: Work, account: SpendingAccount):
    """Send what is pending: in this process, or on a Ray cluster with --ray."""
    if options.ray is None:
        return anyio.run(run_pool, loaded, options, key, catalog, sink, progress, work, account)
    from batchrun.cluster.driver import run_on_cluster
    from batchrun.cluster.job import cluster_job

    outside: list[PoolStop] = []  # a lost bucket lease, from the lease's thread; the driver checks each tick
    _when_lease_lost(sink.out_dir, outside.append)
    return run_on_cluster(options.ray, lambda workers: cluster_job(loaded, options, key, catalog, work, account, workers),
                          sink, progress, options, outside)


def run_end_facts(progress: Progress | None, stop: PoolStop) -> dict[str, object]:
    """What a run's record in runs/ says of its end: why it stopped (None: it ran to the end), its counts,
    its retries and the 429s (rate limited, not a spent quota) it was answered."""
    facts: dict[str, object] = {"stop_reason": None if stop.reason is None else stop.reason.value}
    if progress is not None:
        facts.update(ok=progress.ok, blocked=progress.blocked, invalid=progress.invalid, failed=progress.failed,
                     retries=progress.retries, rate_limited=progress.errors.get(ErrorKind.RATE_LIMITED, 0))
        facts.update(_spend_and_pace(progress))
    return facts


def _spend_and_pace(progress: Progress) -> dict[str, object]:
    """The run's errors by kind, its spend and the job's, and its throughput over sending time (pauses left out)."""
    sending_s = progress.sending_s()
    return {"errors_by_kind": {str(kind): count for kind, count in sorted(progress.errors.items())},
            "spend_usd": round(progress.spend_usd, 6), "job_spend_usd": round(progress.prior_spend_usd + progress.spend_usd, 6),
            "sending_s": round(sending_s, 3), "paused_s": round(progress.paused_s(), 3),
            "throughput_rows_per_s": round(progress.finished / sending_s, 3) if sending_s > 0 else None}


def _orphaned_batches(loaded: LoadedSpec, options: RunOptions) -> bool:
    """A batch run with nothing pending still advances the batches in flight (their replies are skipped)."""
    if run_tier(loaded, options) is not Tier.BATCH:
        return False
    chunks = batches_to_advance(loaded.output_dir)
    if chunks:
        log.info("nothing pending, but %d batch chunks are unfinished in the ledger: advancing them", chunks)
    return bool(chunks)


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
    if before is None or before == endpoint or Status.INVALID in options.retry:
        return
    invalid = int(pc.sum(pc.equal(sink.latest_rows()["status"], Status.INVALID)).as_py() or 0)
    if invalid:
        log.warning("the provider endpoint changed since the last run (%s, now %s); %d rows recorded invalid "
                    "there stay so: `batchrun run --retry invalid` sends them again", before, endpoint, invalid)


def run_tier(loaded: LoadedSpec, options: RunOptions) -> Tier:
    """The tier a run asks for: --tier, else the spec's `tier:`."""
    return options.tier or loaded.spec.tier


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
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


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


def _calibrate(loaded: LoadedSpec, catalog: PriceCatalog, tier: Tier) -> None:
    from batchrun.cost.estimate import write_calibration

    results = results_table(loaded.output_dir, ("request_id", "status", "cost_usd", "shared_from", "service_tier"))
    if not results.num_rows:
        return
    try:
        write_calibration(loaded.output_dir, manifest_path(loaded), results, catalog, run_tier=tier)
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
            f"{_held_note(stop, held)}{_in_flight_note(stop)}{_resume_note(stop)}"
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


def _resume_note(stop: PoolStop) -> str:
    if stop.reason is StopReason.LEASE:  # the run that took the lease over sends them
        return ""
    return f"; `batchrun run` again resumes{_quota_note(stop)}"


def _quota_note(stop: PoolStop) -> str:
    if stop.reason is not StopReason.QUOTA:
        return ""
    return " (with --wait-quota, or run.wait_quota: true, a run waits for the reset when it comes before --until)"


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
    counts: dict[str, int] = {}
    for status in RETRYABLE_FINAL:
        count = int(pc.sum(pc.equal(latest["status"], status)).as_py() or 0)
        if count:
            counts[status] = count
    return counts


async def run_pool(loaded: LoadedSpec, options: RunOptions, key: str | None, catalog: PriceCatalog, sink: Sink,
                    progress: Progress, work: Work, account: SpendingAccount) -> WorkerPool:
    spec = loaded.spec
    concurrency = options.concurrency or spec.limits.concurrency
    clock = MonotonicClock()
    settings = provider_settings(loaded, options, key, concurrency)
    transport = build_transport(settings)
    display = make_display(options.progress, progress, options.status_every)
    live = LiveFile(live_path(sink.out_dir, sink.run_id), progress)  # what `status` shows of a pause
    pool = WorkerPool(
        keys=_key_pool(loaded, settings, clock), client=None, policy=_retry_policy(spec),
        sink=sink, progress=progress, clock=clock, account=account,
        settings=_pool_settings(spec, options, concurrency),
        hooks=RunHooks(
            on_tick=ProgressTicker(sink=sink, live=live, display=display, every=options.status_every, clock=clock),
            on_reply=ModelStatusWarner(), tick_s=0.5,
        ),
    )
    _when_lease_lost(sink.out_dir, lambda stop: pool.stop_from_thread(StopReason.LEASE, stop.message))
    display.start()
    try:
        async with make_client(transport, settings.timeout_s) as client:
            pool.client = client
            await pool.run(iter_work(manifest_path(loaded), work))
            return pool
    finally:
        with contextlib.suppress(OSError):  # a failed flush already stopped the run
            sink.flush()
        display.stop()
        live.remove()


def _when_lease_lost(out_dir: Path, stop: Callable[[PoolStop], None]) -> None:
    """A bucket job: `stop` is called (from the lease's thread) when another run takes this run's lease over
    (exit 9); a local job has no lease."""
    mirror = mirror_of(out_dir)
    if mirror is None or mirror.lease is None:
        return
    location = mirror.store.location
    mirror.lease.when_lost(lambda taker: stop(PoolStop(StopReason.LEASE, lease_lost_message(
        location, taker.host, taker.pid, taker.run_id))))


def provider_settings(loaded: LoadedSpec, options: RunOptions, key: str | None, concurrency: int) -> ProviderSettings:
    """What the adapter and its transport are built from: the run's tier, and the timeout that tier needs."""
    spec, tier = loaded.spec, run_tier(loaded, options)
    timeout_s = run_timeout_s(tier, spec.limits.timeout_s, "timeout_s" in spec.limits.model_fields_set)
    return ProviderSettings(spec.provider, key, loaded.folder, timeout_s, concurrency, tier,
                            image_cache=cache_folder(loaded.output_dir))


def _key_pool(loaded: LoadedSpec, settings: ProviderSettings, clock: Clock) -> KeyPool:
    """One lane per key of provider.api_key_env (one keyless lane for a provider that needs none): an
    adapter built with the key, and a limiter of its own."""
    spec, concurrency = loaded.spec, settings.concurrency
    entries = spec.provider.key_envs
    if settings.api_key is None or len(entries) < 2:
        first = entries[0] if entries else None
        limiter = _limiter(spec, concurrency, clock, first)
        return KeyPool.single(build_provider(settings), limiter, clock, first.env if first else None)
    lanes = [KeyLane(entry.env, build_provider(dataclasses.replace(settings, api_key=key)),
                     _limiter(spec, concurrency, clock, entry))
             for entry, key in pool_keys(loaded)]
    return KeyPool(lanes, clock)


def _limiter(spec: JobSpec, concurrency: int, clock: Clock, key: KeyEnvSpec | None = None) -> Limiter:
    """A limiter with the job's limits, or where a pool's key names its own, the key's."""
    limits = spec.limits
    return Limiter(
        concurrency=concurrency,
        requests_per_minute=_own(key, "requests_per_minute", limits.requests_per_minute),
        tokens_per_minute=_own(key, "tokens_per_minute", limits.tokens_per_minute),
        images_per_minute=_own(key, "images_per_minute", limits.images_per_minute), clock=clock,
        unpaced_until_429=True,  # bench/RESULTS.md: a slow start from 1 req/s cost 7 s of a 20,000-request run
    )


def _own(key: KeyEnvSpec | None, field: str, job_value: float | None) -> float | None:
    value = None if key is None else getattr(key, field)
    return job_value if value is None else value


def _retry_policy(spec: JobSpec) -> RetryPolicy:
    retry = spec.retry
    return RetryPolicy(
        max_attempts=retry.max_attempts, initial_s=retry.initial_s, max_wait_s=retry.max_wait_s,
        no_image_attempts=retry.no_image_attempts, max_server_delay_s=retry.max_server_delay_s,
    )


def _pool_settings(spec: JobSpec, options: RunOptions, concurrency: int) -> PoolSettings:
    return PoolSettings(
        concurrency=concurrency, deadline_s=options.deadline_s, grace_s=options.grace_s,
        handle_signals=options.handle_signals, config_check=options.config_check,
        input_image_bytes=int(spec.limits.input_image_mb_in_flight * 1_000_000),
        wait_quota=options.wait_quota or spec.run.wait_quota,
    )
