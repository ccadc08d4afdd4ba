"""A cluster worker's budget: the pool's reservations and settlements, kept by the desk's one account.

Inputs: the pool's reserve calls (a request's worst case) and settlements (its worst case and actual
cost); a desk (`desk.LimiterDesk`, in-process or behind a Ray actor handle). Outputs: a reservation or
the reason the run stops, and settlements reported to the desk. Invariants:
- one reserve call is in flight at a time: it carries the worst cases of every request waiting (up to
  `batch_size`), in order, and the desk reserves a prefix of them; the rest ask again;
- one settle call is in flight at a time and carries every settlement made since the last: settlements
  never wait for a reservation, so a worker never holds budget a reply has already freed;
- a worker holds no budget beyond what its requests being sent reserved: nothing is reserved ahead;
- a request cancelled while it waits (a stop) gives a reservation that came for it back unused.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Protocol

import anyio

from batchrun.cluster.budget import Reserved, Settlement

BATCH_SIZE = 64  # worst cases a reserve call asks for, at most


class BudgetDesk(Protocol):
    """What a worker needs of the desk's budget."""

    async def reserve(self, worker: str, worsts: list[float | None]) -> Reserved: ...

    async def settle(self, worker: str, settlements: list[Settlement]) -> None: ...


@dataclass(eq=False)
class _Asker:
    worst: float | None
    answered: anyio.Event
    reserved: bool = False
    refusal: str | None = None
    withdrawn: bool = False


class LeasedBudget:
    """The pool's `SharedBudget` on a worker; serve it (`serve`) while the pool runs."""

    def __init__(self, desk: BudgetDesk, worker: str, *, batch_size: int = BATCH_SIZE) -> None:
        self._desk, self._worker, self._batch_size = desk, worker, batch_size
        self._waiting: deque[_Asker] = deque()
        self._settlements: list[Settlement] = []
        self._wanted = anyio.Event()
        self._to_settle = anyio.Event()
        self.calls = 0  # reserve calls made: the remote calls of the reservation path

    async def reserve(self, worst: float | None) -> str | None:
        """None once the desk reserved `worst`; else why the run stops."""
        asker = _Asker(worst, anyio.Event())
        self._waiting.append(asker)
        self._wanted.set()
        try:
            await asker.answered.wait()
        except BaseException:
            asker.withdrawn = True
            if asker.reserved:
                self.settle(worst, None)
            raise
        return asker.refusal

    def settle(self, worst: float | None, actual: float | None) -> None:
        self._settlements.append(Settlement(worst, actual))
        self._to_settle.set()

    # -- serving --------------------------------------------------------------------------------

    async def serve(self) -> None:
        """Ask for reservations and report settlements, until cancelled."""
        async with anyio.create_task_group() as group:
            group.start_soon(self._reserve_loop)
            group.start_soon(self._settle_loop)

    async def _reserve_loop(self) -> None:
        while True:
            await self._wanted.wait()
            popped = [self._waiting.popleft() for _ in range(min(self._batch_size, len(self._waiting)))]
            asked = [asker for asker in popped if not asker.withdrawn]
            if not popped:
                self._wanted = anyio.Event()
                continue
            if not asked:
                continue
            self.calls += 1
            answer = await self._desk.reserve(self._worker, [asker.worst for asker in asked])
            for asker in asked[:answer.count]:
                self._hand(asker)
            rest = [asker for asker in asked[answer.count:] if not asker.withdrawn]
            if answer.refusal is not None:
                self._refuse(rest + list(self._waiting), answer.refusal)
                continue
            self._waiting.extendleft(reversed(rest))

    def _hand(self, asker: _Asker) -> None:
        if asker.withdrawn:
            self.settle(asker.worst, None)
            return
        asker.reserved = True
        asker.answered.set()

    def _refuse(self, askers: list[_Asker], refusal: str) -> None:
        self._waiting.clear()
        for asker in askers:
            asker.refusal = refusal
            asker.answered.set()

    async def _settle_loop(self) -> None:
        while True:
            await self._to_settle.wait()
            self._to_settle = anyio.Event()
            await self.flush()

    async def flush(self) -> None:
        """Report every settlement not yet reported."""
        settlements, self._settlements = self._settlements, []
        if settlements:
            await self._desk.settle(self._worker, settlements)
