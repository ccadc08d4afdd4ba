"""Baseline: a bare aiohttp loop doing only what an image job must do with each reply, nothing else.

    python bench/bare_image_loop.py URL OUT_DIR [--requests 1000] [--concurrency 32] [--ask-image]

Per reply: json.loads, base64-decode the last image part, sha256 it, write it to OUT_DIR/N.png (on the
event loop's thread, as the runner writes). No manifest, limiter, retries, results file or image header
check. With --ask-image each request asks for a 1K image (for a server that answers what is asked,
such as the simulator). Prints one JSON line: requests, seconds (first send to last file written),
images_per_s.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import time
from pathlib import Path

import aiohttp
from naive_httpx_loop import request_body


def image_request_body(i: int) -> bytes:
    config = {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "1:1", "imageSize": "1K"}}
    prompt = f"Photograph the Product number {i} in sage on a kitchen counter."
    return json.dumps({"contents": [{"role": "user", "parts": [{"text": prompt}]}], "generationConfig": config},
                      separators=(",", ":")).encode()


def save_image(reply: bytes, path: Path) -> str:
    """Decode the reply's last image, write it to `path`; its sha256."""
    parts = json.loads(reply)["candidates"][0]["content"]["parts"]
    data = base64.b64decode(next(p for p in reversed(parts) if "inlineData" in p)["inlineData"]["data"])
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


async def drive(url: str, out: Path, requests: int, concurrency: int, ask_image: bool = False) -> float:
    """Seconds to fetch, decode, hash and write `requests` images with `concurrency` in flight."""
    body = image_request_body if ask_image else request_body
    numbers = list(range(requests))
    headers = {"content-type": "application/json", "x-goog-api-key": "bench-key-123"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while numbers:
                n = numbers.pop()
                async with session.post(url, data=body(n), headers=headers) as response:
                    assert response.status == 200, response.status
                    save_image(await response.read(), out / f"{n}.png")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("out", type=Path)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--ask-image", action="store_true", help="ask for a 1K image in each request")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    seconds = asyncio.run(drive(args.url, args.out, args.requests, args.concurrency, args.ask_image))
    print(json.dumps({"requests": args.requests, "seconds": round(seconds, 3),
                      "images_per_s": round(args.requests / seconds, 1)}))


if __name__ == "__main__":
    main()
