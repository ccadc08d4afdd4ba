"""The batch tier of `batchrun run`: the run's pending work through Gemini Batch Mode (batching/run.py).

In:  the loaded spec, the run's options and key, the open sink, progress, the pending `Work` and the
     spending account at the batch price. Out: the `BatchOutcome` of one pass (or of passes until
     done, with --wait, or on the in-process simulator, whose batches end with the process).
Invariants: the batch tier runs only where the endpoint offers Batch Mode (provider.kind gemini or
simulator); a batch exchange that must stop the run becomes the RunStopped error a synchronous run
would raise; a synchronous run warns when batches at the server still hold requests it sends.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from batchrun.batching.advance import PollBackoff
from batchrun.batching.chunks import BATCHES_DIR
from batchrun.batching.exchange import BatchApi, BatchApiError
from batchrun.batching.ledger import Ledger
from batchrun.batching.run import BatchOutcome, BatchRunSettings, SinkTarget, run_batches
from batchrun.output.progress import Progress
from batchrun.output.sink import Sink
from batchrun.planning.plan import manifest_path
from batchrun.planning.spec import LoadedSpec
from batchrun.running.account import SpendingAccount
from batchrun.running.clock import MonotonicClock
from batchrun.running.http import make_client
from batchrun.running.pending import Work, iter_work
from batchrun.running.pool import PoolStop, StopReason, billing_message

from .errors import (
    AuthFailed,
    BillingStopped,
    ConfigRejected,
    QuotaExhausted,
    RunStopped,
    UsageError,
    batch_images_message,
    batch_kind_message,
)
from .options import RunOptions
from .providers.registry import SIMULATOR_BASE_URL, build_provider, build_transport
from .records import Outcome, RequestRecord
from .tiers import BATCH_KINDS, Tier

log = logging.getLogger(__name__)
BATCH_LINE_LIMIT = 20 * 1024 * 1024  # bytes of one inline batch request (reference §7.1)


def check_batch_kind(loaded: LoadedSpec, options: RunOptions) -> None:
    kind = loaded.spec.provider.kind
    if (options.tier or loaded.spec.tier) is Tier.BATCH and kind not in BATCH_KINDS:
        raise UsageError(f"--tier batch: {batch_kind_message(kind)}")


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
                           poll=PollBackoff(first_s=0.5, max_s=5.0) if in_process else PollBackoff())
    async with make_client(build_transport(settings), settings.timeout_s) as client:
        api = BatchApi(client, batch_base_url(loaded), key, auth=spec.provider.auth)
        try:
            return await run_batches(api, loaded.output_dir, target, encoder.encode_body, account,
                                     MonotonicClock(), run)
        except BatchApiError as exc:
            raise _batch_stop_error(exc) from None


def refuse_large_images(records: Iterable[RequestRecord], encoder: Any, limit: int) -> None:
    """UsageError when a record's images would not fit a batch line inline (they would need the Files API)."""
    encoder.inline_limit = limit
    over = [large for record in records if (large := encoder.by_file(record))]
    if over:
        raise UsageError(batch_images_message(len(over), over[0][0].path, limit))


def warn_batches_in_flight(out_dir: Path, tier: Tier) -> None:
    """A synchronous run sends again what batches at the server still hold: say so, once."""
    in_flight = Ledger(out_dir).read().in_flight_ids(out_dir / BATCHES_DIR)
    if in_flight:
        log.warning("%d requests are in batches still running at the server (`batchrun status` lists them); this run "
                    "at the %s tier sends them again and they may be billed twice: `batchrun run --tier batch` "
                    "collects them instead", len(in_flight), tier.value)


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
