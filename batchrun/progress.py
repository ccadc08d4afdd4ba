"""Progress of a run: counters the runner bumps, and two displays that read them.

The counters are their own object (not the limiter's, not the sink's). The rich display refreshes a
live panel on a terminal; the plain one prints a status line every N seconds for cron and CI logs.
"""

from __future__ import annotations

import collections
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, TextIO


@dataclass
class Progress:
    total: int
    already_done: int = 0
    ok: int = 0
    blocked: int = 0
    invalid: int = 0
    failed: int = 0
    retries: int = 0
    in_flight: int = 0
    tokens: int = 0
    spend_usd: float = 0.0
    prior_spend_usd: float = 0.0
    errors: collections.Counter = field(default_factory=collections.Counter)
    started: float = field(default_factory=time.monotonic)
    clock: Callable[[], float] = time.monotonic

    @property
    def finished(self) -> int:
        return self.ok + self.blocked + self.invalid + self.failed

    def count(self, status: str) -> None:
        setattr(self, status, getattr(self, status) + 1)

    def rate(self) -> float:
        elapsed = self.clock() - self.started
        return self.finished / elapsed if elapsed > 0 else 0.0

    def eta_s(self) -> float | None:
        rate = self.rate()
        left = self.total - self.finished
        return left / rate if rate > 0 else None

    def line(self) -> str:
        eta = self.eta_s()
        errors = " ".join(f"{k}={v}" for k, v in sorted(self.errors.items())) or "none"
        return (
            f"done {self.finished:,}/{self.total:,} (ok {self.ok:,} blocked {self.blocked:,} "
            f"invalid {self.invalid:,} failed {self.failed:,}) in flight {self.in_flight} | "
            f"{self.rate():.1f} req/s | errors {errors} | tokens {self.tokens:,} | "
            f"spend ${self.prior_spend_usd + self.spend_usd:,.4f} | eta {_duration(eta)}"
        )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class PlainDisplay:
    """A status line every `every` seconds (and one at the end)."""

    def __init__(self, progress: Progress, every: float, stream: TextIO = sys.stderr) -> None:
        self.progress, self.every, self.stream = progress, every, stream

    def start(self) -> None:
        pass

    def refresh(self) -> None:
        print(f"batchrun: {self.progress.line()}", file=self.stream, flush=True)

    def stop(self) -> None:
        self.refresh()


class RichDisplay:
    """A live panel on a terminal: a bar with done / total, rate, errors by kind, tokens, spend, ETA."""

    def __init__(self, progress: Progress, every: float = 0.5) -> None:
        from rich.console import Console
        from rich.live import Live

        self.progress, self.every = progress, min(every, 0.5)
        self._live = Live(console=Console(stderr=True), refresh_per_second=4, transient=False)

    def _render(self):
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        p = self.progress
        table = Table.grid(padding=(0, 1))
        table.add_row(ProgressBar(total=max(p.total, 1), completed=p.finished, width=40), f"{p.finished:,}/{p.total:,}")
        table.add_row("status", f"ok {p.ok:,}  blocked {p.blocked:,}  invalid {p.invalid:,}  failed {p.failed:,}  in flight {p.in_flight}")
        table.add_row("rate", f"{p.rate():.1f} req/s   eta {_duration(p.eta_s())}")
        table.add_row("errors", " ".join(f"{k} {v}" for k, v in sorted(p.errors.items())) or "none")
        table.add_row("tokens", f"{p.tokens:,}")
        table.add_row("spend", f"${p.prior_spend_usd + p.spend_usd:,.4f}")
        return table

    def start(self) -> None:
        self._live.start()

    def refresh(self) -> None:
        self._live.update(self._render())

    def stop(self) -> None:
        self.refresh()
        self._live.stop()


class NoDisplay:
    every = 3600.0

    def start(self) -> None: ...
    def refresh(self) -> None: ...
    def stop(self) -> None: ...


def make_display(mode: str, progress: Progress, every: float):
    """auto: rich on a terminal, plain lines otherwise."""
    if mode == "auto":
        mode = "rich" if sys.stderr.isatty() else "plain"
    if mode == "rich":
        return RichDisplay(progress)
    if mode == "plain":
        return PlainDisplay(progress, every)
    return NoDisplay()
