"""Baseline: a naive anyio + httpx loop (httpx's default transport), parsing each reply with json.loads.

    python bench/naive_httpx_loop.py URL [--requests 20000] [--concurrency 64]

What someone writes first, without batchrun: no manifest, no limiter, no retries, no results file.
Prints one JSON line: requests, seconds (first send to last reply), requests_per_s.
"""

from __future__ import annotations

import argparse
import json
import time

import anyio
import httpx


def request_body(i: int) -> bytes:
    prompt = f"Write a playful description of the Product number {i} in sage."
    return json.dumps({"contents": [{"role": "user", "parts": [{"text": prompt}]}],
                       "generationConfig": {"maxOutputTokens": 256}}, separators=(",", ":")).encode()


async def drive(url: str, requests: int, concurrency: int) -> float:
    """Seconds to send every request with `concurrency` in flight."""
    bodies = [request_body(i) for i in range(requests)]
    headers = {"content-type": "application/json", "x-goog-api-key": "bench-key-123"}
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def worker() -> None:
            while bodies:
                response = await client.post(url, content=bodies.pop(), headers=headers)
                json.loads(response.content)
                assert response.status_code == 200, response.status_code

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for _ in range(concurrency):
                group.start_soon(worker)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    seconds = anyio.run(drive, args.url, args.requests, args.concurrency)
    print(json.dumps({"requests": args.requests, "seconds": round(seconds, 3),
                      "requests_per_s": round(args.requests / seconds, 1)}))


if __name__ == "__main__":
    main()
