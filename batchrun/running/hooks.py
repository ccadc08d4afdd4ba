"""What a run does beside sending: on each tick (flush, live file, progress display), on each reply.

`RunHooks` is what the pool calls; `ProgressTicker` and `ModelStatusWarner` are the hooks a real run
installs. A hook's `OSError` on a tick (the journal's flush or fsync) stops the run for a write error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from batchrun.cost.lifecycle import status_warning
from batchrun.records import ProviderReply
from batchrun.running.clock import Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunHooks:
    """Called by the pool: `on_tick` every `tick_s` of the run's clock, `on_reply` on every reply."""

    on_tick: Callable[[], None] | None = None
    on_reply: Callable[[ProviderReply], None] | None = None
    tick_s: float = 1.0


class _Flushes(Protocol):
    def flush(self) -> None: ...


class _Syncs(Protocol):
    def sync(self) -> None: ...


class _Display(Protocol):
    def refresh(self) -> None: ...


class ProgressTicker:
    """Each tick: hand the journal to the OS and update the live file; refresh the display every `every` s."""

    def __init__(self, *, sink: _Flushes, live: _Syncs, display: _Display, every: float, clock: Clock) -> None:
        self.sink, self.live, self.display, self.clock = sink, live, display, clock
        self.every = getattr(display, "every", every)  # a display knows how often it wants a refresh
        self._last = clock.now()

    def __call__(self) -> None:
        self.sink.flush()
        self.live.sync()
        now = self.clock.now()
        if now - self._last >= self.every:
            self._last = now
            self.display.refresh()


class ModelStatusWarner:
    """Logs once per model version and stage when replies say the model is deprecated or retiring."""

    def __init__(self) -> None:
        self._warned: set[tuple[str | None, str | None, str | None]] = set()

    def __call__(self, reply: ProviderReply) -> None:
        if reply.model_stage is None and reply.retirement_time is None:
            return
        key = (reply.model_version, reply.model_stage, reply.retirement_time)
        if key in self._warned:
            return
        self._warned.add(key)
        line = status_warning(reply.model_version or "the model", reply.model_stage, reply.retirement_time)
        if line:
            log.warning(line)
