"""Progress: the status line and the live panel say when every sender is paused, why and for how long;
the rate and the ETA count sending time only."""

from __future__ import annotations

import io
import time

from rich.console import Console

from batchrun.output.progress import PlainDisplay, Progress, RichDisplay

STORM = "a 429 storm (12 of the last 20 replies); the server asked for 45s"


class Clock:
    """Seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def progress_at(clock: Clock, *, total: int = 100, ok: int = 0) -> Progress:
    return Progress(total=total, ok=ok, started=0.0, clock=clock)


def test_the_line_says_it_is_paused_why_and_for_how_long() -> None:
    clock = Clock()
    progress = progress_at(clock)
    clock.now = 5.0
    progress.pause(45.0, STORM)
    clock.now = 8.5
    assert progress.line().startswith(f"paused: rate limited, resuming in 42 s ({STORM}) | done 0/100 (ok 0 ")


def test_the_line_says_nothing_of_a_pause_that_is_over() -> None:
    clock = Clock()
    progress = progress_at(clock)
    progress.pause(45.0, STORM)
    clock.now = 45.0
    assert progress.pause_text() is None and progress.line().startswith("done 0/100")


def test_a_pause_is_not_counted_in_the_rate_nor_does_it_stretch_the_eta() -> None:
    clock = Clock()
    progress = progress_at(clock, ok=50)
    clock.now = 10.0  # 50 done in 10 s of sending: 5/s, 10 s to go
    assert (progress.rate(), progress.eta_s()) == (5.0, 10.0)
    progress.pause(30.0, STORM)
    clock.now = 25.0  # half way through the pause: its 15 s left, then the same 10 s of sending
    assert (progress.rate(), progress.eta_s()) == (5.0, 25.0)
    clock.now = 40.0  # the pause is over: as before it
    assert (progress.rate(), progress.eta_s()) == (5.0, 10.0)
    assert "| 5.0 req/s |" in progress.line() and progress.line().endswith("eta 0m10s")


def test_a_pause_extended_while_it_lasts_counts_once_and_pauses_add_up() -> None:
    clock = Clock()
    progress = progress_at(clock)
    progress.pause(10.0, STORM)
    clock.now = 4.0
    progress.pause(10.0, STORM)  # until 14, not 4 + 10 more on top of the first
    progress.pause(2.0, STORM)  # a shorter one does not cut it
    clock.now = 20.0
    assert progress.paused_s() == 14.0
    progress.pause(3.0, "the server asked to wait")
    clock.now = 21.0
    assert progress.paused_s() == 15.0 and progress.pause_left_s() == 2.0
    assert progress.pause_text() == "paused: rate limited, resuming in 2 s (the server asked to wait)"


def test_the_plain_display_prints_the_pause_in_its_line() -> None:
    clock = Clock()
    progress = progress_at(clock)
    progress.pause(90.0, STORM)
    stream = io.StringIO()
    PlainDisplay(progress, every=30.0, stream=stream).refresh()
    assert stream.getvalue().startswith(f"batchrun: paused: rate limited, resuming in 90 s ({STORM}) | done 0/100")


def test_the_live_panel_has_a_paused_row_while_paused() -> None:
    clock = Clock()
    progress = progress_at(clock)
    display = RichDisplay(progress)
    assert "paused" not in rendered(display)
    progress.pause(90.0, STORM)
    assert f"paused rate limited, resuming in 90 s ({STORM})" in " ".join(rendered(display).split())


def rendered(display: RichDisplay) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(display._render())
    return console.file.getvalue()


def test_a_park_says_parked_until_the_local_reset_time_and_the_eta_counts_sending_time_only() -> None:
    reset = time.strftime("%H:%M", time.localtime(1_800_003_600.0))
    clock = Clock()
    progress = progress_at(clock, ok=50)
    clock.now = 10.0  # 5/s of sending, 10 s to go
    progress.park(3600.0, until_wall=1_800_003_600.0)
    assert progress.parked() and progress.pause_text() == f"parked until {reset} (quota)"
    assert progress.line().startswith(f"parked until {reset} (quota) | done 50/100")
    clock.now = 1810.0
    assert (progress.rate(), progress.eta_s()) == (5.0, 1810.0)  # the rest of the park, then 10 s
    clock.now = 3610.0
    assert (progress.parked(), progress.pause_text(), progress.eta_s()) == (False, None, 10.0)


def test_the_live_panel_has_a_parked_row_while_parked() -> None:
    clock = Clock()
    progress = progress_at(clock)
    display = RichDisplay(progress)
    progress.park(600.0, until_wall=1_800_003_600.0)
    reset = time.strftime("%H:%M", time.localtime(1_800_003_600.0))
    assert f"parked until {reset} (quota)" in " ".join(rendered(display).split())
