"""The worker pool of one run, built from a job's spec and run options.

`batchrun.jobrun` wires the run around it (lock, plan, sink, the ending); this module builds the client,
limiter, retry policy and provider, runs the pool over the pending work, and tears the display down.
"""

from __future__ import annotations

import contextlib
import logging

from ..http import make_client
from ..live import LiveFile, live_path
from ..options import RunOptions
from ..plan import manifest_path
from ..pricing import PriceCatalog
from ..progress import Progress, make_display
from ..providers.registry import ProviderSettings, build_provider, build_transport
from ..sink import Sink
from ..spec import JobSpec, LoadedSpec
from .account import SpendingAccount
from .clock import Clock, MonotonicClock
from .hooks import ModelStatusWarner, ProgressTicker, RunHooks
from .limiter import Limiter
from .pending import Work, iter_work
from .pool import PoolSettings, WorkerPool
from .retry import RetryPolicy

log = logging.getLogger(__name__)


async def _run_pool(loaded: LoadedSpec, options: RunOptions, key: str | None, catalog: PriceCatalog, sink: Sink,
                    progress: Progress, work: Work, account: SpendingAccount) -> WorkerPool:
    spec = loaded.spec
    concurrency = options.concurrency or spec.limits.concurrency
    clock = MonotonicClock()
    settings = ProviderSettings(spec.provider, key, loaded.folder, spec.limits.timeout_s, concurrency)
    transport, provider = build_transport(settings), build_provider(settings)
    display = make_display(options.progress, progress, options.status_every)
    live = LiveFile(live_path(sink.out_dir, sink.run_id), progress)  # what `status` shows of a pause
    pool = WorkerPool(
        provider=provider, client=None, limiter=_limiter(spec, concurrency, clock), policy=_retry_policy(spec),
        sink=sink, progress=progress, clock=clock, account=account,
        settings=_pool_settings(spec, options, concurrency),
        hooks=RunHooks(
            on_tick=ProgressTicker(sink=sink, live=live, display=display, every=options.status_every, clock=clock),
            on_reply=ModelStatusWarner(), tick_s=0.5,
        ),
    )
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


def _limiter(spec: JobSpec, concurrency: int, clock: Clock) -> Limiter:
    limits = spec.limits
    return Limiter(
        concurrency=concurrency, requests_per_minute=limits.requests_per_minute,
        tokens_per_minute=limits.tokens_per_minute, images_per_minute=limits.images_per_minute, clock=clock,
        unpaced_until_429=True,  # bench/RESULTS.md: a slow start from 1 req/s cost 7 s of a 20,000-request run
    )


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
    )
