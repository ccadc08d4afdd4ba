"""Overhead by provider kind: the gemini-kind and the openai-kind job side by side, concurrency 64.

    python bench/overhead_kinds.py [--requests 20000] [--rounds 5]

Two canned servers, one per reply shape (nginx when installed, else bench/canned_server.py): a
generateContent reply for the gemini job, a chat completion with the same text and token counts for
the openai job. The jobs differ in `provider.kind` alone (same model, prompts, options, limits). Each
round runs both, `batchrun run` end to end as in bench/overhead.py, in alternating order (gemini first
in odd rounds, openai first in even ones) so that drift in the machine's load falls on both alike.
Prints, as one JSON line, the median req/s of each kind, the ratio openai/gemini of the medians and
the median of the per-round ratios; and each kind's median CPU time per request (the runner process's
own user + system time over its requests), which a loaded machine sways far less than wall time.
"""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import harness
from overhead import CONCURRENCY, checked_run

KINDS = ("gemini", "openai")


def round_order(round_index: int) -> tuple[str, ...]:
    """gemini first in even-indexed rounds, openai first in odd ones."""
    return KINDS if round_index % 2 == 0 else KINDS[::-1]


def planned_jobs(work: Path, requests: int, servers: dict[str, harness.Server]) -> dict[str, Path]:
    """One planned spec per kind, each pointed at its own server."""
    specs = {}
    for kind, server in servers.items():
        specs[kind] = harness.write_job(work, f"overhead-{kind}", requests, server.url,
                                        limits={"concurrency": CONCURRENCY}, kind=kind)
        harness.plan(specs[kind])
    return specs


@dataclass
class KindRuns:
    """One kind's figures, a value per round: req/s (wall, spawn to exit) and CPU µs per request."""

    rates: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)

    def add(self, figures: harness.RunFigures, requests: int) -> None:
        self.rates.append(requests / figures.seconds)
        self.cpu_us.append(figures.cpu_seconds / requests * 1e6)


def measure(specs: dict[str, Path], requests: int, rounds: int) -> dict[str, KindRuns]:
    """Every kind's figures in every round, run alternately."""
    runs = {kind: KindRuns() for kind in KINDS}
    for index in range(rounds):
        for kind in round_order(index):
            runs[kind].add(checked_run(specs[kind], requests), requests)
        gemini, openai = runs["gemini"], runs["openai"]
        print(f"round {index + 1}: gemini {gemini.rates[-1]:,.0f} req/s {gemini.cpu_us[-1]:.0f} µs CPU/req, "
              f"openai {openai.rates[-1]:,.0f} req/s {openai.cpu_us[-1]:.0f} µs CPU/req", flush=True)
    return runs


def figures(runs: dict[str, KindRuns]) -> dict:
    """Medians per kind, the ratio openai/gemini of the medians, and the median of the per-round ratios."""
    rates = {kind: harness.median(r.rates) for kind, r in runs.items()}
    cpu = {kind: harness.median(r.cpu_us) for kind, r in runs.items()}
    gemini, openai = runs["gemini"], runs["openai"]
    return {
        "requests_per_s": {kind: round(v, 1) for kind, v in rates.items()},
        "cpu_us_per_request": {kind: round(v, 1) for kind, v in cpu.items()},
        "all_runs": {kind: [round(x, 1) for x in r.rates] for kind, r in runs.items()},
        "all_cpu_us": {kind: [round(x, 1) for x in r.cpu_us] for kind, r in runs.items()},
        "ratio_openai_to_gemini": round(rates["openai"] / rates["gemini"], 3),
        "median_round_ratio": round(harness.median([o / g for g, o in zip(gemini.rates, openai.rates, strict=True)]), 3),
        # CPU per request, gemini over openai: a throughput ratio, so that above 1 means openai is cheaper
        "cpu_ratio_gemini_to_openai": round(cpu["gemini"] / cpu["openai"], 3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--no-nginx", action="store_true", help="use the aiohttp canned server")
    args = parser.parse_args(argv)
    work = harness.work_dir(args.work)
    with contextlib.ExitStack() as stack:
        servers = {kind: stack.enter_context(harness.text_server(not args.no_nginx, kind)) for kind in KINDS}
        runs = measure(planned_jobs(work, args.requests, servers), args.requests, args.rounds)
    harness.report("overhead_kinds", {
        "server": servers["gemini"].name, "requests": args.requests, "concurrency": CONCURRENCY,
        "rounds": args.rounds, "reply_bytes": {kind: len(harness.CANNED_REPLIES[kind]()) for kind in KINDS},
        **figures(runs),
    })


if __name__ == "__main__":
    main()
