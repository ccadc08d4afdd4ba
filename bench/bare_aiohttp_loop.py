"""Baseline: a bare aiohttp loop that only sends and parses each reply (json.loads), nothing else.

    python bench/bare_aiohttp_loop.py URL [--requests 20000] [--concurrency 64]

The ceiling for a Python client on this machine: no manifest, limiter, retries or results file.
Prints one JSON line: requests, seconds (first send to last reply), requests_per_s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp
from naive_httpx_loop import request_body


async def drive(url: str, requests: int, concurrency: int) -> float:
    """Seconds to send every request with `concurrency` in flight."""
    bodies = [request_body(i) for i in range(requests)]
    headers = {"content-type": "application/json", "x-goog-api-key": "bench-key-123"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while bodies:
                async with session.post(url, data=bodies.pop(), headers=headers) as response:
                    json.loads(await response.read())
                    assert response.status == 200, response.status

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    seconds = asyncio.run(drive(args.url, args.requests, args.concurrency))
    print(json.dumps({"requests": args.requests, "seconds": round(seconds, 3),
                      "requests_per_s": round(args.requests / seconds, 1)}))


if __name__ == "__main__":
    main()
