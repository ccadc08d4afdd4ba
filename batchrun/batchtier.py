"""The batch tier of `batchrun run`: the run's pending work through Gemini Batch Mode (batching/run.py).

In:  the loaded spec, the run's options and keys (every key of provider.api_key_env: batches are dealt
     over them, batching/keys.py), the open sink, progress, the pending `Work` and the spending
     account at the batch price. Out: the `BatchOutcome` of one pass (or of passes until
     done, with --wait, or on the in-process simulator, whose batches end with the process).
With a fallback (`--fallback` / `batch.fallback`), the requests of batches given up on (past
`--batch-timeout` / `batch.timeout`, or unfinished at `--until`) are then sent synchronously at the
fallback tier by the ordinary worker pool (`send_fallback`), bounded by `--max-duration` from the
run's start; the budget keeps the cancelled batches' reservations besides the fallback's own.

Invariants: the batch tier runs only where the endpoint offers Batch Mode (provider.kind gemini or
simulator); a batch exchange that must stop the run becomes the RunStopped error a synchronous run
would raise; a synchronous run leaves the requests batches in flight hold to them (never sent twice;
`--fallback` is the way to take them back).
The environment variable BATCHRUN_UPLOAD_CHUNK_BYTES sets the resumable upload's piece size (default
8 MiB, as the google-genai SDK; Google takes multiples of 256 KiB), for slow links and for tests.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx
import pyarrow as pa
import pyarrow.compute as pc

from batchrun.batching.advance import PollBackoff
from batchrun.batching.chunks import BATCHES_DIR, ChunkLimits
from batchrun.batching.exchange import BatchApi, BatchApiError
from batchrun.batching.fallback import FallbackPolicy, SwitchReport
from batchrun.batching.files import UPLOAD_CHUNK_BYTES
from batchrun.batching.keys import BatchKey, BatchKeys
from batchrun.batching.ledger import Ledger, Phase
from batchrun.batching.run import BatchOutcome, BatchRunSettings, SinkTarget, run_batches
from batchrun.cost.pricing import PriceCatalog
from batchrun.output.progress import Progress
from batchrun.output.sink import Sink
from batchrun.planning.manifest import read_columns
from batchrun.planning.plan import manifest_path
from batchrun.planning.spec import LoadedSpec
from batchrun.running.account import CatalogPrices, SpendingAccount
from batchrun.running.clock import MonotonicClock
from batchrun.running.http import make_client
from batchrun.running.pending import Work, iter_work
from batchrun.running.pool import PoolStop, StopReason, WorkerPool, billing_message

from .errors import (
    AuthFailed,
    BillingStopped,
    ConfigRejected,
    QuotaExhausted,
    RunStopped,
    UsageError,
    batch_images_message,
    batch_kind_message,
    fallback_needs_batch_message,
    timeout_needs_fallback_message,
)
from .options import RunOptions
from .providers.registry import SIMULATOR_BASE_URL, build_provider, build_transport
from .records import Outcome, RequestRecord
from .tiers import BATCH_KINDS, FALLBACK_TIERS, Tier

log = logging.getLogger(__name__)
BATCH_LINE_LIMIT = 20 * 1024 * 1024  # bytes of one inline batch request (reference §7.1)

_UNFINISHED = (Phase.PLANNED, Phase.UPLOADING, Phase.UPLOADED, Phase.CREATING, Phase.CREATED)
UPLOAD_CHUNK_ENV = "BATCHRUN_UPLOAD_CHUNK_BYTES"


def check_batch_kind(loaded: LoadedSpec, options: RunOptions) -> None:
    kind = loaded.spec.provider.kind
    if (options.tier or loaded.spec.tier) is Tier.BATCH and kind not in BATCH_KINDS:
        raise UsageError(f"--tier batch: {batch_kind_message(kind)}")
    check_fallback(loaded, options)


def check_fallback(loaded: LoadedSpec, options: RunOptions) -> None:
    """`--fallback` and `--batch-timeout` only on a batch run, and a timeout only with a tier to switch to."""
    batch_run = (options.tier or loaded.spec.tier) is Tier.BATCH
    if options.fallback is not None and not batch_run:
        raise UsageError(f"--fallback {options.fallback.value}: {fallback_needs_batch_message()}")
    timeout = None if options.batch_timeout_s is None else f"--batch-timeout {options.batch_timeout_s:g}s"
    if timeout and not batch_run:
        raise UsageError(f"{timeout}: {fallback_needs_batch_message()}")
    if timeout and fallback_tier(loaded, options) is None:
        raise UsageError(f"{timeout}: {timeout_needs_fallback_message()}")


def fallback_tier(loaded: LoadedSpec, options: RunOptions) -> Tier | None:
    """The tier a batch run switches to: --fallback, else the spec's `batch.fallback`."""
    return options.fallback or loaded.spec.batch.fallback


def fallback_policy(loaded: LoadedSpec, options: RunOptions) -> FallbackPolicy | None:
    """When batches are given up on: past the timeout, and at --until when it comes before --max-duration
    (a switch at --max-duration would leave the fallback no time: batches then keep running, exit 13)."""
    if fallback_tier(loaded, options) is None:
        return None
    timeout_s = options.batch_timeout_s if options.batch_timeout_s is not None else loaded.spec.batch.timeout
    until, hard = options.until_s, options.max_duration_s
    return FallbackPolicy(timeout_s=timeout_s, at_deadline=until is not None and (hard is None or until < hard))


def chunk_limits(loaded: LoadedSpec) -> ChunkLimits:
    batch = loaded.spec.batch
    return ChunkLimits(max_requests=batch.max_requests, max_bytes=int(batch.max_mb * 1024 * 1024))


def batch_stop(batches: BatchOutcome, progress: Progress) -> PoolStop:
    """A batch run that left requests out for the budget stops as a run does at its cap (exit 4)."""
    if not batches.over_budget or batches.still_running:
        return PoolStop()
    return PoolStop(StopReason.BUDGET, f"{batches.over_budget:,} requests did not fit the budget at the batch price")


async def run_batch_tier(loaded: LoadedSpec, options: RunOptions, key: str | None, sink: Sink, progress: Progress,
                         work: Work, account: SpendingAccount) -> BatchOutcome:
    """The pending requests through Gemini Batch Mode: planned into chunks, advanced once (or till done)."""
    from .jobrun import provider_settings  # jobrun calls this module: imported at the call

    spec = loaded.spec
    settings = provider_settings(loaded, options, key, options.concurrency or spec.limits.concurrency)
    encoder = build_provider(replace(settings, tier=Tier.STANDARD))  # a batch line names no serviceTier
    records = {record.request_id: record for record in iter_work(manifest_path(loaded), work)}
    refuse_large_images(records.values(), encoder, min(spec.provider.inline_limit, BATCH_LINE_LIMIT))
    target = SinkTarget(sink, records, account, progress)
    in_process = spec.provider.kind == "simulator"  # its batches end with this process: wait for them
    run = BatchRunSettings(job_name=spec.name, wait=options.wait or in_process, deadline_s=options.deadline_s,
                           poll=PollBackoff(first_s=0.5, max_s=5.0) if in_process else PollBackoff(),
                           limits=chunk_limits(loaded), fallback=fallback_policy(loaded, options),
                           upload_chunk_bytes=upload_chunk_bytes(os.environ))
    async with make_client(build_transport(settings), settings.timeout_s) as client:
        keys = batch_keys(loaded, client, key)
        try:
            return await run_batches(keys, loaded.output_dir, target, encoder.encode_body, account,
                                     MonotonicClock(), run)
        except BatchApiError as exc:
            raise _batch_stop_error(exc) from None


def send_fallback(loaded: LoadedSpec, options: RunOptions, key: str | None, catalog: PriceCatalog, sink: Sink,
                  progress: Progress, work: Work, batches: BatchOutcome, batch_account: SpendingAccount,
                  started: float) -> WorkerPool | None:
    """The requests of batches given up on, sent through the worker pool at the fallback tier (None: none)."""
    from .jobrun import run_pool  # jobrun calls this module: imported at the call

    switched, tier = batches.switched, fallback_tier(loaded, options)
    if tier is None or not (switched.send or switched.cancelled):
        return None
    record_switch(sink, switched, tier)
    if not switched.send:
        return None
    account = SpendingAccount(CatalogPrices(catalog, tier), batch_account.cap_usd,
                              batch_account.spent_usd + batch_account.reserved_usd)  # cancelled may be billed
    hard_s = None if options.max_duration_s is None else options.max_duration_s - (time.monotonic() - started)
    pool_options = replace(options, tier=tier, deadline_s=None if hard_s is None else max(0.0, hard_s))
    return anyio.run(run_pool, loaded, pool_options, key, catalog, sink, progress,
                     work_of(loaded, work, set(switched.send)), account)


def record_switch(sink: Sink, switched: SwitchReport, tier: Tier) -> None:
    """One warning line for the risk of paying twice, and the switch in the run record (runs/*.json)."""
    sink.run_facts["fallback"] = {
        "tier": tier.value, "batches_cancelled": len(switched.cancelled), "chunks_unsubmitted": len(switched.unsubmitted),
        "requests_sent": len(switched.send), "requests_sent_again": switched.sent_again,
        "most_billed_twice_usd": round(switched.twice_usd, 6),
    }
    if switched.sent_again:
        log.warning("%d requests of cancelled batches had no result and are sent again at the %s tier: any the server "
                    "finished before the cancel landed is billed twice (at most $%.4f more, at the batch price)",
                    switched.sent_again, tier.value, switched.twice_usd)


def work_of(loaded: LoadedSpec, work: Work, request_ids: set[str]) -> Work:
    """The part of the run's work that sends these requests (with the rows sharing them)."""
    rows = [record.row_id for record in iter_work(manifest_path(loaded), work) if record.request_id in request_ids]
    return Work(pa.array(rows, pa.string()), work.shares, rows=len(rows))


def batches_to_advance(out_dir: Path) -> int:
    """Chunks of the ledger neither collected nor returned (batches still at the server, or a step to retry)."""
    return len(Ledger(out_dir).read().in_phase(*_UNFINISHED))


def leave_to_batches(loaded: LoadedSpec, work: Work, tier: Tier) -> tuple[Work, int]:
    """A synchronous run leaves the requests that batches in flight hold to them: (the rest, rows left)."""
    out_dir = loaded.output_dir
    held = Ledger(out_dir).read().in_flight_ids(out_dir / BATCHES_DIR)
    if not held:
        return work, 0
    rows = read_columns(manifest_path(loaded), ["row_id", "request_id"])
    held_rows = rows.filter(pc.is_in(rows["request_id"], value_set=pa.array(sorted(held), pa.string())))["row_id"]
    kept = pc.invert(pc.is_in(work.send, value_set=held_rows.combine_chunks()))
    left = pc.filter(work.send, pc.invert(kept)).to_pylist()
    left_rows = sum(1 + len(work.shares.get(row_id, ())) for row_id in left)
    if left:
        fallback = tier.value if tier in FALLBACK_TIERS else Tier.FLEX.value
        log.warning("%d requests (%d rows) are in batches still running at the server (`batchrun status` lists them): "
                    "left to them, not sent twice; `batchrun run --tier batch` collects them, and `batchrun run "
                    "--tier batch --fallback %s --batch-timeout 1s` cancels those batches and sends what they have "
                    "not answered", len(left), left_rows, fallback)
    return replace(work, send=pc.filter(work.send, kept), rows=work.rows - left_rows), left_rows


def upload_chunk_bytes(environ: Mapping[str, str]) -> int:
    """The upload's piece size: BATCHRUN_UPLOAD_CHUNK_BYTES when set, else the SDK's."""
    raw = environ.get(UPLOAD_CHUNK_ENV, "").strip()
    if not raw:
        return UPLOAD_CHUNK_BYTES
    if not raw.isdigit() or int(raw) < 1:
        raise UsageError(f"{UPLOAD_CHUNK_ENV}={raw!r}: expected a whole number of bytes, e.g. 8388608 (8 MiB), "
                         "or unset it")
    return int(raw)


def refuse_large_images(records: Iterable[RequestRecord], encoder: Any, limit: int) -> None:
    """UsageError when a record's images would not fit a batch line inline (they would need the Files API)."""
    encoder.inline_limit = limit
    over = [large for record in records if (large := encoder.by_file(record))]
    if over:
        raise UsageError(batch_images_message(len(over), over[0][0].path, limit))



def batch_keys(loaded: LoadedSpec, client: httpx.AsyncClient, key: str | None) -> BatchKeys:
    """The run's keys for Batch Mode: one `BatchApi` per key of provider.api_key_env, in the pool's order."""
    from .jobrun import pool_keys  # jobrun calls this module: imported at the call

    provider = loaded.spec.provider
    entries = pool_keys(loaded) if key is not None else []
    if len(entries) < 2:
        return BatchKeys.single(BatchApi(client, batch_base_url(loaded), key, auth=provider.auth), provider.key_env)
    return BatchKeys([BatchKey(entry.env, BatchApi(client, batch_base_url(loaded), value, auth=provider.auth,
                                                   key_env=entry.env))
                      for entry, value in entries])


def batch_base_url(loaded: LoadedSpec) -> str:
    provider = loaded.spec.provider
    return SIMULATOR_BASE_URL if provider.kind == "simulator" else provider.url


def _batch_stop_error(exc: BatchApiError) -> RunStopped:
    """A batch exchange that stops the run (bad key, quota, billing, a request refused), worded for a user."""
    reply = exc.reply
    if reply.outcome is Outcome.STOP_BILLING:
        return BillingStopped(f"run stopped: {billing_message(reply)}; `batchrun run` again resumes")
    if reply.outcome is Outcome.INVALID:
        return ConfigRejected(f"run stopped: the batch API refused {exc}; check provider.base_url, or use "
                              "--tier flex (also half price)")
    error = AuthFailed if reply.outcome is Outcome.STOP_AUTH else QuotaExhausted
    return error(f"run stopped: {exc}; batches already submitted are kept in the ledger; "
                 "`batchrun run` again resumes")
