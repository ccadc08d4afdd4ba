"""A budget of input image bytes in flight, whatever the concurrency.

An input image is read, base64-encoded and copied into the request body at send time: a 50 MB photo
costs about 190 MB of memory while its request is in flight, so 64 such requests at once would need
12 GB. Each request with input images holds their size (bytes on disk) from just before it is built
until its reply has arrived; a request waits while the budget is spent. A request larger than the
whole budget goes alone, once nothing else holds any, so no job is ever stuck on one big image.
Waiters are served in arrival order.
"""

from __future__ import annotations

from collections import deque

import anyio

DEFAULT_MB = 256  # `limits.input_image_mb_in_flight`: about 1 GB of memory at the peak


class InputBytesBudget:
    """Counts input image bytes in flight against a capacity; `hold` waits while they would not fit."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        self.peak = 0
        self._waiters: deque[tuple[int, anyio.Event]] = deque()

    def fits(self, amount: int) -> bool:
        return self.in_use == 0 or self.in_use + amount <= self.capacity

    async def hold(self, amount: int) -> None:
        """Take `amount` bytes of the budget, waiting (first come, first served) until they fit."""
        if not self._waiters and self.fits(amount):
            self._take(amount)
            return
        turn = anyio.Event()
        self._waiters.append((amount, turn))
        try:
            await turn.wait()
        except BaseException:
            if (amount, turn) in self._waiters:
                self._waiters.remove((amount, turn))
            elif turn.is_set():  # granted, then cancelled before it could use it
                self.release(amount)
            raise

    def release(self, amount: int) -> None:
        """Give back what `hold` took; wake the waiters that now fit, in order."""
        self.in_use -= amount
        while self._waiters and self.fits(self._waiters[0][0]):
            waiting, turn = self._waiters.popleft()
            self._take(waiting)
            turn.set()

    def _take(self, amount: int) -> None:
        self.in_use += amount
        self.peak = max(self.peak, self.in_use)
