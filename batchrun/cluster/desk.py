"""The limiter desk: the job's one limiter, shared by every worker of a cluster (a Ray actor).

Inputs: lease requests (a worker and what each of its waiting requests needs: tokens, images) and
reports (permits given back, with what each reply taught; a server delay; a pause). Output: grant
numbers, a prefix of each lease asked for. Invariants:
- every grant passes through one `Limiter`: the job's requests/tokens/images per minute and its
  concurrency hold for the whole cluster, and a 429 any worker saw slows every worker;
- a lease returns at least one grant (waiting for it as long as the limits say), and with it every
  further grant the limits allow at once, none that needs a wait: a lease never holds a grant back
  (a held grant would reach the server in a burst), and where the limits let grants come in bunches
  (high rates, the buckets' burst, no rpm) a worker's grant path costs one remote call per bunch;
- a worker that died (`forget`) gives back every permit it held, so its slots are not lost;
- it holds the job's budget too (`budget.BudgetBook`): workers reserve worst cases before they send and
  settle them after, so the cap holds for the whole cluster, and a lost worker's reservations are released.
Plain async code on anyio: tested without Ray, on a fake clock.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from batchrun.cluster.budget import BudgetBook, BudgetLimits, Reserved, Settlement
from batchrun.records import Headroom
from batchrun.running.clock import Clock, MonotonicClock
from batchrun.running.limiter import Limiter, Permit

# A grant reaches the server later than in one process, by a remote call and another process's event
# loop, and that delay varies: a configured rpm is paced 0.5% lower on a cluster (on top of the limiter's
# PACE_FRACTION), so the spread doesn't put a 21st request into a strict one-second window. Measured
# with bench/ray_limit.py (4 workers, 20 req/s), side by side at load 1.5-1.8: 0.5% lower, 19.06 req/s
# (95.3%) in each of 3 runs, no 429; 1% lower, 18.97 (94.8%); and earlier, at load 4-7, paced as one
# process, 18.28 req/s with 1.5% 429s in one run of two (bench/RESULTS.md).
CLUSTER_PACE = 0.995


def _paced(requests_per_minute: float | None) -> float | None:
    return None if requests_per_minute is None else requests_per_minute * CLUSTER_PACE


@dataclass(frozen=True, slots=True)
class DeskLimits:
    """The job's limits, for the whole cluster."""

    concurrency: int
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    images_per_minute: float | None = None


@dataclass(frozen=True, slots=True)
class Want:
    """What one waiting request needs of a grant."""

    tokens: int = 0
    images: int = 0


@dataclass(frozen=True, slots=True)
class Return:
    """A grant given back: unused, or with what its reply taught."""

    number: int
    actual_tokens: int | None = None
    rate_limited: bool = False
    headroom: Headroom | None = None


class LimiterDesk:
    """One `Limiter` behind lease and report calls; see the module docstring."""

    def __init__(self, limits: DeskLimits, clock: Clock | None = None, budget: BudgetLimits | None = None) -> None:
        self._limits, self._clock = limits, clock or MonotonicClock()
        self.budget = BudgetBook(budget or BudgetLimits())  # uncapped: reservations always pass
        self._limiter: Limiter | None = None  # made on the event loop that serves the calls
        self._held: dict[int, tuple[str, Permit]] = {}
        self.leases = self.grants = 0

    @property
    def limiter(self) -> Limiter:
        if self._limiter is None:
            limits = self._limits
            self._limiter = Limiter(
                concurrency=limits.concurrency, requests_per_minute=_paced(limits.requests_per_minute),
                tokens_per_minute=limits.tokens_per_minute, images_per_minute=limits.images_per_minute,
                clock=self._clock, unpaced_until_429=True,
            )
        return self._limiter

    async def lease(self, worker: str, wants: list[Want]) -> list[int]:
        """Grant numbers for a prefix of `wants`: the first as soon as the limits allow, the rest only if
        they are granted without a wait."""
        if not wants:
            return []
        self.leases += 1
        numbers = [await self._grant(worker, wants[0])]
        async with anyio.create_task_group() as at_once:
            # The canceller runs at this task's first wait: the limiter's fast path (a free slot, room
            # in every bucket) grants without yielding, so only grants that need no wait get through.
            at_once.start_soon(_cancel, at_once.cancel_scope)
            for want in wants[1:]:
                numbers.append(await self._grant(worker, want))
            at_once.cancel_scope.cancel()
        return numbers

    async def _grant(self, worker: str, want: Want) -> int:
        permit = await self.limiter.acquire(tokens=want.tokens, images=want.images)
        self.grants += 1
        self._held[permit.number] = (worker, permit)
        return permit.number

    async def report(self, returns: list[Return], hold_back_s: float | None = None,
                     pause: tuple[float, str] | None = None) -> None:
        """Take permits back; hold every worker back for a server delay (when the limiter says so) or a pause."""
        for back in returns:
            held = self._held.pop(back.number, None)
            if held is not None:
                self.limiter.release(held[1], actual_tokens=back.actual_tokens, rate_limited=back.rate_limited,
                                     headroom=back.headroom)
        if hold_back_s is not None:
            self.limiter.hold_back(hold_back_s)
        if pause is not None:
            self.limiter.pause_all(*pause)

    async def reserve(self, worker: str, worsts: list[float | None]) -> Reserved:
        """Reserve budget for a prefix of `worsts`, or say why the run stops (`BudgetBook.reserve`)."""
        return await self.budget.reserve(worker, worsts)

    async def settle(self, worker: str, settlements: list[Settlement]) -> None:
        """Give reservations back, with what their requests cost."""
        self.budget.settle(worker, settlements)

    async def forget(self, worker: str) -> int:
        """Give back every permit `worker` holds (it died), and its budget reservations; how many permits."""
        numbers = [number for number, (holder, _) in self._held.items() if holder == worker]
        await self.report([Return(number) for number in numbers])
        self.budget.forget(worker)
        return len(numbers)

    async def spending(self) -> tuple[float, float]:
        """The cluster's spend and what is reserved now."""
        return self.budget.account.spent_usd, self.budget.account.reserved_usd

    async def counts(self) -> tuple[int, int]:
        """Grants made, and the lease calls they were made in."""
        return self.grants, self.leases

    async def in_flight(self) -> int:
        """Grants out, across the cluster."""
        return self.limiter.in_flight


async def _cancel(scope: anyio.CancelScope) -> None:
    scope.cancel()
