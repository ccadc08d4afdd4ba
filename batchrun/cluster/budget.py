"""The cluster's one budget: a `SpendingAccount` the limiter desk holds for every worker.

Inputs: reservation calls (a worker and the worst cases of its requests waiting to be sent, in order)
and settlements (a worker, each request's worst case and what it actually cost). Outputs: how many of
the worst cases asked for were reserved (a prefix), or why the run stops. Invariants:
- spent + reserved never passes the cap, across the cluster: the account is the one a single process
  keeps, fed the same worst cases (the model's output limit, not the estimate's ceiling);
- a reservation that does not fit waits while anything is reserved anywhere (a settlement may make
  room, whichever worker makes it); it is refused, and the run stops for the budget, only when nothing
  is reserved in the whole cluster and it still does not fit;
- a worker holds only the reservations of requests it is sending: a lost worker's (`forget`) are
  released, their cost unknown.
Plain async code on anyio: tested without Ray, on a fake clock.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import anyio

from batchrun.running.account import FreePrices, SpendingAccount


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    """The run's caps and what earlier runs spent (the hard cap, the pilot's soft cap: as one process has them)."""

    cap_usd: float | None = None
    soft_cap_usd: float | None = None
    spent_usd: float = 0.0

    @property
    def capped(self) -> bool:
        return self.cap_usd is not None or self.soft_cap_usd is not None


@dataclass(frozen=True, slots=True)
class Settlement:
    """A reservation given back, with what its request actually cost (None: unknown, or never sent)."""

    worst: float | None
    actual: float | None = None


@dataclass(frozen=True, slots=True)
class Reserved:
    """A reservation call's answer: how many of the worst cases were reserved, or why the run stops."""

    count: int
    refusal: str | None = None


class BudgetBook:
    """The cluster's account, and which worker holds which reservations; see the module docstring."""

    def __init__(self, limits: BudgetLimits) -> None:
        self.account = SpendingAccount(FreePrices(), limits.cap_usd, limits.spent_usd,
                                       soft_cap_usd=limits.soft_cap_usd)
        self._held: dict[str, Counter[float | None]] = {}
        self._changed: anyio.Event | None = None  # made on the event loop that serves the calls
        self.calls = self.reservations = 0

    async def reserve(self, worker: str, worsts: list[float | None]) -> Reserved:
        """Reserve the first worst case (waiting while anything is reserved), then each next one that fits now."""
        if not worsts:
            return Reserved(0)
        self.calls += 1
        while not self.account.reserve(worsts[0]):
            if self.account.holders == 0:
                return Reserved(0, self.account.stop_message(worsts[0]))
            await self._next_change()
        count = 1
        while count < len(worsts) and self.account.reserve(worsts[count]):
            count += 1
        self._held.setdefault(worker, Counter()).update(worsts[:count])
        self.reservations += count
        return Reserved(count)

    def settle(self, worker: str, settlements: list[Settlement]) -> None:
        """Release reservations and add what their requests spent."""
        held = self._held.get(worker, Counter())
        for settlement in settlements:
            if held[settlement.worst] > 0:  # else released already, when the worker was forgotten
                held[settlement.worst] -= 1
                self.account.settle(settlement.worst, settlement.actual)
        self._wake()

    def forget(self, worker: str) -> int:
        """Release every reservation `worker` holds (it died), their cost unknown; how many."""
        held = self._held.pop(worker, Counter())
        for worst in held.elements():
            self.account.settle(worst, None)
        self._wake()
        return held.total()

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def _next_change(self) -> None:
        if self._changed is None:
            self._changed = anyio.Event()
        await self._changed.wait()
