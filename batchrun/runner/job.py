"""The worker pool of one run, built from a job's spec and run options, and the hooks it calls.

`batchrun.jobrun` wires the run around it (lock, plan, sink, the ending); this module builds the client,
limiter, retry policy and provider, runs the pool over the pending work, and tears the display down.
"""

from __future__ import annotations

import contextlib
import logging
import time

from ..http import SIMULATOR_BASE_URL, make_client, make_transport
from ..live import LiveFile, live_path
from ..plan import manifest_path
from ..pricing import PriceCatalog, cost_usd, worst_case_cost
from ..progress import make_display
from ..providers.gemini import GeminiProvider
from ..records import RequestRecord, Usage
from ..sink import Sink
from .clock import MonotonicClock
from .limiter import Limiter
from .pending import Work, iter_work
from .pool import WorkerPool
from .retry import RetryPolicy

log = logging.getLogger(__name__)


async def _run_pool(loaded, options, key, catalog, sink, progress, work: Work, budget) -> WorkerPool:
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

