"""Micro-benchmark of the sink: result rows per second, and the time to compute a resume set.

Run by hand: `python bench/sink_micro.py [--rows 200000] [--images 2000] [--manifest 1000000]`.
Writes under a temporary folder (or `--dir`), prints one line per figure. The image figure runs
first, so its peak RSS is the sink's own, not that of the rows made for the later figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import os
import resource
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from batchrun.output.journal import result_values
from batchrun.output.lock import drop_lock_as_if_killed
from batchrun.output.sink import Sink, pending_ids, rows_to_table, write_part
from batchrun.records import ResultRecord


def request_id(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()[:32]


def text_result(n: int) -> ResultRecord:
    return ResultRecord(
        request_id=request_id(n), status="ok", attempts=1, started_at=1.7e9 + n, finished_at=1.7e9 + n + 1.5,
        finish_reason="STOP", text=f"A short generated caption for product {n}, soft morning light.",
        prompt_tokens=120, output_text_tokens=40, thoughts_tokens=0, total_tokens=160, cost_usd=0.00042,
        latency_ms=850, http_status=200, model="gemini-2.5-flash", model_version="gemini-2.5-flash",
        response_id=f"resp-{n}")


def bench_text_rows(root: Path, rows: int, flush_every: int) -> float:
    """Results per second through write_result (+ record_sent) and close, records made beforehand."""
    records = [text_result(n) for n in range(rows)]
    out = root / f"text-{flush_every}"
    sink = Sink(out, run_id="bench", flush_every=flush_every)
    sink.open()
    start = time.perf_counter()
    for record in records:
        sink.record_sent(record.request_id)
        sink.write_result(record)
    sink.close()
    return rows / (time.perf_counter() - start)


def make_resume_folder(root: Path, total: int, done: int) -> Path:
    """A folder with a `total`-row manifest and `done` ok results in 50,000-row parts."""
    out = root / "resume"
    (out / "results").mkdir(parents=True)
    ids = [request_id(n) for n in range(total)]
    manifest = pa.table({"request_id": ids, "seq": pa.array(range(total), pa.int64()),
                         "model": ["gemini-2.5-flash"] * total})
    pq.write_table(manifest, out / "manifest.parquet")
    template = result_values(text_result(0))
    for part, start in enumerate(range(0, done, 50_000), start=1):
        rows = [(ids[n], *template[1:]) for n in range(start, min(start + 50_000, done))]
        write_part(rows_to_table(rows), out / "results" / f"part-{part:06d}.parquet")
    return out


def leave_crashed_journal(out: Path, first: int, rows: int) -> None:
    """What a run killed after journaling `rows` more results leaves behind."""
    sink = Sink(out, run_id="crashed", flush_every=1)
    sink.open()
    for n in range(first, first + rows):
        sink.record_sent(request_id(n))
        sink.write_result(dataclasses.replace(text_result(n), request_id=request_id(n)))
    os.close(sink._journal._fd)
    drop_lock_as_if_killed(out / ".lock")  # the kernel drops a killed holder's lock


def bench_resume(root: Path, total: int, done: int, crashed_rows: int = 0) -> tuple[float, int]:
    """Seconds from opening the sink to knowing the pending ids (manifest read included)."""
    out = make_resume_folder(root / f"crashed-{crashed_rows}", total, done - crashed_rows)
    if crashed_rows:
        leave_crashed_journal(out, done - crashed_rows, crashed_rows)
    start = time.perf_counter()
    sink = Sink(out, run_id="resume")
    sink.open()
    manifest_ids = pq.read_table(out / "manifest.parquet", columns=["request_id"])["request_id"]
    pending = pending_ids(manifest_ids.combine_chunks(), sink.final_ids())
    elapsed = time.perf_counter() - start
    sink.close()
    return elapsed, len(pending)


def bench_recovery(root: Path, rows: int) -> tuple[float, int]:
    """Seconds for open() to recover a crashed run's journal of `rows` results."""
    out = root / "crash"
    sink = Sink(out, run_id="crashed", part_rows=rows + 1)
    sink.open()
    for n in range(rows):
        sink.record_sent(request_id(n))
        sink.write_result(text_result(n))
    sink.flush()
    os.close(sink._journal._fd)  # the process dies: no close()
    drop_lock_as_if_killed(out / ".lock")  # the kernel drops a killed holder's lock
    start = time.perf_counter()
    recovery = Sink(out, run_id="after").open()
    return time.perf_counter() - start, recovery.recovered_rows


def noise_png(side: int = 820) -> bytes:
    """A PNG of random pixels: about 2 MB that compression cannot shrink."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def bench_images(root: Path, count: int, threads: int) -> tuple[float, int, float]:
    """Images written per second from `threads` worker threads, the image size, and peak RSS in MB."""
    data = noise_png()
    sink = Sink(root / "images-bench", run_id="images")
    sink.open()
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        images = pool.map(lambda n: sink.write_image(data, "image/png", f"sku-{n % 100}/scene-{n}", f"r{n}"),
                          range(count))
        for n, image in enumerate(images):
            sink.write_result(ResultRecord(f"r{n}", "ok", 1, 1.0, 2.0, image_path=image.path,
                                           image_sha256=image.sha256, image_bytes=image.bytes))
    sink.close()
    elapsed = time.perf_counter() - start
    return count / elapsed, len(data), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--manifest", type=int, default=1_000_000)
    parser.add_argument("--images", type=int, default=2_000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sink-bench-", dir=args.dir))
    try:
        rate, size, peak_mb = bench_images(root, args.images, threads=40)
        print(f"images: {args.images:,} x {size / 1e6:.1f} MB from 40 threads: {rate:,.0f} images/s, "
              f"peak RSS so far {peak_mb:,.0f} MB")
        for flush_every in (256, 1):
            rate = bench_text_rows(root, args.rows, flush_every)
            print(f"text results, flush_every={flush_every}: {rate:,.0f} results/s ({args.rows:,} rows)")
        seconds, recovered = bench_recovery(root, 50_000)
        print(f"recovery of a crashed journal: {recovered:,} rows in {seconds:.2f} s")
        done = args.manifest * 99 // 100
        for crashed_rows in (0, 20_000):
            seconds, pending = bench_resume(root, args.manifest, done, crashed_rows)
            print(f"resume set: {args.manifest:,} manifest, {done:,} done ({crashed_rows:,} of them in a "
                  f"crashed run's journal) -> {pending:,} pending in {seconds:.2f} s")
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
