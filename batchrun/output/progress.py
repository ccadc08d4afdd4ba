"""Progress of a run: counters the runner bumps, and two displays that read them.

The counters are their own object (not the limiter's, not the sink's). The rich display refreshes a
live panel on a terminal; the plain one prints a status line every N seconds for cron and CI logs.
While every sender is paused (a 429 storm, the server's retryDelay), both say so, why, and for how
long; the rate and the ETA count sending time only, so a pause does not stretch them.
"""

from __future__ import annotations

import collections
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO


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
    pause_reason: str | None = None  # of the current (or last) pause of every sender
    paused_until: float = -math.inf  # on `clock`
    parked_until_wall: float | None = None  # a park's end, unix seconds: the pause is a spent quota's
    _pause_started: float = field(default=0.0, repr=False)
    _paused_before_s: float = field(default=0.0, repr=False)  # pauses ended before the current one

    @property
    def finished(self) -> int:
        return self.ok + self.blocked + self.invalid + self.failed

    def count(self, status: str) -> None:
        setattr(self, status, getattr(self, status) + 1)

    def pause(self, seconds: float, reason: str) -> None:
        """Every sender is held back `seconds` from now, for `reason` (a longer pause set stands)."""
        now = self.clock()
        if self.paused_until <= now:  # a new pause, not the extension of one
            self._paused_before_s += self._pause_span(now)
            self._pause_started = now
        self.paused_until = max(self.paused_until, now + seconds)
        self.pause_reason = reason

    def park(self, seconds: float, until_wall: float) -> None:
        """Every sender is held back until a spent quota resets, `seconds` from now (`until_wall` unix s)."""
        self.pause(seconds, "quota")
        self.parked_until_wall = max(self.parked_until_wall or 0.0, until_wall)

    def parked(self) -> bool:
        """Whether the current pause is a park (waiting for a quota's reset)."""
        return self.parked_until_wall is not None and self.pause_left_s() > 0 and self.pause_reason == "quota"

    def pause_left_s(self) -> float:
        """Seconds until sending resumes (0 when not paused)."""
        return max(0.0, self.paused_until - self.clock())

    def paused_s(self) -> float:
        """Seconds spent paused since the start."""
        return self._paused_before_s + self._pause_span(self.clock())

    def _pause_span(self, now: float) -> float:
        return max(0.0, min(now, self.paused_until) - self._pause_started)

    def sending_s(self) -> float:
        """Seconds since the start, pauses left out."""
        return self.clock() - self.started - self.paused_s()

    def rate(self) -> float:
        """Finished requests per second of sending (pauses left out)."""
        sending = self.sending_s()
        return self.finished / sending if sending > 0 else 0.0

    def eta_s(self) -> float | None:
        """What is left at the sending rate, after what is left of a pause."""
        rate = self.rate()
        left = self.total - self.finished
        return self.pause_left_s() + left / rate if rate > 0 else None

    def pause_text(self) -> str | None:
        """`paused: rate limited, resuming in 42 s (REASON)` while paused, `parked until 07:00 (quota)` while
        waiting for a spent quota's reset, else None."""
        left = self.pause_left_s()
        if left <= 0:
            return None
        if self.parked():
            return parked_text(self.parked_until_wall or 0.0)
        return paused_text(left, self.pause_reason)

    def line(self) -> str:
        eta = self.eta_s()
        errors = " ".join(f"{k}={v}" for k, v in sorted(self.errors.items())) or "none"
        pause = self.pause_text()
        return (
            (f"{pause} | " if pause else "") +
            f"done {self.finished:,}/{self.total:,} (ok {self.ok:,} blocked {self.blocked:,} "
            f"invalid {self.invalid:,} failed {self.failed:,}) in flight {self.in_flight} | "
            f"{self.rate():.1f} req/s | errors {errors} | tokens {self.tokens:,} | "
            f"spend ${self.prior_spend_usd + self.spend_usd:,.4f} | eta {_duration(eta)}"
        )


def paused_text(left_s: float, reason: str | None) -> str:
    """`paused: rate limited, resuming in 42 s (REASON)`."""
    return f"paused: rate limited, resuming in {math.ceil(left_s)} s ({reason or 'the server asked to wait'})"


def parked_text(until_wall: float) -> str:
    """`parked until 07:00 (quota)`, in local time."""
    return f"parked until {time.strftime('%H:%M', time.localtime(until_wall))} (quota)"


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
        pause = p.pause_text()
        if pause:
            label = "parked" if p.parked() else "paused"
            table.add_row(label, pause.removeprefix("paused: ").removeprefix("parked "))
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
