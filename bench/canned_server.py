"""A canned Gemini server for the benchmarks (aiohttp, 127.0.0.1): the same reply to every request.

    python bench/canned_server.py --port 0                        # text reply, no latency
    python bench/canned_server.py --port 0 --latency-s 2          # every reply after 2 s
    python bench/canned_server.py --port 0 --rate-per-s 20        # 429 + RetryInfo above 20 req/s
    python bench/canned_server.py --port 0 --image-mb 2           # a 2 MB PNG, base64, in every reply
    python bench/canned_server.py --port 0 --random-429 0.05      # 5% of requests: 429, retryDelay 1 s
    python bench/canned_server.py --port 0 --reply openai         # a chat completion instead

Prints `canned server listening on http://127.0.0.1:PORT`, serves until SIGTERM. GET /stats gives its
counters: requests, ok, rate_limited, random_429, the wall time of the first request, and the ok
replies and the 429s in each second since the first request.
The rate limit is a strict sliding one-second window over the requests it answered 200, as a
provider's per-second quota is; a 429 carries the exact wait until the window has room.
`--random-429 SHARE` refuses that share of requests at random (seeded by --seed), at once, with a 429
carrying `--random-429-delay-s` as its retryDelay: a rate-independent 429, as Gemini's shared-capacity
429s are. They come before the rate limit and do not count in its window.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import io
import json
import os
import random
import signal
import sys
import time
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import CANNED_REPLIES, IMAGE_MODEL  # noqa: E402


def image_reply(megabytes: float) -> bytes:
    """A reply carrying one PNG of about `megabytes` (noise, so it does not compress), base64."""
    from PIL import Image

    side = int((megabytes * 1_000_000 / 3) ** 0.5)
    pixels = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buffer = io.BytesIO()
    pixels.save(buffer, format="PNG", compress_level=0)
    data = base64.b64encode(buffer.getvalue()).decode()
    reply = {
        "candidates": [{"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": data}}],
                                    "role": "model"}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 15, "candidatesTokenCount": 1290, "totalTokenCount": 1305,
                          "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 1290}]},
        "modelVersion": IMAGE_MODEL,
        "responseId": "bench-image-reply",
    }
    return json.dumps(reply, separators=(",", ":")).encode()


def rate_limited_reply(wait_s: float) -> bytes:
    error = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
                       "message": "Resource has been exhausted (e.g. check quota).",
                       "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                    "retryDelay": f"{wait_s:.3f}s"}]}}
    return json.dumps(error).encode()


class RandomRefusal:
    """A 429 for `share` of the requests, drawn at random whatever the rate."""

    def __init__(self, share: float, delay_s: float, seed: int) -> None:
        self.share, self.reply = share, rate_limited_reply(delay_s)
        self.rng = random.Random(seed)

    def refuses(self) -> bool:
        return self.share > 0 and self.rng.random() < self.share


class CannedServer:
    def __init__(self, body: bytes, latency_s: float, rate_per_s: int | None,
                 random_429: RandomRefusal | None = None) -> None:
        self.body, self.latency_s, self.rate_per_s = body, latency_s, rate_per_s
        self.random_429 = random_429
        self.window: collections.deque[float] = collections.deque()
        self.requests = self.ok = self.rate_limited = self.refused_at_random = 0
        self.first: float | None = None
        self.first_wall: float | None = None  # time.time() of the first request, for other processes
        self.ok_per_second: collections.Counter[int] = collections.Counter()
        self.refused_per_second: collections.Counter[int] = collections.Counter()  # both kinds of 429

    async def generate(self, request: web.Request) -> web.Response:
        await request.read()
        now = time.monotonic()
        if self.first is None:
            self.first, self.first_wall = now, time.time()
        self.requests += 1
        if self.random_429 is not None and self.random_429.refuses():
            self.refused_at_random += 1
            self.refused_per_second[int(now - self.first)] += 1
            return web.Response(status=429, body=self.random_429.reply, content_type="application/json")
        if self.rate_per_s is not None:
            while self.window and self.window[0] <= now - 1.0:
                self.window.popleft()
            if len(self.window) >= self.rate_per_s:
                self.rate_limited += 1
                self.refused_per_second[int(now - self.first)] += 1
                wait = self.window[0] + 1.0 - now
                return web.Response(status=429, body=rate_limited_reply(wait), content_type="application/json")
            self.window.append(now)
        self.ok += 1
        self.ok_per_second[int(now - self.first)] += 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        return web.Response(body=self.body, content_type="application/json")

    async def stats(self, _request: web.Request) -> web.Response:
        seconds = max(self.ok_per_second, default=-1) + 1
        refused = max(self.refused_per_second, default=-1) + 1
        return web.json_response({
            "requests": self.requests, "ok": self.ok, "rate_limited": self.rate_limited,
            "random_429": self.refused_at_random,
            "first_request_at": self.first_wall,
            "ok_per_second": [self.ok_per_second.get(s, 0) for s in range(seconds)],
            "refused_per_second": [self.refused_per_second.get(s, 0) for s in range(refused)],
        })


async def serve(args: argparse.Namespace) -> None:
    body = image_reply(args.image_mb) if args.image_mb else CANNED_REPLIES[args.reply]()
    random_429 = RandomRefusal(args.random_429, args.random_429_delay_s, args.seed) if args.random_429 else None
    canned = CannedServer(body, args.latency_s, args.rate_per_s, random_429)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/stats", canned.stats)
    app.router.add_post("/{tail:.*}", canned.generate)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=4096)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print(f"canned server listening on http://127.0.0.1:{port}", flush=True)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    await stopped.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-s", type=float, default=0.0)
    parser.add_argument("--rate-per-s", type=int, default=None)
    parser.add_argument("--image-mb", type=float, default=0.0)
    parser.add_argument("--reply", choices=sorted(CANNED_REPLIES), default="gemini",
                        help="the text reply's shape: a generateContent reply or a chat completion")
    parser.add_argument("--random-429", type=float, default=0.0, help="share of requests refused at random")
    parser.add_argument("--random-429-delay-s", type=float, default=1.0, help="their retryDelay")
    parser.add_argument("--seed", type=int, default=7)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
