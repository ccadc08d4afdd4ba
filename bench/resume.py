"""Resume: a 1,000,000-request manifest with 990,000 done; time from start to the first request sent.

    python bench/resume.py [--requests 1000000] [--done 990000] [--runs 3]

Plans the manifest once (untimed; kept in --work between invocations), writes `done` ok result rows
into 50,000-row parts as a finished run leaves them, then times `batchrun run` from spawn to the first
request the canned server (bench/canned_server.py) receives. The run then finishes the rest.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import harness
import pyarrow.parquet as pq

from batchrun.output.journal import result_values
from batchrun.output.sink import rows_to_table, write_part
from batchrun.planning.plan import manifest_is_current
from batchrun.planning.spec import load_spec
from batchrun.records import ResultRecord

PART_ROWS = 50_000


def done_parts(spec: Path, done: int, store: Path) -> None:
    """`done` ok rows for the manifest's first request ids, as parts under `store` (made once)."""
    if store.is_dir() and len(list(store.glob("part-*.parquet"))) == -(-done // PART_ROWS):
        return
    shutil.rmtree(store, ignore_errors=True)
    store.mkdir(parents=True)
    ids = pq.read_table(harness.output_dir(spec) / "manifest.parquet", columns=["request_id"])["request_id"]
    template = result_values(ResultRecord(
        request_id="", status="ok", attempts=1, started_at=1.7e9, finished_at=1.7e9 + 1.5,
        finish_reason="STOP", text="A short generated caption.", prompt_tokens=15, output_text_tokens=16,
        total_tokens=31, cost_usd=0.00001, latency_ms=900, http_status=200, model=harness.TEXT_MODEL))
    for number, start in enumerate(range(0, done, PART_ROWS), start=1):
        chunk = ids.slice(start, min(PART_ROWS, done - start)).to_pylist()
        write_part(rows_to_table([(rid, *template[1:]) for rid in chunk]), store / f"part-{number:06d}.parquet")


def one_run(spec: Path, store: Path, server: harness.Server) -> float:
    harness.reset_results(spec)
    shutil.copytree(store, harness.output_dir(spec) / "results")
    started = time.time()
    figures = harness.run_job(spec)
    harness.check_run(figures)
    return server.stats()["first_request_at"] - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--done", type=int, default=990_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args(argv)
    work = harness.work_dir(args.work)
    port = str(harness.free_port())  # one port for every run: the spec, and so its manifest, stay the same
    seconds = []
    for run in range(args.runs):
        with harness.canned_server("--port", port) as server:  # fresh, so its first request is this run's
            spec = harness.write_job(work, "resume", args.requests, server.url, limits={"concurrency": 64})
            if not manifest_is_current(load_spec(spec)):  # a new port rewrites the spec: plan untimed
                harness.plan(spec)
            done_parts(spec, args.done, work / f"resume-done-{args.done}")
            seconds.append(one_run(spec, work / f"resume-done-{args.done}", server))
        print(f"run {run + 1}: first request sent {seconds[-1]:.2f} s after start", flush=True)
    harness.report("resume", {
        "requests": args.requests, "done": args.done, "runs": args.runs,
        "seconds_to_first_request": round(harness.median(seconds), 2),
        "all_runs": [round(s, 2) for s in seconds],
    })


if __name__ == "__main__":
    main()
