"""The one `httpx.AsyncClient` of a run, and the transport under it.

Real endpoints go through httpx-aiohttp's transport: measured on a 2-core machine against a canned
server on loopback, httpx 0.28's own pool scans every connection per request (340 req/s at 64
concurrent), the aiohttp transport gave 1,840 (DESIGN.md, "HTTP"; bench/RESULTS.md). The simulator
kind answers in process through its own transport. Tests pass an `httpx.MockTransport`.
"""

from __future__ import annotations

import httpx

SIMULATOR_BASE_URL = "http://simulator.batchrun.invalid"


def make_transport(kind: str, concurrency: int, *, profile: str | None = None, seed: int = 0,
                   faults_file: str | None = None) -> httpx.AsyncBaseTransport:
    """The transport for a provider kind: in-process simulator, or aiohttp sized to the concurrency."""
    if kind == "simulator":
        from .simulator.transport import SimulatorTransport

        return SimulatorTransport(profile=profile or "clean", seed=seed, faults_file=faults_file)
    from httpx_aiohttp import AiohttpTransport

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return AiohttpTransport(limits=limits)


def make_client(transport: httpx.AsyncBaseTransport, timeout_s: float) -> httpx.AsyncClient:
    """One client per run; redirects are not followed (a gateway's 301 is an error, not a detour)."""
    timeout = httpx.Timeout(timeout_s, connect=min(30.0, timeout_s))
    return httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False)
