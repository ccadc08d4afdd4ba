"""The configuration probe: the first replies of a run, held back until one shows the endpoint and model work.

Input: each finished exchange, in the order it ended. Output: whether to hold it back, and whether the
held ones prove a configuration error (`tripped`). Invariant: nothing is held once any other final
reply (ok, blocked, a request-specific invalid) has arrived; a `failed` row, or one without an HTTP
status (nothing heard from the server), neither clears nor trips it.
"""

from __future__ import annotations

from batchrun.outcomes import Status
from batchrun.running.saving import Finished


class ConfigProbe:
    """Holds back the first invalid replies of a run until a reply shows the endpoint and model work.

    `needed` 400/404-like replies in a row before any other final reply mean a configuration error:
    every request would get it, and recording them `invalid` would mark a whole catalog for good.
    """

    def __init__(self, needed: int = 3, *, enabled: bool = True) -> None:
        self.needed = needed
        self.held: list[Finished] = []
        self.cleared = not enabled

    def hold(self, done: Finished) -> bool:
        """Whether this finished exchange is held back; the first other final reply clears the probe."""
        reply = done.reply
        if self.cleared or done.status == Status.FAILED or reply.http_status is None:  # nothing heard
            return False
        if reply.may_be_config_error:
            self.held.append(done)
            return True
        self.cleared = True
        return False

    @property
    def tripped(self) -> bool:
        return not self.cleared and len(self.held) >= self.needed

    def release(self) -> list[Finished]:
        held, self.held = self.held, []
        return held
