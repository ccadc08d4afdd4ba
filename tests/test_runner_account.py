"""The spending account: reservations against the cap, settled with what a reply cost."""

from __future__ import annotations

import pytest

from batchrun.cost.pricing import PriceCatalog, cost_usd, worst_case_cost
from batchrun.records import RequestRecord, TokenEstimate, Usage
from batchrun.running.account import CatalogPrices, FreePrices, SpendingAccount
from batchrun.tiers import Tier

MODEL = "gemini-2.5-flash"


def record(tier: str | None = None, output_text_max: int = 1000) -> RequestRecord:
    return RequestRecord(request_id="r1", seq=1, model=MODEL, body={}, variables={},
                         estimate=TokenEstimate(input_text=100, output_text_max=output_text_max, service_tier=tier))


def test_reservations_fit_up_to_the_cap_and_no_further() -> None:
    account = SpendingAccount(FreePrices(), cap_usd=1.0, spent_usd=0.25)
    assert account.reserve(0.5) and account.reserve(0.25)  # exactly at the cap still fits
    assert not account.reserve(0.01)
    assert (account.holders, account.reserved_usd) == (2, 0.75)


def test_settling_releases_the_worst_case_and_adds_the_actual_cost() -> None:
    account = SpendingAccount(FreePrices(), cap_usd=1.0)
    account.reserve(0.6)
    account.reserve(0.3)
    account.settle(0.6, 0.1)
    assert (account.holders, account.reserved_usd, account.spent_usd) == (1, pytest.approx(0.3), 0.1)
    account.settle(0.3, None)  # an unknown cost counts as nothing
    assert (account.holders, account.reserved_usd, account.spent_usd) == (0, 0.0, 0.1)


def test_without_a_cap_nothing_is_refused_or_reserved_but_spending_adds_up() -> None:
    account = SpendingAccount(FreePrices())
    assert account.reserve(1e9)
    account.settle(1e9, 0.5)
    assert (account.holders, account.reserved_usd, account.spent_usd) == (0, 0.0, 0.5)


def test_catalog_prices_give_the_worst_case_and_the_tier_price_of_a_reply() -> None:
    catalog = PriceCatalog.load()
    prices = CatalogPrices(catalog)
    usage = Usage(prompt=100, output_text=200, total=300)
    entry = catalog.price_for(MODEL)
    assert prices.worst_case(record()) == worst_case_cost(record().estimate, entry)
    assert prices.cost(record(), usage) == cost_usd(usage, entry, tier="standard")
    assert prices.cost(record("FLEX"), usage) == cost_usd(usage, entry, tier="flex")
    assert prices.cost(record("priority"), usage) == cost_usd(usage, entry, tier="priority")
    assert prices.cost(record("premium"), usage) == cost_usd(usage, entry, tier="standard")  # no such tier
    assert prices.cost(record(), None) is None


def test_a_reply_is_costed_at_the_tier_that_served_it_else_at_the_run_s_tier() -> None:
    catalog = PriceCatalog.load()
    entry = catalog.price_for(MODEL)
    usage = Usage(prompt=100, output_text=200, total=300)
    flex, priority = CatalogPrices(catalog, Tier.FLEX), CatalogPrices(catalog, Tier.PRIORITY)
    assert flex.cost(record(), usage) == cost_usd(usage, entry, tier="flex")
    assert flex.cost(record(), usage, "flex") == flex.cost(record(), usage) == 0.000265
    assert priority.cost(record(), usage) == cost_usd(usage, entry, tier="priority") == 0.000954
    assert priority.cost(record(), usage, "standard") == cost_usd(usage, entry, tier="standard") == 0.00053
    assert priority.cost(record(), usage, "SERVICE_TIER_PRIORITY") == 0.000954
    assert priority.cost(record(), usage, "unheard-of") == 0.000954  # an unknown served tier: the asked one


def test_the_worst_case_reserved_is_at_the_run_s_tier() -> None:
    catalog = PriceCatalog.load()
    entry = catalog.price_for(MODEL)
    worst = {tier: CatalogPrices(catalog, tier).worst_case(record()) for tier in Tier}
    assert worst[Tier.FLEX] == worst_case_cost(record().estimate, entry, tier="flex")
    assert worst[Tier.PRIORITY] == pytest.approx(worst[Tier.STANDARD] * 1.8)
    assert CatalogPrices(catalog, Tier.PRIORITY).worst_case(record("flex")) == worst[Tier.FLEX]  # the body's own


def test_a_reply_past_its_reservation_is_settled_at_its_true_cost_and_no_more_is_reserved() -> None:
    account = SpendingAccount(FreePrices(), cap_usd=1.0)
    assert account.reserve(0.8)
    account.settle(0.8, 1.2)  # a reply spent past its worst case (a model table out of date)
    assert (account.holders, account.reserved_usd, account.spent_usd) == (0, 0.0, 1.2)
    assert not account.reserve(0.0001)
    assert "replies cost more than the worst case reserved for them" in account.stop_message(0.8)


def test_the_stop_message_within_the_cap_is_the_plain_one() -> None:
    account = SpendingAccount(FreePrices(), cap_usd=1.0, spent_usd=0.5)
    assert account.stop_message(0.75) == "spent $0.5000 of the $1.0000 cap; the next request could cost up to $0.7500"


def test_a_worst_case_without_max_output_tokens_is_the_model_s_limit_and_with_it_the_request_s_own() -> None:
    # gemini-3.1-flash-image 1K, IMAGE only: the model's limit, 32,768 text and thinking at $3/M ($0.098304),
    # + 1,120 image tokens at $60/M ($0.0672) = $0.165504 (not the estimate's practical ceiling of 6,336, which a
    # reply may pass); with maxOutputTokens 1,000: $0.0702
    from batchrun.cost.tokens import estimate_tokens
    from batchrun.providers.registry import provider_entry
    from batchrun.rendered import rendered_request

    prices = CatalogPrices(PriceCatalog.load())
    config = {"responseModalities": ["IMAGE"], "imageConfig": {"imageSize": "1K"}}
    for extra, worst in (({}, 0.165504), ({"maxOutputTokens": 1000}, 0.0702)):
        body = rendered_request(None, [{"text": ""}], {**config, **extra}, None, {})
        estimate = estimate_tokens("gemini-3.1-flash-image", body, [], provider_entry("gemini").estimate_inputs(body))
        rec = RequestRecord(request_id="r1", seq=1, model="gemini-3.1-flash-image", body={}, variables={},
                            estimate=estimate)
        assert prices.worst_case(rec) == pytest.approx(worst)


def test_a_soft_cap_expects_each_request_at_the_run_s_average_and_reserves_nothing() -> None:
    account = SpendingAccount(FreePrices(), soft_cap_usd=1.0, spent_usd=0.5)
    assert account.reserve(0.4)  # before any reply, a request is expected at its worst case: 0.5 + 0.4 fits
    assert not account.reserve(0.4)  # 0.5 + 2 x 0.4 does not
    assert account.soft_refused and account.reserved_usd == 0.0
    account.settle(0.4, 0.1)  # the run's average is now $0.10 a reply
    assert [account.reserve(0.4) for _ in range(5)] == [True, True, True, True, False]  # 0.6 + 4 x 0.1 = 1.0
    assert "cap from the pilot's projection" in account.stop_message(0.4)


def test_under_a_soft_cap_the_hard_cap_still_reserves_each_worst_case() -> None:
    account = SpendingAccount(FreePrices(), cap_usd=1.0, soft_cap_usd=5.0)
    assert account.reserve(0.6)
    assert not account.reserve(0.6)  # the soft cap would take it; the hard cap's reservation does not
    assert not account.soft_refused and account.reserved_usd == 0.6
    assert account.stop_message(0.6).startswith("spent $0.0000 of the $1.0000 cap")
