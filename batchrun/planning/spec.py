"""The job spec: a YAML file validated once, at load; every later stage trusts a JobSpec.

Input: a path to `jobs/NAME.yaml`. Output: a JobSpec (pydantic, unknown keys rejected) plus the
warnings found on the way (an unknown model). Every error is a one-line SpecError naming the file,
the YAML path and the fix.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import SplitResult, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from batchrun.errors import SpecError, batch_kind_message, fallback_tier_message
from batchrun.options import duration_seconds
from batchrun.planning.checks import check_spec
from batchrun.planning.outputdir import (
    check_moved_output,
    earlier_output,
    output_override,
    remote_location,
    resolve_output_dir,
    shown_path,
)
from batchrun.planning.templatesyntax import is_template  # noqa: F401 (expand.py imports it from here)
from batchrun.planning.yamlload import load_yaml
from batchrun.providers.registry import provider_entry
from batchrun.tiers import BATCH_KINDS, FALLBACK_TIERS, Tier, run_tier

Scalar = str | int | float | bool

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeyEnvSpec(_Strict):
    """One key of a pool: the variable it is read from, and its own per-minute limits (else the job's)."""

    env: str
    requests_per_minute: float | None = Field(None, gt=0)
    tokens_per_minute: float | None = Field(None, gt=0)
    images_per_minute: float | None = Field(None, gt=0)

    @field_validator("env")
    @classmethod
    def _variable_name(cls, value: str) -> str:
        if not _ENV_NAME.fullmatch(value):
            # the value is not echoed: a key pasted where its variable's name belongs must not reach a log
            raise ValueError(
                "a variable name is letters, digits and '_', not starting with a digit; put the key itself in "
                "the environment and the variable's name here"
            )
        return value


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
KEY_POOL_SHAPE = "a variable name, or a list of them (each a name or {env: NAME, requests_per_minute: N})"


class ProviderSpec(_Strict):
    kind: str = "gemini"  # an entry of the provider registry (batchrun.providers.registry)
    base_url: str | None = None
    # one variable, or a pool of keys (each with its own limiter); always held as a tuple
    api_key_env: tuple[KeyEnvSpec, ...] | None = None
    auth: Literal["x-goog-api-key", "bearer"] = "x-goog-api-key"
    stream: bool = False
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] | None = None  # kind openai only
    profile: str | None = None  # simulator only: clean | flaky | overloaded | quota
    faults: str | None = None  # simulator only: a faults YAML file, relative to the spec
    seed: int = 0  # simulator only
    # a generateContent body past this sends its largest input images through the Files API (MiB)
    inline_limit_mb: float = Field(100.0, gt=0)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        from batchrun.providers.registry import KINDS

        if value not in KINDS:
            raise ValueError(f"{value!r} is not one of {' or '.join(repr(kind) for kind in KINDS)}")
        return value

    @field_validator("api_key_env", mode="before")
    @classmethod
    def _key_pool(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            return ({"env": value},)
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected {KEY_POOL_SHAPE}")
        if not value:
            raise ValueError(f"an empty list names no key; write {KEY_POOL_SHAPE}")
        return tuple({"env": item} if isinstance(item, str) else item for item in value)

    @field_validator("api_key_env")
    @classmethod
    def _distinct_keys(cls, value: tuple[KeyEnvSpec, ...] | None) -> tuple[KeyEnvSpec, ...] | None:
        names = [key.env for key in value or ()]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} is listed twice; list each variable once")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else base_url(value, info.data.get("kind", "gemini"))

    @property
    def key_env(self) -> str | None:
        """The (first) variable a key is read from: the spec's, else the provider's default."""
        keys = self.key_envs
        return keys[0].env if keys else None

    @property
    def key_envs(self) -> tuple[KeyEnvSpec, ...]:
        """Every key of the pool (one for a single variable; none for a provider that needs no key)."""
        if self.api_key_env:
            return self.api_key_env
        from batchrun.providers.registry import provider_entry

        default = provider_entry(self.kind).default_key_env
        return (KeyEnvSpec(env=default),) if default else ()

    @property
    def inline_limit(self) -> int:
        """`inline_limit_mb` in bytes."""
        return int(self.inline_limit_mb * 1024 * 1024)

    @property
    def url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        from batchrun.providers.registry import provider_entry

        return provider_entry(self.kind).default_base_url or DEFAULT_BASE_URL


def base_url(value: str, kind: str = "gemini") -> str:
    """An http(s) URL to put the API path after: checked, a pasted API path and the end slash dropped."""
    from batchrun.providers.registry import KINDS, provider_entry

    entry = provider_entry(kind if kind in KINDS else "gemini")
    try:
        parts = urlsplit(value)
    except ValueError:  # an unclosed [IPv6 bracket
        parts = urlsplit("")
    problem = (
        _url_shape_problem(value, parts, entry.example_urls) or _url_secret_problem(value, parts)
        or _url_text_problem(value, parts)
    )
    if problem:
        raise ValueError(problem)
    scheme_and_host = value[: len(value) - len(parts.path)]
    return (scheme_and_host + entry.url_path(parts.path, scheme_and_host)).rstrip("/")


def _url_shape_problem(value: str, parts: SplitResult, examples: str) -> str | None:
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"{_short(value)} is not an http(s) URL; use e.g. {examples}"
    if not parts.hostname:
        return f"{_short(value)} has no host; use e.g. {examples}"
    return None


def _url_secret_problem(value: str, parts: SplitResult) -> str | None:
    # the URL is not echoed: a user name, a password or a query string may hold a key
    if "@" in parts.netloc:
        return (
            "the URL holds a user name or password (user:pass@ before the host); remove it: the key is "
            "read from the environment variable provider.api_key_env names"
        )
    bare = f"{parts.scheme}://{parts.netloc}{parts.path}"
    if "?" in value.partition("#")[0]:
        return (
            "the URL has a query string (?...); batchrun adds each request's own path and query, and sends "
            f"the key in a header; write {bare}"
        )
    if "#" in value:
        return f"the URL has a fragment (#...), which is never sent to a server; write {bare}"
    return None


def _url_text_problem(value: str, parts: SplitResult) -> str | None:
    shown = _short(value)
    if any(char.isspace() or not char.isprintable() for char in value):
        return f"{shown} holds a space, a line break or a control character; write the URL without them"
    try:
        _ = parts.port  # reading the property is the check: it raises ValueError on a bad port
    except ValueError:
        return f"{shown} has a port that is not a number from 0 to 65535; write e.g. http://127.0.0.1:8089"
    return None


class GroupSpec(_Strict):
    """Rows that share a key (a store export's product) become one row, or one row per image."""

    by: str = Field(min_length=1)  # the key column, e.g. Handle
    images: Literal["first", "each"] = "first"
    image_column: str = Field("Image Src", min_length=1)
    position_column: str = Field("Image Position", min_length=1)  # orders the images when the file has it


class InputsSpec(_Strict):
    path: str | None = None
    rows: list[dict[str, Any]] | None = None
    id_column: str | None = None
    sheet: str | None = None  # .xlsx only: the sheet to read (default: the first)
    group: GroupSpec | None = None
    columns: dict[str, str] | None = None  # template name -> input column: keep only these, renamed

    @field_validator("path")
    @classmethod
    def _known_format(cls, value: str | None) -> str | None:
        suffix = None if value is None else Path(value).suffix.lower()
        if suffix == ".xls":
            raise ValueError(f"'{value}' is an old-format Excel workbook (.xls); open it and save it as .xlsx or .csv")
        if suffix is not None and suffix not in INPUT_FORMATS:
            raise ValueError(f"'{value}' is not a .csv, .parquet, .jsonl or .xlsx file; convert it or use one of those")
        return value

    @field_validator("sheet")
    @classmethod
    def _xlsx_only(cls, value: str | None, info: ValidationInfo) -> str | None:
        path = info.data.get("path")
        if value is not None and INPUT_FORMATS.get(Path(path or "").suffix.lower()) != "xlsx":
            raise ValueError("a sheet applies to an .xlsx inputs.path only; remove it")
        return value

    @field_validator("columns")
    @classmethod
    def _template_names(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for name in value or {}:
            if not COLUMN_NAME.match(name):
                raise ValueError(f"{name!r} is not a name a template can use; use letters, digits and '_' "
                                 "(e.g. image_src: Image Src)")
        if value is not None and not value:
            raise ValueError("no columns; name at least one, or remove the key to keep every column")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> InputsSpec:
        if (self.path is None) == (self.rows is None):
            raise ValueError("give exactly one of 'path' (a csv, parquet, jsonl or xlsx file) or 'rows'")
        return self


INPUT_FORMATS = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".xlsx": "xlsx"}
COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ImagePrepSpec(_Strict):
    """`request.image_prep`: input photos resized (never upscaled) and/or converted at plan time."""

    max_side: int | None = Field(None, ge=16, le=16384)  # the longer side, in pixels, at most
    format: Literal["jpeg", "png", "webp"] | None = None  # None: the photo's own format
    quality: int = Field(90, ge=1, le=100)  # jpeg and webp


class RequestSpec(_Strict):
    system: str | None = None
    prompt: str
    images: list[str] = Field(default_factory=list)
    image_prep: ImagePrepSpec | None = None
    generation_config: dict[str, Any] = Field(default_factory=dict)
    safety_settings: list[dict[str, Any]] | None = None
    extra_body: dict[str, Any] | None = None  # kind openai: merged into the chat-completions body
    tools: list[dict[str, Any]] | None = None
    variants: int = Field(1, ge=1, le=1000)  # N distinct requests (and images) per expanded row

    @field_validator("prompt")
    @classmethod
    def _prompt_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the prompt is empty; write the prompt template")
        return value


class LimitsSpec(_Strict):
    concurrency: int = Field(16, ge=1, le=10_000)
    requests_per_minute: float | None = Field(None, gt=0)
    tokens_per_minute: float | None = Field(None, gt=0)
    images_per_minute: float | None = Field(None, gt=0)
    timeout_s: float = Field(180.0, gt=0)
    input_image_mb_in_flight: float = Field(256.0, gt=0)  # input image bytes held by requests in flight


class RetrySpec(_Strict):
    max_attempts: int = Field(6, ge=1, le=100)
    initial_s: float = Field(1.0, ge=0)
    max_wait_s: float = Field(60.0, ge=0)
    no_image_attempts: int = Field(3, ge=1, le=100)
    max_server_delay_s: float = Field(300.0, gt=0)  # a longer retryDelay stops the run (a quota is spent)


class BudgetSpec(_Strict):
    max_cost_usd: float | None = Field(None, gt=0)
    # cap at the pilot's projection (projection.json) of the whole job: its expected figure or its 90% high
    max_cost_from_projection: Literal["expected", "high"] | None = None


class BatchSpec(_Strict):
    """How a batch run (`tier: batch` / `--tier batch`) sizes its batches and when it gives up on them.

    Run settings, not part of any request: changing them plans the same request ids."""

    fallback: Tier | None = None  # flex | standard: the tier unfinished batches' requests switch to
    timeout: float | None = None  # seconds (or "4h", "90m", "3600s") from a batch's creation
    max_requests: int = Field(2_000, ge=1)  # requests per batch
    max_mb: float = Field(200.0, gt=0, le=2_000)  # MiB of request file per batch (the Files API takes 2 GB)

    @field_validator("fallback", mode="before")
    @classmethod
    def _fallback_tier(cls, value: Any) -> Tier | None:
        if value is None:
            return None
        name = str(value).strip().lower()
        if name not in FALLBACK_TIERS:
            raise ValueError(fallback_tier_message(value))
        return Tier(name)

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        if value is None or isinstance(value, bool):
            return value
        try:
            return duration_seconds(str(value))
        except ValueError as exc:
            raise ValueError(f"expected {exc}") from None

    @model_validator(mode="after")
    def _timeout_has_a_fallback(self) -> BatchSpec:
        if self.timeout is not None and self.fallback is None:
            raise ValueError("timeout needs a tier to switch to; add batch.fallback: flex (or standard), "
                             "or drop batch.timeout")
        return self


class OutputSpec(_Strict):
    dir: str | None = None
    image_name: str | None = None


def _distinct_values(values: list[Scalar]) -> list[Scalar]:
    """A matrix key's values: at least one, none twice (a repeat would only plan duplicates)."""
    if not values:
        raise ValueError("no values; give at least one or remove the key")
    seen: set[str] = set()
    for value in values:
        if str(value) in seen:
            raise ValueError(f"{value!r} is listed twice; list each value once")
        seen.add(str(value))
    return values


MatrixValues = Annotated[list[Scalar], AfterValidator(_distinct_values)]


class RunSpec(_Strict):
    """How `batchrun run` behaves, where a flag would otherwise be needed every night."""

    wait_quota: bool = False  # park until a spent daily quota resets (if before the deadline); --wait-quota


class NotifySpec(_Strict):
    """Where a run's summary goes when it ends: a webhook (Slack, Teams), a command, or both."""

    webhook: str | None = Field(None, pattern=r"^https?://")
    webhook_env: str | None = Field(None, min_length=1)  # the variable holding the URL: a secret stays out of the spec
    command: list[str] | None = Field(None, min_length=1)  # run with the summary file's path as its last argument
    timeout_s: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _one_webhook(self) -> NotifySpec:
        if self.webhook is not None and self.webhook_env is not None:
            raise ValueError("give webhook or webhook_env, not both (webhook_env keeps a secret URL out of the spec)")
        return self


class JobSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    provider: ProviderSpec = Field(default_factory=ProviderSpec)
    model: str = Field(min_length=1)
    inputs: InputsSpec
    matrix: dict[str, MatrixValues] = Field(default_factory=dict)
    request: RequestSpec
    limits: LimitsSpec = Field(default_factory=LimitsSpec)
    retry: RetrySpec = Field(default_factory=RetrySpec)
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)
    pricing: dict[str, dict[str, Any]] | None = None
    tier: Tier = Tier.STANDARD  # standard | flex | priority; `--tier` overrides it
    batch: BatchSpec = Field(default_factory=BatchSpec)  # used by batch runs only
    run: RunSpec = Field(default_factory=RunSpec)
    notify: NotifySpec | None = None

    @field_validator("tier", mode="before")
    @classmethod
    def _run_tier(cls, value: Any, info: ValidationInfo) -> Tier:
        tier = run_tier(value)
        provider = info.data.get("provider")
        if tier is Tier.BATCH and provider is not None and provider.kind not in BATCH_KINDS:
            raise ValueError(batch_kind_message(provider.kind))
        return tier

    @model_validator(mode="after")
    def _variant_is_free(self) -> JobSpec:
        if self.request.variants > 1 and "variant" in self.matrix:
            raise ValueError("matrix.variant: 'variant' is the variable request.variants sets; rename the matrix key")
        return self


class LoadedSpec:
    """A validated spec with where it came from; paths in it are relative to `folder`."""

    def __init__(self, spec: JobSpec, path: Path, shown: str, warnings: list[str],
                 output_dir: Path | None = None) -> None:
        self.spec, self.path, self.shown, self.warnings = spec, path, shown, warnings
        self.folder = path.resolve().parent
        self._output_dir = output_dir

    def error(self, where: str, message: str) -> SpecError:
        return SpecError(self.shown, where, message)

    @property
    def output_dir(self) -> Path:
        """The job's output folder (see `planning.outputdir`): the same from any current folder."""
        if self._output_dir is None:
            self._output_dir = locate_output(self.folder, self.spec, None)
        return self._output_dir


def locate_output(folder: Path, spec: JobSpec, override: str | Path | None) -> Path:
    """The output folder of `spec` found in `folder`; UsageError when 0.5's is left behind elsewhere."""
    cwd = Path.cwd()
    chosen = output_override(override, os.environ)
    location = remote_location(spec.output.dir, spec.name, chosen)
    if location is not None:  # a bucket: its local staging folder, pulled from the bucket
        from batchrun.output.mirror import stage_location

        return stage_location(location)
    resolved = resolve_output_dir(folder, spec.output.dir, spec.name, chosen, cwd)
    if chosen is None:
        check_moved_output(resolved, earlier_output(spec.output.dir, spec.name, cwd))
    return shown_path(resolved, cwd)


def load_spec(path: str | Path, output_dir: str | Path | None = None) -> LoadedSpec:
    """Read and validate a job spec; raises SpecError with the file, the YAML path and the fix.

    `output_dir` (`--output-dir`) overrides `BATCHRUN_OUTPUT_DIR`; either takes the place of `outputs/`."""
    path = Path(path)
    shown = str(path)
    raw = load_yaml(path, shown)
    if not isinstance(raw, dict):
        raise SpecError(shown, "", "the spec must be a YAML mapping with name, model, inputs, request")
    try:
        spec = JobSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(shown, *_describe(exc, raw)) from None
    problem = provider_entry(spec.provider.kind).spec_problem(spec)
    if problem:
        raise SpecError(shown, *problem)
    warnings = check_spec(spec, shown)
    _check_pricing(spec, shown)
    return LoadedSpec(spec, path, shown, warnings, locate_output(path.resolve().parent, spec, output_dir))


def _check_pricing(spec: JobSpec, shown: str) -> None:
    if not spec.pricing:
        return
    from batchrun.cost.pricing import PriceEntry

    for model, entry in spec.pricing.items():
        try:
            PriceEntry.model_validate(entry)
        except ValidationError as exc:
            where, message = _describe(exc, entry, PriceEntry)
            raise SpecError(shown, f"pricing.{model}.{where}".rstrip("."), message) from None


def yaml_path(loc: tuple[Any, ...]) -> str:
    """('request', 'images', 0) -> 'request.images[0]'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _describe(exc: ValidationError, raw: Any, root: type[BaseModel] | None = None) -> tuple[str, str]:
    errors = exc.errors()
    first = errors[0]
    loc = tuple(p for p in first["loc"] if not _is_union_tag(p))
    message = _fix_for(first, loc, root or JobSpec)
    if len(loc) < len(first["loc"]):  # every branch of the scalar union refused it: one problem
        message = f"expected a string, number or true/false, got {_short(first.get('input'))}"
    others = len({yaml_path(tuple(p for p in e["loc"] if not _is_union_tag(p))) for e in errors} - {yaml_path(loc)})
    if others:
        message += f" (and {others} more problem{'s' if others > 1 else ''})"
    return yaml_path(loc), message


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, str) and part in {"str", "int", "float", "bool"}


def _fix_for(error: ErrorDetails, loc: tuple[Any, ...], root: type[BaseModel]) -> str:
    problem, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if problem == "missing":
        return "required; add it"
    if problem == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1], root)
        hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        fix = f"did you mean '{hint[0]}'?" if hint else f"allowed keys: {', '.join(allowed)}"
        return f"unknown key; {fix}"
    if problem == "literal_error":
        return f"{value!r} is not one of {ctx.get('expected', '')}"
    if problem == "string_pattern_mismatch":
        return f"{value!r} must be letters, digits, '.', '_' or '-' (it names the output folder)"
    if problem == "value_error":
        return str(ctx.get("error", error["msg"]))
    if problem in _BOUNDS:
        word, key = _BOUNDS[problem]
        return f"must be {word} {ctx[key]:g}, got {_short(value)}"
    if problem.endswith("_too_short") and ctx.get("min_length") == 1:
        return "must not be empty"
    expected = _EXPECTED.get(problem.split("_")[0])
    if expected:
        return f"expected {expected}, got {_short(value)}"
    return f"{error['msg'][0].lower()}{error['msg'][1:]} (got {_short(value)})"


_EXPECTED = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "string": "a string",
    "list": "a list",
    "dict": "a mapping",
    "model": "a mapping",
}


_BOUNDS = {
    "greater_than_equal": ("at least", "ge"),
    "greater_than": ("more than", "gt"),
    "less_than_equal": ("at most", "le"),
    "less_than": ("less than", "lt"),
}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed_keys(loc: tuple[Any, ...], root: type[BaseModel]) -> list[str]:
    model: Any = root
    for part in loc:
        if isinstance(part, int):  # an item of a list field: its annotation was unwrapped to the item's
            continue
        field = getattr(model, "model_fields", {}).get(part) if isinstance(part, str) else None
        if field is None:
            return []
        model = _item_model(field.annotation)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
    return list(model.model_fields)


def _item_model(annotation: Any) -> Any:
    """`X` of `X | None` and of `tuple[X, ...]` (a list of mappings in the YAML); else the annotation."""
    args = [arg for arg in getattr(annotation, "__args__", ()) if arg is not type(None) and arg is not Ellipsis]
    if len(args) == 1:
        return _item_model(args[0])
    return annotation

