"""Batch collect: a 10,000-request text batch collected from the simulator; rate and peak memory.

    python bench/batch_collect.py [--requests 10000] [--pad 20000] [--runs 3] [--work DIR]

The server is `batchrun simulate` (a real HTTP server on 127.0.0.1) with a short batch clock
(`batch: {pending_s: 0, running_s: --running-s}`), started twice: plain, and padding every results
line with --pad bytes (`line_padding_bytes`; 20,000 at 10,000 requests makes about 200 MB of results
files). Each run, side by side on the same simulators:

- submit: `batchrun run SPEC --tier batch` plans the chunks (2,000 requests each), uploads them and
  creates the batches, then exits 13; the bench lists the batches until all have ended (the simulator
  answers a batch's lines when it is listed after its end), so the collect times the client only;
- collect: `batchrun run SPEC --tier batch` again, timed from spawn to exit: it polls each batch and
  streams each results file through the SinkTarget into the sink (the same code path as any batch
  run), then exits 0. Peak RSS is that child's own (os.wait4). Once plain, once padded. Its rate counts
  the lines it wrote (a submitting run slower than --running-s collects some itself);
- sync: `batchrun run SPEC` (the standard tier, concurrency 64) of the same job against the plain
  simulator: the rate a collect is compared with.

Memory must not follow the results files' size: the padded collect's peak RSS should be the plain one's.
Last, planning only: the Python memory (tracemalloc) of the pending RequestRecords a batch run holds
for its whole length (`batchtier.run_batch_tier`'s dict by request id), at each --records count.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import tracemalloc
import urllib.request
from pathlib import Path

import harness

CONCURRENCY = 64
EXIT_BATCHES_RUNNING = 13


def write_faults(work: Path, pad: int, running_s: float) -> Path:
    path = work / f"faults-pad{pad}.json"
    path.write_text(json.dumps({"batch": {"pending_s": 0, "running_s": running_s, "line_padding_bytes": pad}}))
    return path


def fresh_job(work: Path, name: str, requests: int, url: str) -> Path:
    """A planned text job of `requests` requests at `url`, with no results, ledger or chunks yet."""
    spec = harness.write_job(work, name, requests, url, limits={"concurrency": CONCURRENCY})
    job = json.loads(spec.read_text())
    job["request"]["generation_config"]["maxOutputTokens"] = 1024  # room for the simulator's thinking and text
    spec.write_text(json.dumps(job, indent=1))
    out = harness.output_dir(spec)
    if out.exists():
        shutil.rmtree(out)
    harness.plan(spec)
    return spec


def batches_done(url: str) -> bool:
    """List the simulator's batches: whether every one has ended (each is answered as it is listed)."""
    request = urllib.request.Request(f"{url}/v1beta/batches?pageSize=1000",
                                     headers={"x-goog-api-key": harness.FAKE_KEY})
    with urllib.request.urlopen(request, timeout=600) as reply:
        return all(op.get("done") for op in json.loads(reply.read()).get("operations", []))


def wait_for_batches(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not batches_done(url):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the simulator's batches did not end within {timeout_s:g} s")
        time.sleep(0.5)


def rows_written(spec: Path) -> int:
    parts = list((harness.output_dir(spec) / "results").glob("**/*.parquet"))
    return harness.result_counts(spec)["rows"] if parts else 0


def results_bytes(url: str) -> int:
    """The size of every results file the simulator holds (bytes)."""
    request = urllib.request.Request(f"{url}/v1beta/files?pageSize=1000", headers={"x-goog-api-key": harness.FAKE_KEY})
    with urllib.request.urlopen(request, timeout=60) as reply:
        files = json.loads(reply.read()).get("files", [])
    return sum(int(f.get("sizeBytes", 0)) for f in files if "results" in f.get("displayName", ""))


def batch_collect(work: Path, name: str, requests: int, url: str, running_s: float) -> dict:
    """Submit a batch job, wait for the simulator to end its batches, then time the collecting run."""
    spec = fresh_job(work, name, requests, url)
    before = results_bytes(url)
    submit = harness.run_job(spec, "--tier", "batch")
    if submit.returncode != EXIT_BATCHES_RUNNING:
        raise RuntimeError(f"the submitting run exited {submit.returncode}: {submit.stderr.strip()[-2000:]}")
    early = rows_written(spec)  # collected by the submitting run itself (its first poll came after running_s)
    if early == requests:
        raise RuntimeError("the submitting run collected every batch: make --running-s longer")
    wait_for_batches(url, running_s + 300)
    size = results_bytes(url) - before
    collect = harness.run_job(spec, "--tier", "batch")
    harness.check_run(collect)
    counts = harness.result_counts(spec)
    if counts.get("rows") != requests:
        raise RuntimeError(f"expected {requests} result rows, got {counts}")
    return {"lines": requests - early, "seconds": collect.seconds, "cpu_seconds": collect.cpu_seconds,
            "peak_rss_mb": collect.peak_rss_mb, "submit_peak_rss_mb": submit.peak_rss_mb, "results_mb": size / 1e6}


def sync_run(work: Path, requests: int, url: str) -> dict:
    spec = fresh_job(work, "sync", requests, url)
    figures = harness.run_job(spec)
    harness.check_run(figures)
    return {"seconds": figures.seconds, "cpu_seconds": figures.cpu_seconds, "peak_rss_mb": figures.peak_rss_mb}


def pending_records_mb(work: Path, requests: int) -> float:
    """Python memory (tracemalloc, MB) of every pending RequestRecord of a planned job, held by id as
    `batchtier.run_batch_tier` holds them for the whole batch run."""
    from batchrun.planning.manifest import iter_records
    from batchrun.planning.plan import MANIFEST_NAME

    spec = harness.write_job(work, f"records-{requests}", requests, "http://127.0.0.1:9", limits={})
    harness.plan(spec)
    tracemalloc.start()
    records = {record.request_id: record for record in iter_records(harness.output_dir(spec) / MANIFEST_NAME)}
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    if len(records) != requests:
        raise RuntimeError(f"expected {requests} pending records, got {len(records)}")
    return held / 1e6


def one_round(work: Path, requests: int, plain_url: str, padded_url: str, running_s: float) -> dict[str, dict]:
    figures = {"plain": batch_collect(work, "collect", requests, plain_url, running_s)}
    figures["padded"] = batch_collect(work, "collect-padded", requests, padded_url, running_s)
    figures["sync"] = sync_run(work, requests, plain_url)
    figures["sync"]["lines"] = requests
    return figures


def ratio(one_round: dict[str, dict], key: str) -> float:
    """The collect's lines per `key` (seconds, CPU seconds) over the synchronous run's, in one round."""
    collect, sync = one_round["plain"], one_round["sync"]
    return (collect["lines"] / collect[key]) / (sync["lines"] / sync[key])


def summary(requests: int, pad: int, rounds: list[dict[str, dict]]) -> dict:
    def med(kind: str, key: str) -> float:
        return harness.median([r[kind][key] for r in rounds])

    rate = {kind: harness.median([r[kind]["lines"] / r[kind]["seconds"] for r in rounds])
            for kind in ("plain", "padded", "sync")}
    cpu_rate = {kind: harness.median([r[kind]["lines"] / r[kind]["cpu_seconds"] for r in rounds])
                for kind in ("plain", "padded", "sync")}
    return {
        "requests": requests, "pad_bytes": pad, "runs": len(rounds),
        "lines_per_s": {"collect": round(rate["plain"]), "collect_padded": round(rate["padded"]),
                        "sync_run": round(rate["sync"])},
        "lines_per_cpu_s": {"collect": round(cpu_rate["plain"]), "collect_padded": round(cpu_rate["padded"]),
                            "sync_run": round(cpu_rate["sync"])},  # steadier than wall time on a busy machine
        "collect_vs_sync": round(harness.median([ratio(r, "seconds") for r in rounds]), 2),
        "collect_vs_sync_cpu": round(harness.median([ratio(r, "cpu_seconds") for r in rounds]), 2),
        "peak_rss_mb": {"collect": round(med("plain", "peak_rss_mb")), "collect_padded": round(med("padded", "peak_rss_mb")),
                        "submit": round(med("plain", "submit_peak_rss_mb")), "sync_run": round(med("sync", "peak_rss_mb"))},
        "padded_over_plain_rss": round(harness.median([r["padded"]["peak_rss_mb"] / r["plain"]["peak_rss_mb"]
                                                        for r in rounds]), 3),
        "results_mb": {"plain": round(rounds[-1]["plain"]["results_mb"], 3),
                       "padded": round(rounds[-1]["padded"]["results_mb"], 3)},
        "all_runs": [{kind: {k: round(v, 2) for k, v in r[kind].items()} for kind in r} for r in rounds],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--pad", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--running-s", type=float, default=30.0,
                        help="the simulator's batch clock: longer than a submitting run, so it collects nothing")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--records", type=int, nargs="*", default=[10_000, 100_000],
                        help="request counts at which to weigh the pending records a batch run holds")
    args = parser.parse_args(argv)
    work = harness.work_dir(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rounds = []
    with harness.simulator_server(faults=write_faults(work, 0, args.running_s)) as plain, \
            harness.simulator_server(faults=write_faults(work, args.pad, args.running_s)) as padded:
        for run in range(args.runs):
            rounds.append(one_round(work, args.requests, plain.url, padded.url, args.running_s))
            print(f"run {run + 1}: " + json.dumps({k: {n: round(v, 2) for n, v in f.items()}
                                                   for k, f in rounds[-1].items()}), flush=True)
    held = {str(n): round(pending_records_mb(work, n), 2) for n in args.records}
    harness.report("batch_collect", {**summary(args.requests, args.pad, rounds), "pending_records_mb": held})


if __name__ == "__main__":
    main()
