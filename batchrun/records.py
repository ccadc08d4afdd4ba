"""Provider-neutral records that flow between the stages.

RequestRecord: one row of the manifest, made by `expand`, read by the runner.
ProviderReply: what a provider adapter makes of one HTTP exchange (or transport failure).
ResultRecord:  one final row of the results, written by the sink.

The request `body` is a Gemini generateContent body in which every inline image's `data` is the
placeholder "sha256:<hex>"; the bytes are read and encoded at send time, so manifests stay small and
the request id covers the image content, not its path.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

IMAGE_PLACEHOLDER_PREFIX = "sha256:"


@dataclass(frozen=True, slots=True)
class ImageRef:
    """An input image checked at plan time; `path` is relative to the spec's folder."""

    path: str
    sha256: str
    mime: str
    bytes: int
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class TokenEstimate:
    """What one request is expected to use, worked out before it is sent."""

    input_text: int = 0
    input_image: int = 0
    output_text_max: int = 0
    output_image: int = 0
    images_out: int = 0


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    seq: int
    model: str
    body: dict[str, Any]
    variables: dict[str, Any]
    images: list[ImageRef] = field(default_factory=list)
    output_name: str | None = None
    estimate: TokenEstimate = field(default_factory=TokenEstimate)

    @property
    def wants_image(self) -> bool:
        modalities = self.body.get("generationConfig", {}).get("responseModalities") or []
        return any(str(m).upper() == "IMAGE" for m in modalities)


class Outcome(str, enum.Enum):
    """How one exchange ended, as the runner must act on it."""

    OK = "ok"  # final: a usable reply
    BLOCKED = "blocked"  # final: a safety or policy block
    INVALID = "invalid"  # final: the request itself is wrong (400, 404 ...)
    RETRY = "retry"  # worth sending again (429, 5xx, timeout, no image ...)
    STOP_AUTH = "stop_auth"  # stop the run: bad key or no permission
    STOP_QUOTA = "stop_quota"  # stop the run: a per-day quota is spent


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
    error_kind: str | None = None
    error_message: str | None = None
    retry_after_s: float | None = None


@dataclass(slots=True)
class ResultRecord:
    """One final row of `results/part-*.parquet`."""

    request_id: str
    status: str  # ok | blocked | invalid | failed
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
