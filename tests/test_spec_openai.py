"""`provider.kind: openai` in a spec: the same request keys, and a clear error for each key it can't send."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from batchrun.errors import SpecError
from batchrun.planning.plan import plan_job, render_request
from batchrun.planning.spec import load_spec
from batchrun.providers.openai_request import NO_COUNTERPART

REPO = Path(__file__).resolve().parents[1]
OPENAI = {"kind": "openai", "base_url": "https://api.cometapi.com/v1", "api_key_env": "COMETAPI_KEY"}


def spec_file(folder: Path, *, provider=None, request=None, model="gemini-3-flash-preview") -> Path:
    spec = {"name": "job", "model": model, "inputs": {"rows": [{"sku": "A", "title": "Mug"}]},
            "request": request or {"prompt": "Describe {{ title }}"}, "output": {"dir": str(folder / "out")}}
    if provider is not None:
        spec["provider"] = provider
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def problem(folder: Path, **kwargs) -> tuple[str, str]:
    with pytest.raises(SpecError) as caught:
        load_spec(spec_file(folder, **kwargs))
    return caught.value.path, caught.value.message


def test_switching_the_descriptions_job_to_openai_changes_only_the_provider(tmp_path):
    shutil.copytree(REPO / "jobs" / "data", tmp_path / "data")
    spec = yaml.safe_load((REPO / "jobs" / "descriptions.yaml").read_text())
    spec["provider"] = dict(OPENAI)
    spec["output"] = {"dir": str(tmp_path / "out")}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    loaded = load_spec(tmp_path / "job.yaml")
    summary = plan_job(loaded, show=1)
    body = json.loads(render_request(summary.shown[0], "openai", loaded.spec.provider))["body"]
    assert body["messages"][0]["role"] == "system" and body["max_tokens"] == 1024
    assert body["reasoning_effort"] == "low" and body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["properties"]["headline"] == {
        "type": "string", "description": "At most 8 words"}


def test_the_same_rows_get_other_request_ids_under_another_kind(tmp_path):
    (tmp_path / "g").mkdir()
    (tmp_path / "o").mkdir()
    gemini = plan_job(load_spec(spec_file(tmp_path / "g")), show=1)
    openai = plan_job(load_spec(spec_file(tmp_path / "o", provider=OPENAI)), show=1)
    assert gemini.shown[0].request_id != openai.shown[0].request_id


def test_defaults_for_openai_are_openais_url_and_key_variable(tmp_path):
    provider = load_spec(spec_file(tmp_path, provider={"kind": "openai"})).spec.provider
    assert (provider.url, provider.key_env) == ("https://api.openai.com/v1", "OPENAI_API_KEY")


@pytest.mark.parametrize("pasted, kept", [
    ("https://api.cometapi.com/v1/chat/completions", "https://api.cometapi.com/v1"),
    ("https://api.cometapi.com/v1/", "https://api.cometapi.com/v1"),
    ("https://generativelanguage.googleapis.com/v1beta/openai/", "https://generativelanguage.googleapis.com/v1beta/openai"),
])
def test_a_pasted_chat_path_is_dropped(tmp_path, pasted, kept):
    provider = load_spec(spec_file(tmp_path, provider={"kind": "openai", "base_url": pasted})).spec.provider
    assert provider.url == kept


@pytest.mark.parametrize("key", sorted(NO_COUNTERPART))
def test_each_generation_option_without_a_counterpart_is_named_with_its_fix(tmp_path, key):
    where, message = problem(tmp_path, provider=OPENAI,
                             request={"prompt": "x", "generation_config": {"temperature": 1, key: 1}})
    assert where == f"request.generation_config.{key}"
    assert message == f"means nothing to provider.kind openai: {NO_COUNTERPART[key]}"


def test_a_thinking_budget_says_to_use_the_thinking_level(tmp_path):
    where, message = problem(tmp_path, provider=OPENAI,
                             request={"prompt": "x", "generation_config": {"thinkingConfig": {"thinkingBudget": 512}}})
    assert where == "request.generation_config.thinkingConfig.thinkingBudget"
    assert "use thinkingConfig.thinkingLevel (sent as reasoning_effort)" in message


def test_a_mime_type_chat_completions_cannot_give_is_refused(tmp_path):
    where, message = problem(tmp_path, provider=OPENAI,
                             request={"prompt": "x", "generation_config": {"responseMimeType": "text/x.enum"}})
    assert where == "request.generation_config.responseMimeType" and "application/json or text/plain" in message


@pytest.mark.parametrize("key, fix", [
    ("messages", "request.system, request.prompt and request.images"),
    ("n", "request.variants"),
    ("stream", "provider.stream"),
    ("max_tokens", "request.generation_config.maxOutputTokens"),
])
def test_extra_body_may_not_set_what_batchrun_writes(tmp_path, key, fix):
    where, message = problem(tmp_path, provider=OPENAI, request={"prompt": "x", "extra_body": {key: 1}})
    assert where == f"request.extra_body.{key}" and fix in message


def test_tools_are_gemini_tools(tmp_path):
    where, message = problem(tmp_path, provider=OPENAI, request={"prompt": "x", "tools": [{"googleSearch": {}}]})
    assert where == "request.tools" and "use provider.kind gemini" in message


def test_max_tokens_field_is_for_openai_only(tmp_path):
    where, message = problem(tmp_path, provider={"kind": "gemini", "max_tokens_field": "max_completion_tokens"})
    assert where == "provider.max_tokens_field" and "maxOutputTokens" in message
    spec = load_spec(spec_file(tmp_path, provider={**OPENAI, "max_tokens_field": "max_completion_tokens"})).spec
    assert spec.provider.max_tokens_field == "max_completion_tokens"


def test_a_templated_extra_body_is_rendered_per_row(tmp_path):
    loaded = load_spec(spec_file(tmp_path, provider=OPENAI,
                                 request={"prompt": "x", "extra_body": {"user": "sku-{{ sku }}"}}))
    summary = plan_job(loaded, show=1)
    body = json.loads(render_request(summary.shown[0], "openai", loaded.spec.provider))["body"]
    assert body["user"] == "sku-A"
