"""Generation config checked against what each model family accepts."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from batchrun.cost.modeltable import lookup_model
from batchrun.errors import SpecError
from batchrun.planning.checks import check_spec, config_problem
from batchrun.planning.templatesyntax import is_template

GC = "request.generation_config"


def problem(model: str, config: dict):
    return config_problem(lookup_model(model), model, config)


@pytest.mark.parametrize(
    ("model", "config"),
    [
        ("gemini-3.1-flash-image", {"imageConfig": {"aspectRatio": "8:1", "imageSize": "512"}}),
        ("gemini-3.1-flash-image", {"thinkingConfig": {"thinkingLevel": "High"}}),
        ("gemini-3-pro-image", {"imageConfig": {"aspectRatio": "21:9", "imageSize": "4K"}}),
        ("gemini-2.5-flash-image", {"imageConfig": {"aspectRatio": "16:9", "imageSize": "1K"}}),
        ("gemini-2.5-flash", {"thinkingConfig": {"thinkingBudget": 0}}),
        ("gemini-2.5-flash", {"thinkingConfig": {"thinkingBudget": -1}}),
        ("gemini-2.5-flash", {"thinkingConfig": {"thinkingBudget": 24576}}),
        ("gemini-2.5-pro", {"thinkingConfig": {"thinkingBudget": 128}}),
        ("gemini-3-flash-preview", {"thinkingConfig": {"thinkingLevel": "minimal"}}),
        ("gemini-3.1-pro-preview", {"thinkingConfig": {"thinkingLevel": "low"}}),
        ("gemini-3-flash-preview", {"temperature": 0.2, "responseMimeType": "application/json"}),
    ],
)
def test_accepted(model, config):
    assert problem(model, config) is None


@pytest.mark.parametrize(
    ("model", "config", "where", "message"),
    [
        ("gemini-2.5-flash-image", {"imageConfig": {"aspectRatio": "8:1"}}, "imageConfig.aspectRatio",
         "'8:1' is not one of 1:1, 2:3, 3:2, 3:4, 4:3, 4:5, 5:4, 9:16, 16:9, 21:9"),
        ("gemini-3.1-flash-image", {"imageConfig": {"imageSize": "2k"}}, "imageConfig.imageSize",
         "'2k' is not one of 512, 1K, 2K, 4K for gemini-3.1-flash-image (write '2K': an uppercase K)"),
        ("gemini-3.1-flash-image", {"imageConfig": {"imageSize": "3K"}}, "imageConfig.imageSize",
         "'3K' is not one of 512, 1K, 2K, 4K for gemini-3.1-flash-image"),
        ("gemini-3-pro-image", {"imageConfig": {"imageSize": "512"}}, "imageConfig.imageSize",
         "'512' is not one of 1K, 2K, 4K for gemini-3-pro-image"),
        ("gemini-2.5-flash-image", {"imageConfig": {"imageSize": "2K"}}, "imageConfig.imageSize",
         "'2K' is not one of 1K for gemini-2.5-flash-image"),
        ("gemini-3.1-flash-image", {"imageConfig": "1:1"}, "imageConfig",
         "expected a mapping with aspectRatio and/or imageSize"),
        ("gemini-3.1-flash-image", {"imageConfig": {"aspect_ratio": "1:1"}}, "imageConfig.aspect_ratio",
         "not accepted by the Gemini API; use aspectRatio or imageSize"),
        ("gemini-3-flash-preview", {"imageConfig": {"aspectRatio": "1:1"}}, "imageConfig",
         "gemini-3-flash-preview does not generate images; remove imageConfig or use an image model"),
        ("gemini-3-pro-image", {"thinkingConfig": {"thinkingLevel": "high"}}, "thinkingConfig",
         "gemini-3-pro-image has no thinking controls; remove thinkingConfig"),
        ("gemini-2.5-flash-image", {"thinkingConfig": {"thinkingBudget": 100}}, "thinkingConfig",
         "gemini-2.5-flash-image has no thinking controls; remove thinkingConfig"),
        ("gemini-3.1-flash-image", {"thinkingConfig": {"thinkingLevel": "medium"}}, "thinkingConfig.thinkingLevel",
         "'medium' is not one of minimal, high"),
        ("gemini-3.1-pro-preview", {"thinkingConfig": {"thinkingLevel": "minimal"}}, "thinkingConfig.thinkingLevel",
         "'minimal' is not one of low, medium, high"),
        ("gemini-2.5-pro", {"thinkingConfig": {"thinkingLevel": "low"}}, "thinkingConfig.thinkingLevel",
         "gemini-2.5-pro takes thinkingBudget, not thinkingLevel"),
        ("gemini-3-flash-preview", {"thinkingConfig": {"thinkingBudget": 1024}}, "thinkingConfig.thinkingBudget",
         "gemini-3-flash-preview takes thinkingLevel (minimal, low, medium, high), not thinkingBudget"),
        ("gemini-2.5-pro", {"thinkingConfig": {"thinkingBudget": 0}}, "thinkingConfig.thinkingBudget",
         "0 is out of range for gemini-2.5-pro: 128 to 32768, -1 for dynamic"),
        ("gemini-2.5-flash", {"thinkingConfig": {"thinkingBudget": 24577}}, "thinkingConfig.thinkingBudget",
         "24577 is out of range for gemini-2.5-flash: 1 to 24576, -1 for dynamic, 0 to turn thinking off"),
        ("gemini-2.5-flash-lite", {"thinkingConfig": {"thinkingBudget": 100}}, "thinkingConfig.thinkingBudget",
         "100 is out of range for gemini-2.5-flash-lite: 512 to 24576, -1 for dynamic, 0 to turn thinking off"),
        ("gemini-2.5-flash", {"thinkingConfig": {"thinkingBudget": "lots"}}, "thinkingConfig.thinkingBudget",
         "expected a whole number, got 'lots'"),
        ("gemini-2.5-flash", {"thinkingConfig": {"thinkingBudget": True}}, "thinkingConfig.thinkingBudget",
         "expected a whole number, got True"),
        ("gemini-3-flash-preview", {"thinkingConfig": "high"}, "thinkingConfig",
         "expected a mapping such as {thinkingLevel: high}"),
    ],
)
def test_refused(model, config, where, message):
    assert problem(model, config) == (f"{GC}.{where}", message)


def test_models_prefix_is_ignored():
    assert problem("models/gemini-3-pro-image", {"imageConfig": {"imageSize": "512"}})[0] == f"{GC}.imageConfig.imageSize"


def spec_with(model: str, config: dict) -> SimpleNamespace:
    return SimpleNamespace(model=model, request=SimpleNamespace(generation_config=config))


def test_templated_values_are_left_for_expansion():
    config = {"imageConfig": {"aspectRatio": "{{ ratio }}", "imageSize": "{{ size }}"}, "thinkingConfig": {"thinkingLevel": "{{ t }}"}}
    assert check_spec(spec_with("gemini-3.1-flash-image", config), "job.yaml") == []
    assert config_problem(lookup_model("gemini-3.1-flash-image"), "gemini-3.1-flash-image", config, skip=is_template) is None


def test_an_unknown_model_is_a_warning_not_an_error():
    config = {"imageConfig": {"imageSize": "9K"}, "thinkingConfig": {"thinkingBudget": 10**9}}
    assert check_spec(spec_with("acme-imagen-9", config), "jobs/x.yaml") == [
        "jobs/x.yaml: model: 'acme-imagen-9' is not in batchrun's model table; "
        "its image sizes and thinking options are not checked"
    ]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("max_output_tokens", "unknown generationConfig key; did you mean 'maxOutputTokens'?"),
        ("response_modalities", "unknown generationConfig key; did you mean 'responseModalities'?"),
        ("temprature", "unknown generationConfig key; did you mean 'temperature'?"),
        ("image_config", "unknown generationConfig key; did you mean 'imageConfig'?"),
        ("zzz", "unknown generationConfig key; see the generationConfig reference"),
    ],
)
def test_unknown_generation_config_keys(key, message):
    with pytest.raises(SpecError) as caught:
        check_spec(spec_with("acme-unknown", {key: 1}), "job.yaml")
    assert str(caught.value) == f"job.yaml: {GC}.{key}: {message}"
