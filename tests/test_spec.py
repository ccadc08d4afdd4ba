"""The job spec: validated once, at load; every error names the file, the YAML path and the fix."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from batchrun.errors import EXIT_USAGE, SpecError
from batchrun.planning import yamlload
from batchrun.planning.spec import DEFAULT_BASE_URL, LoadedSpec, load_spec, yaml_path
from batchrun.planning.templatesyntax import is_template
from batchrun.tiers import Tier

REPO = Path(__file__).resolve().parents[1]
MINIMAL = "name: job\nmodel: gemini-3-flash-preview\ninputs: {rows: [{sku: A}]}\nrequest: {prompt: 'Describe {{ sku }}'}\n"


NEEDS_LIBYAML = pytest.mark.skipif("c" not in yamlload.LOADERS, reason="PyYAML was built without libyaml")


@pytest.fixture(autouse=True, params=[pytest.param("c", marks=NEEDS_LIBYAML), "pure"])
def yaml_loader(request, monkeypatch) -> None:
    """Every spec is read by libyaml's parser and by PyYAML's pure-Python one."""
    monkeypatch.setattr(yamlload, "DEFAULT_LOADER", yamlload.LOADERS[request.param])


def write(folder: Path, text: str) -> Path:
    path = folder / "job.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(folder: Path, text: str) -> tuple[str, str, str]:
    path = write(folder, text)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert str(caught.value) == f"{path}: {caught.value.path}: {caught.value.message}"
    return caught.value.path, caught.value.message, str(caught.value)


@pytest.mark.parametrize("name", ["demo", "descriptions", "catalog-cometapi"])
def test_the_shipped_jobs_load(name):
    loaded = load_spec(REPO / "jobs" / f"{name}.yaml")
    assert isinstance(loaded, LoadedSpec)
    assert loaded.spec.name == name
    assert loaded.warnings == []
    assert loaded.folder == REPO / "jobs"


def test_defaults(tmp_path):
    loaded = load_spec(write(tmp_path, MINIMAL))
    spec = loaded.spec
    assert (spec.provider.kind, spec.provider.key_env, spec.provider.url) == ("gemini", "GEMINI_API_KEY", DEFAULT_BASE_URL)
    assert (spec.limits.concurrency, spec.limits.timeout_s, spec.retry.max_attempts) == (16, 180.0, 6)
    assert spec.matrix == {} and spec.request.images == [] and spec.request.generation_config == {}
    assert loaded.output_dir == tmp_path / "outputs" / "job"  # beside the spec, not the current folder
    assert loaded.shown == str(tmp_path / "job.yaml")


def test_provider_details(tmp_path):
    text = MINIMAL + "provider: {kind: gemini, base_url: 'https://api.cometapi.com/', api_key_env: COMETAPI_KEY, auth: bearer}\n"
    provider = load_spec(write(tmp_path, text)).spec.provider
    assert (provider.url, provider.key_env, provider.auth) == ("https://api.cometapi.com", "COMETAPI_KEY", "bearer")
    simulator = load_spec(write(tmp_path, MINIMAL + "provider: {kind: simulator}\n")).spec.provider
    assert simulator.key_env is None


EXAMPLES = "use e.g. https://generativelanguage.googleapis.com or https://api.cometapi.com"
USER_PASS = (
    "the URL holds a user name or password (user:pass@ before the host); remove it: the key is read from "
    "the environment variable provider.api_key_env names"
)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", f"'not a url' is not an http(s) URL; {EXAMPLES}"),
        ("api.cometapi.com", f"'api.cometapi.com' is not an http(s) URL; {EXAMPLES}"),
        ("ftp://api.cometapi.com", f"'ftp://api.cometapi.com' is not an http(s) URL; {EXAMPLES}"),
        ("https://", f"'https://' is not an http(s) URL; {EXAMPLES}"),
        ("http://[::1", f"'http://[::1' is not an http(s) URL; {EXAMPLES}"),
        ("https://:8089", f"'https://:8089' has no host; {EXAMPLES}"),
        ("https://api.comet api.com", "'https://api.comet api.com' holds a space, a line break or a control character; "
         "write the URL without them"),
        ("http://127.0.0.1:80899", "'http://127.0.0.1:80899' has a port that is not a number from 0 to 65535; "
         "write e.g. http://127.0.0.1:8089"),
        ("https://me:AIzaSecret@api.cometapi.com", USER_PASS),
        ("https://AIzaSecret@api.cometapi.com", USER_PASS),
        ("https://api.cometapi.com/?key=AIzaSecret", "the URL has a query string (?...); batchrun adds each request's "
         "own path and query, and sends the key in a header; write https://api.cometapi.com/"),
        ("https://api.cometapi.com/gw#top", "the URL has a fragment (#...), which is never sent to a server; "
         "write https://api.cometapi.com/gw"),
        ("https://api.cometapi.com/v1beta/models/gemini-3-flash-preview:generateContent",
         "the URL holds the API path (/v1beta/...): batchrun adds /v1beta/models/MODEL:generateContent itself; "
         "write only what comes before /v1beta, e.g. https://api.cometapi.com"),
    ],
)
def test_a_base_url_that_is_not_an_http_url_is_refused_with_the_fix(tmp_path, url, message):
    text = MINIMAL + f"provider: {{base_url: {url!r}}}\n"
    assert error_of(tmp_path, text)[:2] == ("provider.base_url", message)
    assert "AIzaSecret" not in message


@pytest.mark.parametrize(
    ("url", "used"),
    [
        ("http://127.0.0.1:8089", "http://127.0.0.1:8089"),
        ("http://[::1]:8089/", "http://[::1]:8089"),
        ("https://api.cometapi.com/", "https://api.cometapi.com"),
        ("https://generativelanguage.googleapis.com/v1beta", "https://generativelanguage.googleapis.com"),
        ("https://generativelanguage.googleapis.com/v1beta/", "https://generativelanguage.googleapis.com"),
        ("https://api.cometapi.com/v1beta/models", "https://api.cometapi.com"),
        ("https://gateway.example/gemini/v1beta/models/", "https://gateway.example/gemini"),
        ("https://v1beta.example", "https://v1beta.example"),
    ],
)
def test_a_base_url_is_used_without_a_pasted_api_path_or_end_slash(tmp_path, url, used):
    provider = load_spec(write(tmp_path, MINIMAL + f"provider: {{base_url: {url!r}}}\n")).spec.provider
    assert provider.url == used


def test_the_batch_section_sets_the_fallback_its_timeout_and_the_chunk_limits(tmp_path):
    batch = load_spec(write(tmp_path, MINIMAL + "batch: {fallback: Flex, timeout: 90m, max_requests: 500, "
                                                "max_mb: 50}\n")).spec.batch
    assert (batch.fallback, batch.timeout, batch.max_requests, batch.max_mb) == (Tier.FLEX, 5400.0, 500, 50.0)
    default = load_spec(write(tmp_path, MINIMAL)).spec.batch
    assert (default.fallback, default.timeout, default.max_requests, default.max_mb) == (None, None, 2_000, 200.0)
    assert load_spec(write(tmp_path, MINIMAL + "batch: {fallback: standard, timeout: 3600}\n")).spec.batch.timeout == 3600


def test_output_dir_from_the_spec(tmp_path):
    loaded = load_spec(write(tmp_path, MINIMAL + "output: {dir: out/here}\n"))
    assert loaded.output_dir == tmp_path / "out" / "here"


def test_unknown_model_loads_with_a_warning(tmp_path):
    path = write(tmp_path, MINIMAL.replace("gemini-3-flash-preview", "gemini-9-ultra"))
    assert load_spec(path).warnings == [
        f"{path}: model: 'gemini-9-ultra' is not in batchrun's model table; its image sizes and thinking options are not checked"
    ]


@pytest.mark.parametrize(
    ("extra", "where", "message"),
    [
        ("modle: x\n", "modle", "unknown key; did you mean 'model'?"),
        ("zzzz: 1\n", "zzzz",
         "unknown key; allowed keys: name, provider, model, inputs, matrix, request, limits, retry, budget, output, "
         "pricing, tier, batch, run, notify"),
        ("limits: {concurency: 4}\n", "limits.concurency", "unknown key; did you mean 'concurrency'?"),
        ("retry: {max_attempt: 3}\n", "retry.max_attempt", "unknown key; did you mean 'max_attempts'?"),
        ("provider: {kind: gemini, apikey_env: K}\n", "provider.apikey_env", "unknown key; did you mean 'api_key_env'?"),
        ("limits: {concurrency: many}\n", "limits.concurrency", "expected a whole number, got 'many'"),
        ("limits: {concurrency: 2.5}\n", "limits.concurrency", "expected a whole number, got 2.5"),
        ("limits: {concurrency: 0}\n", "limits.concurrency", "must be at least 1, got 0"),
        ("limits: {requests_per_minute: 0}\n", "limits.requests_per_minute", "must be more than 0, got 0"),
        ("limits: {concurrency: 20000}\n", "limits.concurrency", "must be at most 10000, got 20000"),
        ("limits: {timeout_s: soon}\n", "limits.timeout_s", "expected a number, got 'soon'"),
        ("limits: 4\n", "limits", "expected a mapping, got 4"),
        ("provider: {kind: anthropic}\n", "provider.kind", "'anthropic' is not one of 'gemini' or 'simulator' or 'openai'"),
        ("provider: {auth: basic}\n", "provider.auth", "'basic' is not one of 'x-goog-api-key' or 'bearer'"),
        ("provider: {stream: maybe}\n", "provider.stream", "expected true or false, got 'maybe'"),
        ("budget: {max_cost_usd: -5}\n", "budget.max_cost_usd", "must be more than 0, got -5"),
        ("matrix: {scene: []}\n", "matrix.scene", "no values; give at least one or remove the key"),
        ("matrix: {n: [1, 2, 1]}\n", "matrix.n", "1 is listed twice; list each value once"),
        ("matrix: {n: [1, '1']}\n", "matrix.n", "'1' is listed twice; list each value once"),
        ("matrix: {scene: beach}\n", "matrix.scene", "expected a list, got 'beach'"),
        ("matrix: {scene: [{a: 1}]}\n", "matrix.scene[0]", "expected a string, number or true/false, got {'a': 1}"),
        ("matrix: {scene: [[a], b, {c: 1}]}\n", "matrix.scene[0]",
         "expected a string, number or true/false, got ['a'] (and 1 more problem)"),
        ("pricing: {gemini-3-flash-preview: {output: cheap}}\n", "pricing.gemini-3-flash-preview.output", "expected a number, got 'cheap'"),
        ("pricing: {gemini-3-flash-preview: {outptu: 3}}\n", "pricing.gemini-3-flash-preview.outptu",
         "unknown key; did you mean 'output'?"),
        ("batch: {fallback: batch}\n", "batch.fallback",
         "'batch' is not a fallback tier; a fallback sends synchronously: use flex (half price, slower) or standard"),
        ("batch: {fallback: priority}\n", "batch.fallback",
         "'priority' is not a fallback tier; a fallback sends synchronously: use flex (half price, slower) or standard"),
        ("batch: {fallback: flex, timeout: 4 hours}\n", "batch.timeout",
         "expected a number with s, m or h, e.g. 45m or 7h"),
        ("batch: {fallback: flex, timeout: 0s}\n", "batch.timeout", "expected more than 0, e.g. 45m or 7h"),
        ("batch: {timeout: 4h}\n", "batch",
         "timeout needs a tier to switch to; add batch.fallback: flex (or standard), or drop batch.timeout"),
        ("batch: {max_requests: 0}\n", "batch.max_requests", "must be at least 1, got 0"),
        ("batch: {max_mb: 0}\n", "batch.max_mb", "must be more than 0, got 0"),
        ("batch: {max_mb: 4096}\n", "batch.max_mb", "must be at most 2000, got 4096"),
        ("batch: {max_request: 10}\n", "batch.max_request", "unknown key; did you mean 'max_requests'?"),
    ],
)
def test_field_errors(tmp_path, extra, where, message):
    assert error_of(tmp_path, MINIMAL + extra)[:2] == (where, message)


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (MINIMAL.replace("name: job", "name: my job"), "name",
         "'my job' must be letters, digits, '.', '_' or '-' (it names the output folder)"),
        (MINIMAL.replace("name: job", "name: ../up"), "name",
         "'../up' must be letters, digits, '.', '_' or '-' (it names the output folder)"),
        (MINIMAL.replace("model: gemini-3-flash-preview\n", ""), "model", "required; add it"),
        (MINIMAL.replace("model: gemini-3-flash-preview", "model: ''"), "model", "must not be empty"),
        (MINIMAL.replace("inputs: {rows: [{sku: A}]}\n", ""), "inputs", "required; add it"),
        (MINIMAL.replace("request: {prompt: 'Describe {{ sku }}'}", "request: {system: hi}"), "request.prompt", "required; add it"),
        (MINIMAL.replace("'Describe {{ sku }}'", "'  '"), "request.prompt", "the prompt is empty; write the prompt template"),
        (MINIMAL.replace("{rows: [{sku: A}]}", "{path: rows.ods}"), "inputs.path",
         "'rows.ods' is not a .csv, .parquet, .jsonl or .xlsx file; convert it or use one of those"),
        (MINIMAL.replace("{rows: [{sku: A}]}", "{path: rows.csv, rows: [{sku: A}]}"), "inputs",
         "give exactly one of 'path' (a csv, parquet, jsonl or xlsx file) or 'rows'"),
        (MINIMAL.replace("{rows: [{sku: A}]}", "{id_column: sku}"), "inputs",
         "give exactly one of 'path' (a csv, parquet, jsonl or xlsx file) or 'rows'"),
        (MINIMAL.replace("{rows: [{sku: A}]}", "{rows: [A, B]}"), "inputs.rows[0]", "expected a mapping, got 'A' (and 1 more problem)"),
        (MINIMAL.replace("{prompt: 'Describe {{ sku }}'}", "{prompt: x, images: photo.png}"), "request.images",
         "expected a list, got 'photo.png'"),
    ],
)
def test_whole_spec_errors(tmp_path, text, where, message):
    assert error_of(tmp_path, text)[:2] == (where, message)


def test_generation_config_is_checked_at_load(tmp_path):
    text = MINIMAL.replace("{prompt: 'Describe {{ sku }}'}", "{prompt: x, generation_config: {thinkingConfig: {thinkingLevel: max}}}")
    assert error_of(tmp_path, text)[:2] == (
        "request.generation_config.thinkingConfig.thinkingLevel",
        "'max' is not one of minimal, low, medium, high",
    )


def test_the_spec_must_be_a_mapping(tmp_path):
    for text in ("- a\n- b\n", "", "just words\n"):
        path = write(tmp_path, text)
        with pytest.raises(SpecError) as caught:
            load_spec(path)
        assert str(caught.value) == f"{path}: the spec must be a YAML mapping with name, model, inputs, request"


def test_the_file_is_shown_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "x.yaml").write_text(MINIMAL + "limitz: {}\n", encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_spec("jobs/x.yaml")
    assert str(caught.value) == "jobs/x.yaml: limitz: unknown key; did you mean 'limits'?"


def test_unquoted_aspect_ratio_in_the_config(tmp_path):
    text = MINIMAL.replace("gemini-3-flash-preview", "gemini-3.1-flash-image").replace(
        "{prompt: 'Describe {{ sku }}'}", "{prompt: x, generation_config: {imageConfig: {aspectRatio: 16:9}}}"
    )
    config = load_spec(write(tmp_path, text)).spec.request.generation_config
    assert config == {"imageConfig": {"aspectRatio": "16:9"}}


def test_rows_and_config_may_share_parts_through_anchors_and_merge_keys(tmp_path):
    text = MINIMAL.replace("inputs: {rows: [{sku: A}]}\n", (
        "inputs:\n"
        "  rows:\n"
        "    - &mug {sku: A, color: red, size: M}\n"
        "    - {<<: *mug, sku: B}\n"
        "    - {<<: *mug, sku: C, color: blue}\n"
    )).replace("{prompt: 'Describe {{ sku }}'}", (
        "\n  prompt: 'Describe {{ sku }}'\n"
        "  generation_config: &config {temperature: 0.5}\n"
        "  safety_settings: [{category: HARM_CATEGORY_HARASSMENT, threshold: BLOCK_NONE}]\n"
    ))
    spec = load_spec(write(tmp_path, text)).spec
    assert spec.inputs.rows == [
        {"sku": "A", "color": "red", "size": "M"},
        {"sku": "B", "color": "red", "size": "M"},
        {"sku": "C", "color": "blue", "size": "M"},
    ]
    assert spec.request.generation_config == {"temperature": 0.5}


def test_an_alias_bomb_in_the_response_schema_is_refused_before_it_is_expanded(tmp_path):
    levels = "abcdefghi"
    schema = ["    responseSchema:", "      type: object", "      a: &a [x, x, x, x, x, x, x, x, x]"]
    schema += [f"      {name}: &{name} [{', '.join([f'*{before}'] * 9)}]" for before, name in zip(levels, levels[1:])]
    text = MINIMAL.replace("request: {prompt: 'Describe {{ sku }}'}\n", (
        "request:\n  prompt: 'Describe {{ sku }}'\n  generation_config:\n    responseMimeType: application/json\n"
    )) + "\n".join(schema) + "\n"
    path = write(tmp_path, text)
    assert text.splitlines()[15].startswith("      g: &g [*f, *f")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert str(caught.value) == (
        f"{path}: line 16: the alias *f takes the spec past 1,000,000 nodes once expanded; "
        "expand the aliases by hand, or keep the spec under 1,000,000 nodes"
    )
    assert caught.value.exit_code == EXIT_USAGE


def test_the_spec_is_immutable(tmp_path):
    spec = load_spec(write(tmp_path, MINIMAL)).spec
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        spec.name = "other"


@pytest.mark.parametrize(
    ("loc", "path"),
    [(("request", "images", 0), "request.images[0]"), (("inputs", "rows", 2, "sku"), "inputs.rows[2].sku"), ((), ""), (("name",), "name")],
)
def test_yaml_path(loc, path):
    assert yaml_path(loc) == path


@pytest.mark.parametrize(
    ("value", "templated"),
    [("{{ a }}", True), ("x {% if a %}y{% endif %}", True), ("plain", False), ("{ not: jinja }", False), (3, False), (None, False)],
)
def test_is_template(value, templated):
    assert is_template(value) is templated


@pytest.mark.parametrize("given, tier", [("", Tier.STANDARD), ("tier: flex\n", Tier.FLEX),
                                         ("tier: priority\n", Tier.PRIORITY), ("tier: Standard\n", Tier.STANDARD),
                                         ("tier: batch\n", Tier.BATCH)])
def test_the_tier_key_names_the_run_s_tier(tmp_path, given, tier):
    assert load_spec(write(tmp_path, MINIMAL + given)).spec.tier is tier


@pytest.mark.parametrize("given, message", [
    ("cheap", "'cheap' is not a tier; use standard, flex (half price, slower), batch (half price, answers within "
              "24 hours) or priority (about 1.8x, faster)"),
])
def test_a_tier_no_run_can_use_is_refused_in_one_line(tmp_path, given, message):
    where, said, line = error_of(tmp_path, MINIMAL + f"tier: {given}\n")
    assert (where, said) == ("tier", message)
    assert "\n" not in line


@pytest.mark.parametrize("key", ["serviceTier", "service_tier"])
def test_a_service_tier_in_the_generation_config_points_to_the_tier_key(tmp_path, key):
    where, message, _ = error_of(tmp_path, MINIMAL.replace("request: {prompt", f"request: {{generation_config: {{{key}: flex}}, prompt"))
    assert where == f"request.generation_config.{key}"
    assert message == ("the service tier is not a generationConfig key; write `tier: flex` (or priority) at the top "
                       "of the spec, or run with --tier flex")


def test_the_batch_tier_of_an_openai_provider_is_refused_naming_the_fix(tmp_path):
    provider = "provider: {kind: openai, base_url: 'https://api.cometapi.com/v1'}\n"
    where, message, line = error_of(tmp_path, MINIMAL + provider + "tier: batch\n")
    assert where == "tier"
    assert message == ("the batch tier is Gemini-only for now (provider.kind gemini or simulator, not openai); "
                       "use --tier flex, also half price")
    assert "\n" not in line


# --- a pool of keys (provider.api_key_env as a list) ------------------------------------------------


def test_one_variable_is_a_pool_of_one_key(tmp_path):
    provider = load_spec(write(tmp_path, MINIMAL + "provider: {api_key_env: MY_KEY}\n")).spec.provider
    assert [(key.env, key.requests_per_minute) for key in provider.key_envs] == [("MY_KEY", None)]
    assert provider.key_env == "MY_KEY"


def test_a_list_of_variables_may_give_each_key_its_own_limits(tmp_path):
    text = MINIMAL + ("provider:\n  api_key_env:\n    - KEY_A\n"
                      "    - {env: KEY_B, requests_per_minute: 30, images_per_minute: 5}\n")
    provider = load_spec(write(tmp_path, text)).spec.provider
    keys = [(key.env, key.requests_per_minute, key.tokens_per_minute, key.images_per_minute) for key in provider.key_envs]
    assert keys == [("KEY_A", None, None, None), ("KEY_B", 30, None, 5)]
    assert provider.key_env == "KEY_A"


def test_the_default_variable_is_a_pool_of_one_and_the_simulator_needs_none(tmp_path):
    assert [key.env for key in load_spec(write(tmp_path, MINIMAL)).spec.provider.key_envs] == ["GEMINI_API_KEY"]
    simulator = load_spec(write(tmp_path, MINIMAL + "provider: {kind: simulator}\n")).spec.provider
    assert simulator.key_envs == ()


POOL_SHAPE = "a variable name, or a list of them (each a name or {env: NAME, requests_per_minute: N})"


@pytest.mark.parametrize(
    ("extra", "where", "message"),
    [
        ("provider: {api_key_env: []}\n", "provider.api_key_env", f"an empty list names no key; write {POOL_SHAPE}"),
        ("provider: {api_key_env: 5}\n", "provider.api_key_env", f"expected {POOL_SHAPE}"),
        ("provider: {api_key_env: {env: A}}\n", "provider.api_key_env", f"expected {POOL_SHAPE}"),
        ("provider: {api_key_env: [A, B, A]}\n", "provider.api_key_env", "A is listed twice; list each variable once"),
        ("provider: {api_key_env: [A, {env: B, request_per_minute: 3}]}\n",
         "provider.api_key_env[1].request_per_minute", "unknown key; did you mean 'requests_per_minute'?"),
        ("provider: {api_key_env: [A, {env: B, rpm: 3}]}\n", "provider.api_key_env[1].rpm",
         "unknown key; allowed keys: env, requests_per_minute, tokens_per_minute, images_per_minute"),
        ("provider: {api_key_env: [A, {env: B, requests_per_minute: 0}]}\n",
         "provider.api_key_env[1].requests_per_minute", "must be more than 0, got 0"),
        ("provider: {api_key_env: [A, {requests_per_minute: 3}]}\n", "provider.api_key_env[1].env", "required; add it"),
    ],
)
def test_a_key_pool_that_cannot_work_is_refused_with_the_fix(tmp_path, extra, where, message):
    assert error_of(tmp_path, MINIMAL + extra)[:2] == (where, message)


def test_a_key_pasted_where_its_variable_belongs_is_refused_without_echoing_it(tmp_path):
    where, message, whole = error_of(tmp_path, MINIMAL + "provider: {api_key_env: ['AIza-secret/value']}\n")
    assert where == "provider.api_key_env[0].env"
    assert message.startswith("a variable name is letters, digits and '_'")
    assert "secret" not in whole
