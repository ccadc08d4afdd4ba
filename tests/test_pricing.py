"""Cost formula against figures worked out by hand from the reference's prices (USD per 1M tokens)."""

from __future__ import annotations

import json
import logging
from importlib import resources

import pytest

from batchrun.cost.modeltable import lookup_model
from batchrun.cost.pricing import (
    PriceCatalog,
    PriceEntry,
    cost_usd,
    expected_cost,
    missing_price_message,
    require_prices,
    worst_case_cost,
)
from batchrun.errors import UsageError
from batchrun.records import TokenEstimate, Usage


@pytest.fixture(scope="module")
def catalog() -> PriceCatalog:
    return PriceCatalog.load()


def price(catalog: PriceCatalog, model: str) -> PriceEntry:
    entry = catalog.price_for(model)
    assert entry is not None, model
    return entry


def test_text_only(catalog):
    # gemini-2.5-flash: 1,000 in x $0.30 = $0.0003; 500 out x $2.50 = $0.00125; total $0.00155
    usage = Usage(prompt=1000, output_text=500, total=1500)
    assert cost_usd(usage, price(catalog, "gemini-2.5-flash")) == pytest.approx(0.00155)


def test_image_output_31_flash_1k(catalog):
    # gemini-3.1-flash-image: prompt 1,200 (80 text + 1,120 image) x $0.50 = $0.0006;
    # one 1K image 1,120 x $60 = $0.0672; total $0.0678
    usage = Usage(prompt=1200, prompt_image=1120, output_image=1120, output_text=0, thoughts=0)
    assert cost_usd(usage, price(catalog, "gemini-3.1-flash-image")) == pytest.approx(0.0678)


def test_image_output_sizes_match_reference_per_image_prices(catalog):
    # 3.1 Flash: 512 747 x $60 = $0.04482 (~$0.045), 2K 1,680 x $60 = $0.1008 (~$0.101),
    # 4K 2,520 x $60 = $0.1512 (~$0.151); 2.5 Flash Image 1,290 x $30 = $0.0387 (~$0.039);
    # 3 Pro Image 4K 2,000 x $120 = $0.24
    cases = [
        ("gemini-3.1-flash-image", 747, 0.04482),
        ("gemini-3.1-flash-image", 1680, 0.1008),
        ("gemini-3.1-flash-image", 2520, 0.1512),
        ("gemini-2.5-flash-image", 1290, 0.0387),
        ("gemini-3-pro-image", 2000, 0.24),
    ]
    for model, tokens, expected in cases:
        assert cost_usd(Usage(prompt=0, output_image=tokens), price(catalog, model)) == pytest.approx(expected)


def test_thinking_billed_at_text_output_rate(catalog):
    # gemini-3-pro-image: prompt 100 x $2 = $0.0002; text 20 + thoughts 400 = 420 x $12 = $0.00504;
    # 1K image 1,120 x $120 = $0.1344; total $0.13964
    usage = Usage(prompt=100, output_text=20, thoughts=400, output_image=1120)
    assert cost_usd(usage, price(catalog, "gemini-3-pro-image")) == pytest.approx(0.13964)


def test_cached_input(catalog):
    # gemini-2.5-pro: prompt 100,000 of which 80,000 cached. fresh 20,000 x $1.25 = $0.025;
    # cached 80,000 x $0.125 = $0.01; output 1,000 x $10 = $0.01; total $0.045
    usage = Usage(prompt=100_000, cached=80_000, output_text=1000)
    assert cost_usd(usage, price(catalog, "gemini-2.5-pro")) == pytest.approx(0.045)


def test_above_200k_tier_25_pro(catalog):
    # gemini-2.5-pro, prompt 250,000 > 200k: 250,000 x $2.50 = $0.625; output 2,000 x $15 = $0.03
    usage = Usage(prompt=250_000, output_text=2000)
    assert cost_usd(usage, price(catalog, "gemini-2.5-pro")) == pytest.approx(0.655)


def test_exactly_200k_stays_on_the_standard_rate(catalog):
    # 200,000 x $1.25 = $0.25 (the higher rate is for prompts over 200k)
    usage = Usage(prompt=200_000, output_text=0)
    assert cost_usd(usage, price(catalog, "gemini-2.5-pro")) == pytest.approx(0.25)


def test_above_200k_tier_31_pro_with_cache_and_thinking(catalog):
    # gemini-3.1-pro-preview, prompt 300,000 with 100,000 cached: fresh 200,000 x $4 = $0.80;
    # cached 100,000 x $0.40 = $0.04; text 1,000 + thoughts 3,000 = 4,000 x $18 = $0.072; total $0.912
    usage = Usage(prompt=300_000, cached=100_000, output_text=1000, thoughts=3000)
    assert cost_usd(usage, price(catalog, "gemini-3.1-pro-preview")) == pytest.approx(0.912)


def test_batch_halves_everything(catalog):
    # 3.1 Flash Image 1K at batch: ($0.0006 + $0.0672) x 0.5 = $0.0339 (reference: ~$0.034 an image)
    usage = Usage(prompt=1200, prompt_image=1120, output_image=1120)
    assert cost_usd(usage, price(catalog, "gemini-3.1-flash-image"), tier="batch") == pytest.approx(0.0339)


def test_batch_leaves_cached_input_at_its_own_rate(catalog):
    # gemini-2.5-pro batch: (fresh $0.025 + output $0.01) x 0.5 = $0.0175; cached $0.01 undiscounted
    usage = Usage(prompt=100_000, cached=80_000, output_text=1000)
    assert cost_usd(usage, price(catalog, "gemini-2.5-pro"), tier="batch") == pytest.approx(0.0275)


def test_flex_tier(catalog):
    # gemini-3-flash-preview: 2,000 in x $0.50 = $0.001; (1,000 text + 2,000 thoughts) x $3 = $0.009;
    # standard $0.01, flex x 0.5 = $0.005
    usage = Usage(prompt=2000, output_text=1000, thoughts=2000)
    entry = price(catalog, "gemini-3-flash-preview")
    assert cost_usd(usage, entry) == pytest.approx(0.01)
    assert cost_usd(usage, entry, tier="flex") == pytest.approx(0.005)


def test_unknown_tier_is_an_error(catalog):
    with pytest.raises(ValueError, match="unknown tier"):
        cost_usd(Usage(prompt=1), price(catalog, "gemini-2.5-flash"), tier="premium")


def test_priority_surcharges_every_rate_but_cached_input_by_1_8_unless_a_model_says_otherwise(catalog):
    usage = Usage(prompt=1_000_000, cached=200_000, output_text=1_000_000)
    entry = price(catalog, "gemini-2.5-flash")
    standard = cost_usd(usage, entry)
    cached = 0.2 * entry.cached_input
    assert cost_usd(usage, entry, tier="priority") == pytest.approx((standard - cached) * 1.8 + cached)
    own = PriceCatalog.load(overrides={"gemini-2.5-flash": {"priority_multiplier": 2.0}})
    assert cost_usd(usage, own.price_for("gemini-2.5-flash"), tier="priority") == pytest.approx(
        (standard - cached) * 2.0 + cached)


def test_unknown_model_costs_none_and_warns_once(caplog):
    catalog = PriceCatalog.load()
    with caplog.at_level(logging.WARNING, logger="batchrun.cost.pricing"):
        assert catalog.price_for("acme-imagegen-9") is None
        assert catalog.price_for("acme-imagegen-9") is None
    assert cost_usd(Usage(prompt=10, output_text=10), None) is None
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "acme-imagegen-9" in warnings[0] and "--prices" in warnings[0]


def test_missing_rate_for_reported_tokens_is_none_not_zero(catalog):
    # A text model has no image-output rate: an image in its usage cannot be priced.
    assert cost_usd(Usage(prompt=10, output_image=1120), price(catalog, "gemini-2.5-flash")) is None


def test_usage_without_any_counts_is_none(catalog):
    assert cost_usd(Usage(), price(catalog, "gemini-2.5-flash")) is None


def test_worst_case_cost(catalog):
    # 3.1 Flash Image 1K, 20 text + 1,120 image in: 1,140 x $0.50 = $0.00057;
    # text ceiling 32,768 x $3 = $0.098304; image 1,120 x $60 = $0.0672; total $0.166074
    estimate = TokenEstimate(input_text=20, input_image=1120, output_text_max=32768, output_image=1120, images_out=1)
    entry = price(catalog, "gemini-3.1-flash-image")
    assert worst_case_cost(estimate, entry) == pytest.approx(0.166074)
    assert worst_case_cost(estimate, None) is None


def test_expected_cost(catalog):
    # Same request expecting no text and 300 thinking tokens: $0.00057 + 300 x $3 = $0.0009 + $0.0672
    estimate = TokenEstimate(input_text=20, input_image=1120, output_text_max=32768, output_image=1120, images_out=1)
    entry = price(catalog, "gemini-3.1-flash-image")
    got = expected_cost(estimate, entry, output_fraction=0.0, thinking_tokens=300)
    assert got == pytest.approx(0.06867)
    assert expected_cost(estimate, entry, output_fraction=0.0, thinking_tokens=300, tier="flex") == pytest.approx(
        0.034335
    )


def test_preview_aliases_and_models_prefix_resolve(catalog):
    ga = price(catalog, "gemini-3.1-flash-image")
    assert catalog.price_for("gemini-3.1-flash-image-preview") is ga
    assert catalog.price_for("models/gemini-3-pro-image-preview") is price(catalog, "gemini-3-pro-image")
    assert catalog.price_for("gemini-3.1-flash-lite-image-preview") is price(catalog, "gemini-3.1-flash-lite-image")


def test_every_model_the_reference_prices_is_in_the_catalog(catalog):
    named = [
        "gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite", "gemini-2.5-flash-image",
        "gemini-3-flash-preview", "gemini-3-pro-preview", "gemini-3.1-pro-preview",
        "gemini-3.1-flash-lite-preview", "gemini-3-pro-image", "gemini-3-pro-image-preview",
        "gemini-3.1-flash-image", "gemini-3.1-flash-image-preview", "gemini-3.1-flash-lite-image",
        "gemini-3.1-flash-lite-image-preview",
    ]
    for model in named:
        entry = price(catalog, model)
        assert entry.source and entry.input is not None and entry.output is not None


def test_shipped_entries_are_dated_or_marked_unverified():
    raw = json.loads(resources.files("batchrun").joinpath("data/prices.json").read_text("utf-8"))
    for model, entry in raw["models"].items():
        assert entry.get("source"), model
        assert entry.get("verified_at") or "unverified" in entry.get("notes", ""), model


def test_image_token_tables_agree_with_the_model_table(catalog):
    for model in ("gemini-2.5-flash-image", "gemini-3-pro-image", "gemini-3.1-flash-image", "gemini-3.1-flash-lite-image"):
        assert price(catalog, model).output_image_tokens == dict(lookup_model(model).output_image_tokens)


def test_override_merges_over_the_shipped_entry():
    catalog = PriceCatalog.load(overrides={"gemini-3.1-flash-image": PriceEntry(output_image=48.0)})
    entry = catalog.price_for("gemini-3.1-flash-image")
    assert (entry.output_image, entry.input, entry.output) == (48.0, 0.50, 3.00)
    assert entry.output_image_tokens["1K"] == 1120
    assert entry.source == "spec pricing:"
    # 1,120 x $48 = $0.05376
    assert cost_usd(Usage(prompt=0, output_image=1120), entry) == pytest.approx(0.05376)


def test_override_adds_a_new_model_from_a_plain_mapping():
    catalog = PriceCatalog.load(overrides={"acme-gw/flash": {"input": 1.0, "output": 2.0}})
    # 1,000 x $1 + 1,000 x $2 = $0.003
    assert cost_usd(Usage(prompt=1000, output_text=1000), catalog.price_for("acme-gw/flash")) == pytest.approx(0.003)


def test_override_on_a_preview_alias_applies_to_that_id_only():
    catalog = PriceCatalog.load(overrides={"gemini-3.1-flash-image-preview": {"output_image": 30}})
    assert catalog.price_for("gemini-3.1-flash-image-preview").output_image == 30
    assert catalog.price_for("gemini-3.1-flash-image").output_image == 60


def test_prices_file_then_spec_overrides(tmp_path):
    prices = tmp_path / "gateway.yaml"
    prices.write_text(
        "gemini-3.1-flash-image:\n  output_image: 54\n  input: 0.45\n"
        "gemini-2.5-flash:\n  output: 2.0\n"
    )
    catalog = PriceCatalog.load(overrides={"gemini-3.1-flash-image": {"output_image": 50}}, prices_file=prices)
    image = catalog.price_for("gemini-3.1-flash-image")
    assert (image.output_image, image.input) == (50, 0.45)
    assert catalog.price_for("gemini-2.5-flash").output == 2.0
    assert catalog.price_for("gemini-2.5-flash").source == f"--prices {prices}"


def test_prices_file_in_the_shipped_layout(tmp_path):
    prices = tmp_path / "p.json"
    prices.write_text(json.dumps({"models": {"acme-1": {"input": 1, "output": 1}}}))
    assert PriceCatalog.load(prices_file=prices).price_for("acme-1").input == 1


def test_bad_prices_file_names_file_model_and_field(tmp_path):
    prices = tmp_path / "p.yaml"
    prices.write_text("gemini-2.5-flash:\n  ouptut: 2.0\n")
    with pytest.raises(UsageError, match=r"--prices .*p\.yaml: gemini-2\.5-flash\.ouptut"):
        PriceCatalog.load(prices_file=prices)


def test_require_prices_names_the_model_and_the_fix(catalog):
    require_prices(["gemini-3.1-flash-image"], catalog)
    with pytest.raises(UsageError) as caught:
        require_prices(["gemini-3.1-flash-image", "acme-x"], catalog)
    assert caught.value.exit_code == 2
    assert "acme-x" in str(caught.value) and "pricing:" in str(caught.value)
    assert "gemini-3.1-flash-image" not in str(caught.value)


def test_missing_price_message_never_suggests_zero():
    message = missing_price_message(["acme-x"])
    assert "acme-x" in message and "--prices FILE" in message and "never" in message


def test_image_size_keys_read_from_yaml_as_numbers_become_text(tmp_path):
    prices = tmp_path / "p.yaml"
    prices.write_text("acme-img:\n  output_image: 10\n  output_image_tokens: {512: 500, 1K: 1000}\n")
    assert PriceCatalog.load(prices_file=prices).price_for("acme-img").output_image_tokens == {"512": 500, "1K": 1000}
