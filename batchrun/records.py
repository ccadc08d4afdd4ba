"""Provider-neutral records that flow between the stages.

RequestRecord: one row of the manifest, made by `expand`, read by the runner.
ProviderReply: what a provider adapter makes of one HTTP exchange (or transport failure).
ResultRecord:  one final row of the results, written by the sink.

Two ids: `request_id` names what is sent (a hash of it), `row_id` names one expanded row (input row ×
matrix combination × variant). A request made by one row only has `row_id == request_id`; rows whose
rendered requests are identical share one request, and each gets its own `row_id` (see
`batchrun.planning.identity`), its own result row and its own image file.

The request `body` is a provider-neutral RenderedRequest (`batchrun.rendered`) in which every input
image is the reference "sha256:<hex>"; the provider turns it into its wire body, reading and encoding
the image bytes at send time, so manifests stay small and the request id covers the image content,
not its path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .outcomes import (
    CONFIG_ERROR_KINDS,
    SOFT_FAILURE_KINDS,
    ErrorKind,
)
from .outcomes import Outcome as Outcome  # imported from here by the providers

if TYPE_CHECKING:  # rendered imports this module
    from .rendered import RenderedRequest

IMAGE_PLACEHOLDER_PREFIX = "sha256:"


@dataclass(frozen=True, slots=True)
class ImageRef:
    """An input image checked at plan time; `path` is relative to the spec's folder, or the URL it was
    fetched from (its bytes are then in the input cache, found by `sha256`)."""

    path: str
    sha256: str
    mime: str
    bytes: int
    width: int
    height: int


CACHED_IMAGE_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def cached_image_name(sha256: str, mime: str) -> str:
    """An input photo's file name in the input cache (`batchrun.planning.inputcache`): its hash and type."""
    return f"{sha256.lower()}.{CACHED_IMAGE_EXTENSIONS.get(mime, 'bin')}"


def is_url(path: str) -> bool:
    """Whether an image's path is an `http(s)` URL (a photo fetched at plan time)."""
    return path[:8].lower().startswith(("http://", "https://"))


def shown_source(path: str) -> str:
    """An image's path as messages show it: a URL without user, password or query values (signed tokens)."""
    if not is_url(path):
        return path
    scheme, rest = path.split("://", 1)
    head, _, query = rest.partition("?")
    host, slash, tail = head.partition("/")
    return f"{scheme}://{host.rpartition('@')[2]}{slash}{tail.partition('#')[0]}" + ("?…" if query else "")


@dataclass(frozen=True, slots=True)
class TokenEstimate:
    """What one request is expected to use, worked out before it is sent."""

    input_text: int = 0
    input_image: int = 0
    output_text_max: int = 0
    output_image: int = 0
    images_out: int = 0
    # what the expected output depends on, read from the request's options by its provider
    thinking_level: str | None = None
    thinking_budget: int | None = None
    service_tier: str | None = None
    image_size: str | None = None
    text_allowed: bool = True
    aspect_ratio: str | None = None  # imageConfig.aspectRatio: a stratum of the cost projection


@dataclass(frozen=True, slots=True)
class RowTarget:
    """Another expanded row that shares a request's reply: its id and its image name."""

    row_id: str
    output_name: str | None


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    seq: int
    model: str
    body: RenderedRequest
    variables: dict[str, Any]
    images: list[ImageRef] = field(default_factory=list)
    output_name: str | None = None
    estimate: TokenEstimate = field(default_factory=TokenEstimate)
    row_id: str = ""  # "" until set: the request_id, or the shared row's own id
    input_row: int = 0  # 1-based number of the input row it was expanded from
    shares: tuple[RowTarget, ...] = ()  # pending rows of this run that take the same reply

    def __post_init__(self) -> None:
        if not self.row_id:
            self.row_id = self.request_id

    @property
    def wants_image(self) -> bool:
        return body_wants_image(self.body)


def body_wants_image(body: Mapping[str, Any]) -> bool:
    """Whether a rendered request asks for an image among its response modalities."""
    options = body.get("options") or {}
    modalities = options.get("responseModalities", options.get("response_modalities")) or []
    return any(str(m).upper() == "IMAGE" for m in modalities)


@dataclass(frozen=True, slots=True)
class EstimateInputs:
    """What a provider reads of a rendered request for its token estimate; None where it names none."""

    max_output_tokens: int | None = None
    modalities: tuple[str, ...] = ()  # upper case; () when the request names none
    image_size: str | None = None
    aspect_ratio: str | None = None
    media_resolution: str | None = None
    thinking_level: str | None = None
    thinking_budget: int | None = None
    service_tier: str | None = None

    @property
    def text_allowed(self) -> bool:
        """Whether the reply may carry text: TEXT among the modalities, or none named."""
        return not self.modalities or "TEXT" in self.modalities


@dataclass(slots=True)
class Usage:
    """Token counts of one reply, split as usageMetadata splits them; None where not reported."""

    prompt: int | None = None
    prompt_image: int | None = None
    cached: int | None = None
    output_text: int | None = None
    output_image: int | None = None
    thoughts: int | None = None
    total: int | None = None


@dataclass(frozen=True, slots=True)
class Headroom:
    """What a server's `x-ratelimit-*` headers said is left of its limits; None where it said nothing.

    `*_reset_s` is the time until the window is full again (OpenAI's `x-ratelimit-reset-*`)."""

    requests: int | None = None
    requests_limit: int | None = None
    requests_reset_s: float | None = None
    tokens: int | None = None
    tokens_limit: int | None = None
    tokens_reset_s: float | None = None


@dataclass(slots=True)
class ProviderReply:
    outcome: Outcome
    http_status: int | None = None
    finish_reason: str | None = None
    text: str | None = None
    image: bytes | None = field(default=None, repr=False)  # megabytes: never in a log line
    image_mime: str | None = None
    usage: Usage | None = None
    model_version: str | None = None
    response_id: str | None = None
    model_stage: str | None = None
    retirement_time: str | None = None
    error_kind: str | None = None  # an ErrorKind value
    error_message: str | None = None
    retry_after_s: float | None = None  # the delay the server asked for, if it named one
    headroom: Headroom | None = None  # what the server's rate-limit headers said is left
    service_tier: str | None = None  # the tier that served it, when the reply says (a Tier value)

    @property
    def worth_another_attempt(self) -> bool:
        """Whether the retry policy may send the request again."""
        return self.outcome is Outcome.RETRY

    @property
    def rate_limited(self) -> bool:
        """A 429 that is not a spent daily quota: the limiter slows down on it."""
        return self.error_kind == ErrorKind.RATE_LIMITED

    @property
    def missing_output(self) -> bool:
        """A reply without its image (none drawn, or a recitation): retried fewer times."""
        return self.error_kind in SOFT_FAILURE_KINDS

    @property
    def may_be_config_error(self) -> bool:
        """An invalid reply (400/404-like) that every request would get with a wrong endpoint or model."""
        return self.outcome is Outcome.INVALID and self.error_kind in CONFIG_ERROR_KINDS


@dataclass(slots=True)
class ResultRecord:
    """One final row of `results/part-*.parquet`."""

    request_id: str
    status: str  # a Status: ok | blocked | invalid | failed
    attempts: int
    started_at: float
    finished_at: float
    finish_reason: str | None = None
    text: str | None = None
    image_path: str | None = None
    image_sha256: str | None = None
    image_mime: str | None = None
    image_width: int | None = None
    image_height: int | None = None
    image_bytes: int | None = None
    prompt_tokens: int | None = None
    prompt_image_tokens: int | None = None
    cached_tokens: int | None = None
    output_text_tokens: int | None = None
    output_image_tokens: int | None = None
    thoughts_tokens: int | None = None
    total_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: int | None = None
    http_status: int | None = None
    error_kind: str | None = None
    error_message: str | None = None
    model: str | None = None
    model_version: str | None = None
    response_id: str | None = None
    run_id: str | None = None
    row_id: str | None = None  # None: the request_id (a row that shares its request with no other)
    shared_from: str | None = None  # the row_id whose paid reply this row reuses; its cost is 0
    service_tier: str | None = None  # the tier that served the request (else the one asked for)
