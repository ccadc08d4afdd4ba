"""The limiter desk: the job's one limiter, shared by every worker of a cluster (a Ray actor).

Inputs: lease requests (a worker and what each of its waiting requests needs: tokens, images) and
reports (permits given back, with what each reply taught; a server delay; a pause; a key that failed).
Output: grants (a number, and the key to send with), a prefix of each lease asked for. Invariants:
- every grant passes through one `Limiter`: the job's requests/tokens/images per minute and its
  concurrency hold for the whole cluster, and a 429 any worker saw slows every worker;
- a lease returns at least one grant (waiting for it as long as the limits say), and with it every
  further grant the limits allow at once, none that needs a wait: a lease never holds a grant back
  (a held grant would reach the server in a burst), and where the limits let grants come in bunches
  (high rates, the buckets' burst, no rpm) a worker's grant path costs one remote call per bunch;
- a worker that died (`forget`) gives back every permit it held, so its slots are not lost;
- with a key pool, it holds each key's limiter state (`deskkeys.DeskKeys`): a grant names the key to
  send with, chosen as one process chooses; the cluster's concurrency stays the job's; a key a worker
  saw fail is dropped or set aside for every worker, and the news goes back with the next report;
- it holds the job's budget too (`budget.BudgetBook`): workers reserve worst cases before they send and
  settle them after, so the cap holds for the whole cluster, and a lost worker's reservations are released.
Plain async code on anyio: tested without Ray, on a fake clock.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from batchrun.cluster.budget import BudgetBook, BudgetLimits, Reserved, Settlement
from batchrun.cluster.deskkeys import Aside, DeskKeys, KeyLimits, KeyNews
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
    keys: tuple[KeyLimits, ...] = ()  # a pool of two or more keys: each key's limits (the job's above then unused)


@dataclass(frozen=True, slots=True)
class Grant:
    """A right to send one request (`number`), with the key of the pool to send it with (its index)."""

    number: int
    key: int = 0


@dataclass(slots=True)
class _Held:
    worker: str
    permit: Permit  # of the cluster's limiter: its concurrency (and, with one key, its rates)
    key: int = 0
    key_permit: Permit | None = None  # of the key's limiter, with a key pool


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
        self._keys: DeskKeys | None = None
        self._held: dict[int, _Held] = {}
        self.leases = self.grants = 0

    @property
    def limiter(self) -> Limiter:
        """The cluster's limiter: the job's limits; with a key pool, its concurrency alone."""
        if self._limiter is None:
            self._limiter, self._keys = _limiters(self._limits, self._clock)
        return self._limiter

    @property
    def keys(self) -> DeskKeys | None:
        """The key pool's state (None: one key)."""
        if self._limiter is None:
            self._limiter, self._keys = _limiters(self._limits, self._clock)
        return self._keys

    async def lease(self, worker: str, wants: list[Want]) -> list[Grant]:
        """Grants for a prefix of `wants`: the first as soon as the limits allow, the rest only if they are
        granted without a wait."""
        if not wants:
            return []
        self.leases += 1
        grants = [await self._grant(worker, wants[0])]
        async with anyio.create_task_group() as at_once:
            # The canceller runs at this task's first wait: the limiter's fast path (a free slot, room
            # in every bucket) grants without yielding, so only grants that need no wait get through.
            at_once.start_soon(_cancel, at_once.cancel_scope)
            for want in wants[1:]:
                grants.append(await self._grant(worker, want))
            at_once.cancel_scope.cancel()
        return grants

    async def _grant(self, worker: str, want: Want) -> Grant:
        permit = await self.limiter.acquire(tokens=want.tokens, images=want.images)
        held = _Held(worker, permit)
        if self.keys is not None:
            try:
                held.key, held.key_permit = await self.keys.acquire(want.tokens, want.images)
            except BaseException:  # cancelled while the keys' limits made it wait: the slot goes back
                self.limiter.release(permit)
                raise
        self.grants += 1
        self._held[permit.number] = held
        return Grant(permit.number, held.key)

    async def report(self, returns: list[Return], hold_backs: dict[int, float] | None = None,
                     pause: tuple[float, str] | None = None, asides: list[Aside] | None = None) -> KeyNews | None:
        """Take permits back; hold back a key's senders for a server delay (when its limiter says so), or every
        sender for a pause; drop or set aside the keys that failed. With a key pool: the news of its keys."""
        for back in returns:
            held = self._held.pop(back.number, None)
            if held is not None:
                self._release(held, back)
        for key, seconds in (hold_backs or {}).items():
            if self.keys is None:
                self.limiter.hold_back(seconds)
            else:
                self.keys.hold_back(key, seconds)
        if pause is not None:
            (self.keys or self.limiter).pause_all(*pause)
        if self.keys is None:
            return None
        self.keys.set_aside(asides or [])
        return self.keys.news()

    async def key_warnings(self) -> list[str]:
        """Every warning the key pool gave this run (none with one key)."""
        return [] if self.keys is None else list(self.keys.issued)

    def _release(self, held: _Held, back: Return) -> None:
        """What the reply taught goes to the limiter that holds the rates: the key's with a pool."""
        if self.keys is None or held.key_permit is None:
            self.limiter.release(held.permit, actual_tokens=back.actual_tokens, rate_limited=back.rate_limited,
                                 headroom=back.headroom)
            return
        self.limiter.release(held.permit)
        self.keys.release(held.key, held.key_permit, actual_tokens=back.actual_tokens,
                          rate_limited=back.rate_limited, headroom=back.headroom)

    async def reserve(self, worker: str, worsts: list[float | None]) -> Reserved:
        """Reserve budget for a prefix of `worsts`, or say why the run stops (`BudgetBook.reserve`)."""
        return await self.budget.reserve(worker, worsts)

    async def settle(self, worker: str, settlements: list[Settlement]) -> None:
        """Give reservations back, with what their requests cost."""
        self.budget.settle(worker, settlements)

    async def forget(self, worker: str) -> int:
        """Give back every permit `worker` holds (it died), and its budget reservations; how many permits."""
        numbers = [number for number, held in self._held.items() if held.worker == worker]
        await self.report([Return(number) for number in numbers])
        self.budget.forget(worker)
        return len(numbers)

    async def budget_counts(self) -> tuple[int, int]:
        """Reservations made, and the reserve calls they were made in."""
        return self.budget.reservations, self.budget.calls

    async def spending(self) -> tuple[float, float]:
        """The cluster's spend and what is reserved now."""
        return self.budget.account.spent_usd, self.budget.account.reserved_usd

    async def counts(self) -> tuple[int, int]:
        """Grants made, and the lease calls they were made in."""
        return self.grants, self.leases

    async def in_flight(self) -> int:
        """Grants out, across the cluster."""
        return self.limiter.in_flight


def _limiters(limits: DeskLimits, clock: Clock) -> tuple[Limiter, DeskKeys | None]:
    """The cluster's limiter, and with a key pool each key's (the cluster's then holds the concurrency alone)."""
    if limits.keys:
        gate = Limiter(concurrency=limits.concurrency, clock=clock, unpaced_until_429=True)  # never told of a 429
        return gate, DeskKeys(limits.keys, limits.concurrency, clock, CLUSTER_PACE)
    limiter = Limiter(concurrency=limits.concurrency, requests_per_minute=_paced(limits.requests_per_minute),
                      tokens_per_minute=limits.tokens_per_minute, images_per_minute=limits.images_per_minute,
                      clock=clock, unpaced_until_429=True)
    return limiter, None


async def _cancel(scope: anyio.CancelScope) -> None:
    scope.cancel()
