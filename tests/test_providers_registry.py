"""The provider registry: each kind resolves to its adapter, transport and estimate inputs; others are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchrun.errors import UnknownProvider, UsageError
from batchrun.planning.spec import ProviderSpec
from batchrun.providers.gemini import GeminiProvider
from batchrun.providers.registry import (
    KINDS,
    SIMULATOR_BASE_URL,
    ProviderSettings,
    build_provider,
    build_transport,
    provider_entry,
)
from batchrun.rendered import rendered_request
from batchrun.running.http import AiohttpTransport
from batchrun.simulator.transport import SimulatorTransport


def settings(**provider) -> ProviderSettings:
    return ProviderSettings(ProviderSpec(**provider), "k", Path("."), 42.0, 8)


def test_every_kind_the_spec_accepts_has_an_entry():
    assert set(KINDS) == {"gemini", "simulator", "openai"}
    assert all(provider_entry(kind).kind == kind for kind in KINDS)


def test_an_unknown_kind_is_a_usage_error_naming_the_kinds():
    with pytest.raises(UnknownProvider) as caught:
        provider_entry("openai-ish")
    assert isinstance(caught.value, UsageError) and caught.value.exit_code == 2
    assert str(caught.value) == ("provider.kind 'openai-ish' is not a provider batchrun knows; "
                                 "use one of gemini, simulator, openai")


def test_gemini_sends_to_its_base_url_over_aiohttp():
    made = settings(kind="gemini", base_url="https://api.cometapi.com", auth="bearer")
    provider = build_provider(made)
    assert isinstance(provider, GeminiProvider)
    assert (provider.base_url, provider.auth, provider.timeout_s) == ("https://api.cometapi.com", "bearer", 42.0)
    assert isinstance(build_transport(made), AiohttpTransport)
    assert provider_entry("gemini").endpoint_label(made.provider) == "https://api.cometapi.com"
    assert provider_entry("gemini").default_key_env == "GEMINI_API_KEY"


def test_the_simulator_is_the_gemini_adapter_on_an_in_process_transport():
    made = settings(kind="simulator", profile="flaky", seed=3)
    provider = build_provider(made)
    assert isinstance(provider, GeminiProvider) and provider.base_url == SIMULATOR_BASE_URL
    assert isinstance(build_transport(made), SimulatorTransport)
    assert provider_entry("simulator").endpoint_label(made.provider) == "simulator (in process)"
    assert provider_entry("simulator").default_key_env is None
    assert ProviderSpec(kind="simulator").key_env is None and ProviderSpec().key_env == "GEMINI_API_KEY"


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_reads_the_estimate_inputs_of_a_rendered_request(kind):
    request = rendered_request(None, [{"text": "x"}], {"maxOutputTokens": 99, "responseModalities": ["IMAGE"]}, None, {})
    inputs = provider_entry(kind).estimate_inputs(request)
    assert (inputs.max_output_tokens, inputs.modalities, inputs.text_allowed) == (99, ("IMAGE",), False)
