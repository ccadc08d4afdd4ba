"""The run's spending account: each request's worst case reserved before it is sent, its cost settled after.

Input: what a request may cost at most and what a reply did cost (`RequestPrices`: from the price
catalog in a run, fixed figures in a test), the cap, and what earlier runs spent. Invariants:
- spent + reserved never passes the cap: a request is sent only once its worst case is reserved.
  The worst case is the most text and thinking its reply may spend (`maxOutputTokens`, else the
  model's own output limit: not the estimate's practical ceiling, which a reply may pass), so the
  cap is a hard one. Should a reply still cost more (a model table out of date), it is settled at
  its true cost and the next reservation fails: the run stops, saying so;
- every reservation is settled exactly once, with the actual cost (None: unknown, counted as 0);
- a soft cap (the pilot's projection: `--max-cost-from-projection`) reserves nothing: a request is sent
  only while the spend so far plus what the requests in flight and it are expected to cost (the run's
  average actual cost so far; before any reply, the request's worst case) stays within it. Requests in
  flight finish, so spending may pass a soft cap by a little; never the hard cap;
- without a cap nothing is reserved, and spending is only added up.
"""

from __future__ import annotations

from typing import Protocol

from batchrun.cost.pricing import PriceCatalog, cost_usd, worst_case_cost
from batchrun.records import RequestRecord, TokenEstimate, Usage
from batchrun.tiers import Tier, served_tier

_SLACK_USD = 1e-12  # float sums of reservations: a request that fits exactly is not refused


class RequestPrices(Protocol):
    """What a request may cost at most, and what its reply cost."""

    def worst_case(self, record: RequestRecord) -> float | None: ...

    def cost(self, record: RequestRecord, usage: Usage | None, served: str | None = None) -> float | None: ...


class CatalogPrices:
    """`RequestPrices` from the price catalog at the run's tier; worst cases cached per (model, estimate)."""

    def __init__(self, catalog: PriceCatalog, tier: Tier = Tier.STANDARD) -> None:
        self.catalog = catalog
        self.tier = tier
        self._worst: dict[tuple[str, TokenEstimate], float | None] = {}

    def worst_case(self, record: RequestRecord) -> float | None:
        key = (record.model, record.estimate)
        if key not in self._worst:
            price = self.catalog.lookup(record.model)
            self._worst[key] = worst_case_cost(record.estimate, price, tier=self.asked_tier(record))
        return self._worst[key]

    def cost(self, record: RequestRecord, usage: Usage | None, served: str | None = None) -> float | None:
        """The reply's cost at the tier that served it, else at the tier asked for."""
        if usage is None:
            return None
        tier = served_tier(served) or self.asked_tier(record)
        return cost_usd(usage, self.catalog.price_for(record.model), tier=tier)

    def asked_tier(self, record: RequestRecord) -> Tier:
        """A serviceTier the request's own body names (it is sent as is), else the run's tier."""
        return served_tier(record.estimate.service_tier) or self.tier


class FreePrices:
    """Nothing costs anything, or nothing is known: no reservation ever fails."""

    def worst_case(self, record: RequestRecord) -> float | None:
        return None

    def cost(self, record: RequestRecord, usage: Usage | None, served: str | None = None) -> float | None:
        return None


class SpendingAccount:
    """Spend so far plus worst cases reserved for what is in flight, against an optional cap."""

    def __init__(self, prices: RequestPrices, cap_usd: float | None = None, spent_usd: float = 0.0, *,
                 soft_cap_usd: float | None = None) -> None:
        self.prices = prices
        self.cap_usd = cap_usd
        self.soft_cap_usd = soft_cap_usd
        self.spent_usd = spent_usd
        self.reserved_usd = 0.0
        self.holders = 0  # reservations not yet settled (counted, since float sums never return to 0.0)
        self._capped = cap_usd is not None or soft_cap_usd is not None
        self._settled = 0  # replies settled in this run, and what they cost: the soft cap's average
        self._run_spent = 0.0
        self.soft_refused = False  # the last refusal was the soft cap's

    def worst_case(self, record: RequestRecord) -> float | None:
        """The most `record` can cost (None: unknown)."""
        return self.prices.worst_case(record)

    def cost(self, record: RequestRecord, usage: Usage | None, served: str | None = None) -> float | None:
        """What `record`'s reply cost at the tier that `served` it, else the tier asked for (None: unknown)."""
        return self.prices.cost(record, usage, served)

    def reserve(self, worst: float | None) -> bool:
        """Reserve a worst case; False when it would pass the cap (nothing is reserved then)."""
        if not self._capped:
            return True
        worst = worst or 0.0
        self.soft_refused = not self._soft_fits(worst)
        if self.soft_refused:
            return False
        if self.cap_usd is not None and self.spent_usd + self.reserved_usd + worst > self.cap_usd + _SLACK_USD:
            return False
        self.reserved_usd += worst if self.cap_usd is not None else 0.0
        self.holders += 1
        return True

    def _soft_fits(self, worst: float) -> bool:
        """Whether the spend so far plus what the requests in flight and one more are expected to cost fits the
        soft cap; before any reply, each is expected at its worst case."""
        if self.soft_cap_usd is None:
            return True
        each = self._run_spent / self._settled if self._settled else worst
        return self.spent_usd + (self.holders + 1) * each <= self.soft_cap_usd + _SLACK_USD

    def settle(self, worst: float | None, actual: float | None) -> None:
        """Release a reservation made with `worst` and add what was actually spent."""
        if self._capped:
            self.holders -= 1
            self.reserved_usd = 0.0 if self.holders == 0 else max(0.0, self.reserved_usd - (worst or 0.0))
        self.spent_usd += actual or 0.0
        self._settled += 1
        self._run_spent += actual or 0.0

    def stop_message(self, worst: float | None) -> str:
        """Why the run stops at the cap; when replies cost more than the high bound reserved, what bounds them."""
        if self.soft_refused and self.soft_cap_usd is not None:
            return (f"spent ${self.spent_usd:.4f} of the ${self.soft_cap_usd:.4f} cap from the pilot's projection; "
                    f"the next request is expected to pass it (see `batchrun estimate` for what remains)")
        cap = self.cap_usd or 0.0
        message = f"spent ${self.spent_usd:.4f} of the ${cap:.4f} cap; the next request could cost up to ${worst or 0:.4f}"
        if self.spent_usd > cap + _SLACK_USD:
            message += ("; replies cost more than the worst case reserved for them (the model's output limit in "
                        "batchrun's model table may be out of date): set generationConfig.maxOutputTokens to bound them")
        return message
