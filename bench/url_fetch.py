"""Photos by URL: 200 distinct photos fetched at plan time from a local server, at several connection limits.

    python bench/url_fetch.py                    # 200 URLs, 3 rounds
    python bench/url_fetch.py --urls 50 --rounds 1

The server (threaded http.server on 127.0.0.1, in this process) answers each photo after `--latency-ms`
(a CDN's round trip; 0 for loopback alone) with a distinct ~60 KB JPEG. Each round fetches every URL into
a fresh cache with `fetch_all` over the default (aiohttp) transport at 1, 4 and 16 connections and over
httpx's own pool at 16, side by side; then plans a 200-row image job of those URLs (`plan_job`, in
process) cold and again warm (a re-plan: no request, checked). Prints one JSON line a round, then medians.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import yaml  # noqa: E402

from batchrun.planning.inputcache import InputCache  # noqa: E402
from batchrun.planning.plan import plan_job  # noqa: E402
from batchrun.planning.spec import load_spec  # noqa: E402
from batchrun.planning.urlfetch import FetchSettings, fetch_all  # noqa: E402


def photo(n: int) -> bytes:
    image = Image.effect_noise((320, 240), 40 + n % 50).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def start_server(photos: list[bytes], latency_s: float) -> tuple[ThreadingHTTPServer, str, list[int]]:
    served: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            n = int(self.path.rsplit("/", 1)[1].removesuffix(".jpg"))
            served.append(n)
            if latency_s:
                time.sleep(latency_s)  # the server's round trip, not the measurement's
            body = photos[n]
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", f'"{n}"')
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}", served


def timed_fetch(urls: list[str], folder: Path, connections: int, transport: str) -> float:
    chosen = httpx.AsyncHTTPTransport() if transport == "httpx" else None  # None: the aiohttp default
    started = time.perf_counter()
    found = fetch_all(urls, InputCache(folder), FetchSettings(connections=connections), transport=chosen)
    elapsed = time.perf_counter() - started
    failed = [url for url, entry in found.items() if isinstance(entry, Exception)]
    assert not failed, failed[:3]
    return elapsed


def timed_plan(urls: list[str], folder: Path) -> float:
    """`plan_job` of a 200-row image job whose photos are the URLs (in-process, imports excluded)."""
    spec = {"name": "urlbench", "provider": {"kind": "simulator"}, "model": "gemini-3.1-flash-image",
            "inputs": {"rows": [{"sku": f"S{n}", "photo": url} for n, url in enumerate(urls)]},
            "request": {"prompt": "Photograph {{ sku }}", "images": ["{{ photo }}"],
                        "generation_config": {"responseModalities": ["IMAGE"]}},
            "output": {"dir": str(folder / "out"), "image_name": "{{ sku }}"}}
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    started = time.perf_counter()
    plan_job(load_spec(path))
    return time.perf_counter() - started


CASES = (("aiohttp", 1), ("aiohttp", 4), ("aiohttp", 16), ("httpx", 16))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--urls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args()
    photos = [photo(n) for n in range(args.urls)]
    server, base, served = start_server(photos, args.latency_ms / 1000)
    urls = [f"{base}/photo/{n}.jpg" for n in range(args.urls)]
    times: dict[str, list[float]] = {f"{t}/{c}": [] for t, c in CASES} | {"plan cold": [], "plan warm": []}
    try:
        for round_ in range(args.rounds):
            for transport, connections in CASES:
                with tempfile.TemporaryDirectory() as tmp:
                    times[f"{transport}/{connections}"].append(timed_fetch(urls, Path(tmp), connections, transport))
            with tempfile.TemporaryDirectory() as tmp:
                times["plan cold"].append(timed_plan(urls, Path(tmp)))
                before = len(served)
                times["plan warm"].append(timed_plan(urls, Path(tmp)))
                assert len(served) == before, "a re-plan sent requests"
            print(json.dumps({"round": round_, **{k: round(v[-1], 3) for k, v in times.items()}}))
    finally:
        server.shutdown()
    medians = {key: round(statistics.median(values), 3) for key, values in times.items()}
    print(json.dumps({"urls": args.urls, "latency_ms": args.latency_ms,
                      "photo_bytes_mean": sum(map(len, photos)) // len(photos), "median_seconds": medians}))


if __name__ == "__main__":
    main()
