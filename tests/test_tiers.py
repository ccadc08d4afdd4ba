"""Service tiers: the tier a run asks for, the tier a reply names, and the timeout a flex run gets."""

from __future__ import annotations

import pytest

from batchrun.tiers import FLEX_TIMEOUT_S, Tier, run_tier, run_timeout_s, served_tier


@pytest.mark.parametrize("value, tier", [("flex", Tier.FLEX), ("SERVICE_TIER_PRIORITY", Tier.PRIORITY),
                                         ("default", Tier.STANDARD), ("Standard", Tier.STANDARD),
                                         ("batch", Tier.BATCH), ("auto", None), ("", None), (None, None), (3, None)])
def test_a_reply_s_tier_is_read_in_any_of_its_spellings(value, tier):
    assert served_tier(value) is tier


def test_a_run_asks_for_standard_flex_batch_or_priority_and_nothing_else():
    assert [run_tier(name) for name in ("standard", "FLEX", "priority", "Batch")] == [
        Tier.STANDARD, Tier.FLEX, Tier.PRIORITY, Tier.BATCH]
    with pytest.raises(ValueError, match="'auto' is not a tier"):
        run_tier("auto")
    with pytest.raises(ValueError, match="is not a tier"):
        run_tier(None)


def test_a_flex_run_waits_15_minutes_for_a_reply_unless_the_spec_names_a_timeout():
    assert FLEX_TIMEOUT_S == 900
    assert run_timeout_s(Tier.FLEX, 180.0, timeout_in_spec=False) == 900
    assert run_timeout_s(Tier.FLEX, 60.0, timeout_in_spec=True) == 60
    assert run_timeout_s(Tier.FLEX, 1200.0, timeout_in_spec=True) == 1200
    assert run_timeout_s(Tier.PRIORITY, 180.0, timeout_in_spec=False) == 180
    assert run_timeout_s(Tier.STANDARD, 180.0, timeout_in_spec=False) == 180
