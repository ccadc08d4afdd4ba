"""A pool of keys: one key against three, each key limited on its own by the simulator, side by side.

    python bench/key_pool.py [--requests 300] [--per-key-rpm 600] [--rounds 2]

The simulator (a real server on 127.0.0.1) counts `--per-key-rpm` requests per sliding minute for each
API key on its own (faults file `limits: {requests_per_minute: N, per_key: true}`), as Google does for
keys of different projects. The job names each key's limit (`api_key_env: [{env: K, requests_per_minute:
N}, ...]`), so each key's limiter paces at it. Each round runs the same job with one key, then with
three, against a fresh simulator, and reads the simulator's request log: the rate of 200s from the first
to the last, the 429s, and how many requests each key carried. The figure to compare is the ratio of
the two rates measured in the same round (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import harness

KEYS = {"BENCH_KEY": harness.FAKE_KEY, "BENCH_KEY_2": "bench-key-456", "BENCH_KEY_3": "bench-key-789"}
CONCURRENCY = 32


@contextlib.contextmanager
def simulator(work: Path, per_key_rpm: int, log: Path) -> Iterator[str]:
    """`batchrun simulate` counting `per_key_rpm` per key, logging every request to `log`; yields its URL."""
    faults = work / "per-key.yaml"
    faults.write_text(json.dumps({"limits": {"requests_per_minute": per_key_rpm, "per_key": True}}))
    log.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "batchrun", "simulate", "--port", "0", "--faults", str(faults),
                             "--request-log", str(log)], stdout=subprocess.PIPE, text=True, cwd=work)
    try:
        line = proc.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"the simulator did not start: {line!r}")
        yield line.rsplit(" ", 1)[1].strip()
    finally:
        harness.stop(proc, signal.SIGTERM)


def pool_spec(work: Path, name: str, url: str, requests: int, keys: int, per_key_rpm: int) -> Path:
    spec = harness.write_job(work, name, requests, url, limits={"concurrency": CONCURRENCY})
    job = json.loads(spec.read_text())
    job["request"]["generation_config"] = {"maxOutputTokens": 2048}  # room for the simulator's thinking tokens
    job["provider"]["api_key_env"] = [{"env": env, "requests_per_minute": per_key_rpm} for env in list(KEYS)[:keys]]
    spec.write_text(json.dumps(job, indent=1))
    return spec


def one_run(work: Path, keys: int, requests: int, per_key_rpm: int) -> dict:
    log = work / f"requests-{keys}.jsonl"
    with simulator(work, per_key_rpm, log) as url:
        spec = pool_spec(work, f"keys-{keys}", url, requests, keys, per_key_rpm)
        harness.reset_results(spec)
        harness.plan(spec)
        figures = harness.run_job(spec)
        harness.check_run(figures)
    lines = [json.loads(raw) for raw in log.read_text().splitlines()]
    generate = [line for line in lines if line["rpc"] == "generateContent"]
    ok_times = sorted(line["t"] for line in generate if line["outcome"] == "ok")
    span = ok_times[-1] - ok_times[0]
    outcomes = Counter(line["outcome"] for line in generate)
    by_key = Counter(line.get("key") for line in generate if line["outcome"] == "ok")
    return {"keys": keys, "ok_per_s": (len(ok_times) - 1) / span if span > 0 else float("nan"),
            "ok": outcomes["ok"], "rate_limited": outcomes["rate_limited"], "run_s": round(figures.seconds, 2),
            "ok_by_key": sorted(by_key.values(), reverse=True)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--per-key-rpm", type=int, default=600, help="the simulator's limit for each key")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args(argv)
    work = harness.work_dir(args.work)
    os.environ.update(KEYS)  # the run's child process reads every key of the pool from its environment
    rounds = []
    for number in range(1, args.rounds + 1):
        one, three = (one_run(work, keys, args.requests, args.per_key_rpm) for keys in (1, 3))
        ratio = three["ok_per_s"] / one["ok_per_s"]
        rounds.append({"one_key": one, "three_keys": three, "ratio": round(ratio, 3)})
        for run in (one, three):
            print(f"round {number}, {run['keys']} key(s): {run['ok_per_s']:.2f} ok/s, {run['rate_limited']} 429s, "
                  f"per key {run['ok_by_key']}, run {run['run_s']} s", flush=True)
        print(f"round {number}: three keys / one key = {ratio:.2f}", flush=True)
    harness.report("key-pool", {
        "requests": args.requests, "per_key_rpm": args.per_key_rpm, "concurrency": CONCURRENCY,
        "ratio_median": round(harness.median([r["ratio"] for r in rounds]), 3),
        "rounds": [{**r, "one_key": _rounded(r["one_key"]), "three_keys": _rounded(r["three_keys"])} for r in rounds],
    })


def _rounded(run: dict) -> dict:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in run.items()}


if __name__ == "__main__":
    main()
