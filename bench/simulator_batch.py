"""How fast the simulator answers a batch, and that its memory does not grow with the results file.

In process, on the simulator core (no sockets): LINES text requests uploaded as one JSONL file,
one batch created, and the first read after its clock has run answers every line into the results
file, which is then read back through the in-process transport's streamed download. Alongside, in
the same run: the same requests as synchronous generateContent calls on the same core (the ratio
says what a batch line costs against a plain request), and the same batch with every results line
padded by PAD bytes (peak Python memory, by tracemalloc in runs of their own, should not follow the
file's size).
Run by hand: `python bench/simulator_batch.py` (`--lines N --pad N --runs N`). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import tracemalloc

import httpx

from batchrun.simulator.core import SimulatorCore
from batchrun.simulator.faults import FaultConfig
from batchrun.simulator.transport import SimulatorTransport

MODEL = "gemini-2.5-flash"
LINES = 10_000
PAD = 20_000
RUNS = 3


def request(i: int) -> dict:
    return {"contents": [{"parts": [{"text": f"Write a product line for item {i}."}]}]}


def upload(core: SimulatorCore, data: bytes) -> str:
    headers = httpx.Headers({"x-goog-upload-protocol": "resumable", "x-goog-upload-command": "start",
                             "x-goog-upload-header-content-length": str(len(data))})
    start = core.handle("POST", "/upload/v1beta/files", {}, headers, b'{"file":{"display_name":"bench"}}')
    url = httpx.URL(start.headers["x-goog-upload-url"])
    done = core.handle("POST", url.path, dict(url.params),
                       httpx.Headers({"x-goog-upload-offset": "0", "x-goog-upload-command": "upload, finalize"}), data)
    return json.loads(done.body)["file"]["name"]


async def batch_run(lines: int, pad: int, traced: bool) -> tuple[float, int, int]:
    """(seconds to answer and download, bytes downloaded, peak traced bytes or 0) of one batch."""
    transport = SimulatorTransport("clean")
    core = transport.core
    core.config = core.config.model_copy(update={"batch": core.config.batch.model_copy(
        update={"pending_s": 0, "running_s": 0, "line_padding_bytes": pad})})
    data = b"".join(json.dumps({"key": f"k{i}", "request": request(i)}).encode() + b"\n" for i in range(lines))
    body = json.dumps({"batch": {"inputConfig": {"fileName": upload(core, data)}}}).encode()
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    async with httpx.AsyncClient(transport=transport, base_url="http://sim.bench") as client:
        name = core.handle("POST", f"/v1beta/models/{MODEL}:batchGenerateContent", {}, httpx.Headers(), body)
        results = (await client.get(f"/v1beta/{json.loads(name.body)['name']}")).json()["response"]["responsesFile"]
        size = 0
        async with client.stream("GET", f"/v1beta/{results}:download", params={"alt": "media"}) as response:
            async for line in response.aiter_lines():
                size += len(line) + 1
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if traced else 0
    tracemalloc.stop()
    return elapsed, size, peak


def sync_run(lines: int) -> float:
    """Seconds for the same requests as synchronous generateContent calls on a core."""
    core = SimulatorCore(FaultConfig())
    bodies = [json.dumps(request(i)).encode() for i in range(lines)]
    started = time.perf_counter()
    for body in bodies:
        core.handle("POST", f"/v1beta/models/{MODEL}:generateContent", {}, httpx.Headers(), body)
    return time.perf_counter() - started


def main(lines: int, pad: int, runs: int) -> None:
    plain, padded, traced, traced_padded, sync = [], [], [], [], []
    for _ in range(runs):  # the kinds alternate, so that each ratio is taken in the same minutes
        plain.append(asyncio.run(batch_run(lines, 0, False)))
        padded.append(asyncio.run(batch_run(lines, pad, False)))
        sync.append(sync_run(lines))
        traced.append(asyncio.run(batch_run(lines, 0, True)))  # tracemalloc slows Python: timed apart
        traced_padded.append(asyncio.run(batch_run(lines, pad, True)))
    median = statistics.median
    figures = {
        "lines": lines,
        "batch_lines_per_s": round(lines / median(r[0] for r in plain)),
        "sync_requests_per_s": round(lines / median(sync)),
        "batch_vs_sync": round(median(sync) / median(r[0] for r in plain), 2),
        "results_mb": round(median(r[1] for r in plain) / 1e6, 1),
        "padded_results_mb": round(median(r[1] for r in padded) / 1e6, 1),
        "peak_traced_mb": round(median(r[2] for r in traced) / 1e6, 1),
        "padded_peak_traced_mb": round(median(r[2] for r in traced_padded) / 1e6, 1),
        "runs": {"batch_s": [round(r[0], 2) for r in plain], "padded_s": [round(r[0], 2) for r in padded],
                 "sync_s": [round(s, 2) for s in sync]},
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=LINES)
    parser.add_argument("--pad", type=int, default=PAD)
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args()
    main(args.lines, args.pad, args.runs)
