"""Which faults the simulator injects: named profiles, the YAML faults file, and seeded decisions.

A `FaultConfig` says, for each fault, a rate (0..1) or a schedule (`every: N`, `first: N`). The
decision for the n-th generate request (0-based, in arrival order) is a pure function of
(config, seed, n): `decide(config, seed, n)`. Scheduled faults win over rated ones, in the order of
`FAULT_NAMES`; rated faults share one uniform draw, so their rates add up to at most 1 and each is
emitted at exactly its own rate in the long run. Rate limits and the per-day quota are not drawn:
they are counted, by `limits.py`.

Settings for the OpenAI-compatible chat route: `refusal` (a fault like the others: the chat reply
refuses, the native one answers as `safety` does), `chat_image_shape` (how a chat reply carries its
image: `images`, `markdown`, `parts`, `url`, or `rotate` through the first three by arrival number),
`ratelimit_headers` (the `x-ratelimit-*` headers when per-minute limits are set), and
`image_url_fault` (a rate or schedule over the GETs of image URLs, answered 503). The image-URL
decision is drawn from its own seeded stream, so it never shifts the generate decisions.

Batch Mode settings, under `batch:` (`BatchSettings`): the batch clock, `pending_s` then `running_s`
seconds after creation (defaults 1 and 2), and `min_gets` (a batch the clock has ended stays RUNNING
until it has been got that many times); and the batch faults, each a rate or a schedule, drawn
from their own seeded streams. Over batches in creation order: `stuck_pending` (never leaves
PENDING), `expired` (ends EXPIRED, no results), `failed` (ends FAILED with an error),
`partial_results` (SUCCEEDED, but the results hold only the first half of the lines). Over the
lines of each batch, by line number: `missing_key` (the line is left out of the results),
`repeated_key` (the line is written twice). Over results downloads in arrival order:
`download_unavailable` (503 UNAVAILABLE). `line_padding_bytes` pads every results line with that
many spaces of JSON whitespace, for testing a client's memory against a large results file. The
generate faults apply to batch lines too, by line number within the batch: blocked, safety,
no_image and max_tokens as the reply of that line; server_error, unavailable, billing_402 and
prepaid_429 as that line's error; hang, drop, malformed and envelope200 have no batch form.

`batch.delays` slows the batch routes, one entry per route (`upload` covers the upload's start and
each piece, `create`, `get`, `list`, `cancel`, `download`): `before_s` waits after the call arrives
and before the server acts on it (a create not yet made), `after_s` after it acted and before it
answers (a batch created, its creator not yet told); a bare number is `after_s`. A delayed route's
call is logged twice: on arrival (outcome `arrived`) and when acted on. `download` may also pause
mid-stream: `pause_after_lines` lines are sent, then `pause_s` seconds pass before the rest.

`max_request_bytes` (default 100 MiB, Google's inline limit) refuses a generateContent body longer than
that with 400 "Request payload size exceeds the limit: N bytes.", so a test can use small photos to
send an image through the Files API (`fileData`, see `filerefs.py`) instead.

`tokens` gives output text and thinking tokens a seeded log-normal distribution per request, for all
models or per model (`tokendist.py`); without it replies keep `content.py`'s fixed lengths.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from ..errors import SpecError, UsageError
from .tokendist import TokenDistributions

# Order matters: it is the precedence of schedules and the layout of the shared uniform draw. New faults
# go at the end, so that a seed gives the faults it always gave.
FAULT_NAMES = (
    "server_error",
    "unavailable",
    "hang",
    "drop",
    "malformed",
    "envelope200",
    "blocked",
    "safety",
    "no_image",
    "max_tokens",
    "billing_402",
    "prepaid_429",
    "refusal",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Schedule(_Strict):
    """When one fault happens: at a rate, or on every N-th request, or on the first N requests."""

    rate: float = Field(0.0, ge=0.0, le=1.0)
    every: int | None = Field(None, ge=1)
    first: int | None = Field(None, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _bare_rate(cls, value: Any) -> Any:
        return {"rate": value} if isinstance(value, (int, float)) else value

    def scheduled(self, n: int) -> bool:
        """Whether request n (0-based) is hit by `every` or `first`."""
        if self.first is not None and n < self.first:
            return True
        return self.every is not None and (n + 1) % self.every == 0


class HangSchedule(Schedule):
    """A request that gets no reply: after `seconds` the connection is closed (null: never)."""

    seconds: float | None = Field(None, gt=0)


class Latency(_Strict):
    """Extra time before a reply, for `rate` of the requests."""

    distribution: Literal["fixed", "uniform", "long_tail"] = "fixed"
    ms: float = Field(0.0, ge=0)  # fixed
    min_ms: float = Field(0.0, ge=0)  # uniform
    max_ms: float = Field(0.0, ge=0)  # uniform; also the cap of long_tail when set
    median_ms: float = Field(50.0, gt=0)  # long_tail (log-normal)
    p99_ms: float = Field(1000.0, gt=0)  # long_tail
    rate: float = Field(1.0, ge=0.0, le=1.0)

    def sample_s(self, rng: random.Random) -> float:
        """One delay in seconds; always draws the same number of values from `rng`."""
        u, z = rng.random(), rng.gauss(0.0, 1.0)
        if self.distribution == "fixed":
            return self.ms / 1000
        if self.distribution == "uniform":
            return (self.min_ms + u * max(0.0, self.max_ms - self.min_ms)) / 1000
        sigma = max(0.0, math.log(self.p99_ms / self.median_ms)) / 2.326
        delay_ms = self.median_ms * math.exp(sigma * z)
        return (min(delay_ms, self.max_ms) if self.max_ms else delay_ms) / 1000


class Limits(_Strict):
    """Counted limits: a sliding 60 s window per minute, a calendar day (Pacific) per day."""

    requests_per_minute: int | None = Field(None, ge=1)
    images_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)  # input (prompt) tokens
    requests_per_day: int | None = Field(None, ge=0)
    # a test's short "day": the per-day quota resets every day_s seconds (counted from the first request)
    # instead of at midnight Pacific, and its 429 says when in a Retry-After header
    day_s: float | None = Field(None, gt=0)
    # count these limits for each API key on its own, as Google does for keys of different projects
    per_key: bool = False


class RouteDelay(_Strict):
    """Seconds a batch route waits before acting on a call and after acting, before its answer."""

    before_s: float = Field(0.0, ge=0)
    after_s: float = Field(0.0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _bare_after(cls, value: Any) -> Any:
        return {"after_s": value} if isinstance(value, (int, float)) else value


class DownloadDelay(RouteDelay):
    """A download's delays, and a pause of `pause_s` after its first `pause_after_lines` lines."""

    pause_after_lines: int = Field(0, ge=0)
    pause_s: float = Field(0.0, ge=0)

    def pause(self) -> tuple[int, float] | None:
        """(lines sent first, seconds of the pause), or None when downloads stream without one."""
        return (self.pause_after_lines, self.pause_s) if self.pause_s else None


# The request log's rpc names of each delayed route.
DELAYED_RPCS = {
    "upload": ("files.upload.start", "files.upload"),
    "create": ("batches.create",),
    "get": ("batches.get",),
    "list": ("batches.list",),
    "cancel": ("batches.cancel",),
    "download": ("files.download",),
}


class BatchDelays(_Strict):
    """How slow each batch route is (see the module docstring); a route not named answers at once."""

    upload: RouteDelay | None = None
    create: RouteDelay | None = None
    get: RouteDelay | None = None
    list: RouteDelay | None = None
    cancel: RouteDelay | None = None
    download: DownloadDelay | None = None

    def of(self, rpc: str | None) -> RouteDelay | None:
        """The delay of the route an rpc name belongs to, if any."""
        for route, rpcs in DELAYED_RPCS.items():
            if rpc in rpcs:
                return getattr(self, route)
        return None


class BatchSettings(_Strict):
    """Batch Mode's clock and faults (see the module docstring)."""

    pending_s: float = Field(1.0, ge=0)
    running_s: float = Field(2.0, ge=0)
    stuck_pending: Schedule | None = None
    expired: Schedule | None = None
    failed: Schedule | None = None
    partial_results: Schedule | None = None
    missing_key: Schedule | None = None
    repeated_key: Schedule | None = None
    download_unavailable: Schedule | None = None
    line_padding_bytes: int = Field(0, ge=0)
    delays: BatchDelays = BatchDelays()
    min_gets: int = Field(0, ge=0)  # a batch ends no sooner than its min_gets-th batches.get


class FlexFaults(_Strict):
    """The flex tier (requests with serviceTier flex): slower answers, and capacity errors that shed them."""

    latency: Latency | None = None  # extra time before a flex reply (besides `latency`)
    capacity: Schedule | None = None  # flex requests answered with a capacity error
    capacity_status: Literal[503, 429] = 503  # 503 UNAVAILABLE or 429 RESOURCE_EXHAUSTED


class FaultConfig(_Strict):
    """Everything the simulator may do wrong, as read from a profile or a faults file."""

    seed: int | None = None
    latency: Latency | None = None
    limits: Limits = Limits()
    server_error: Schedule | None = None
    unavailable: Schedule | None = None
    hang: HangSchedule | None = None
    drop: Schedule | None = None
    malformed: Schedule | None = None
    envelope200: Schedule | None = None
    blocked: Schedule | None = None
    safety: Schedule | None = None
    no_image: Schedule | None = None
    max_tokens: Schedule | None = None
    billing_402: Schedule | None = None
    prepaid_429: Schedule | None = None
    refusal: Schedule | None = None
    image_url_fault: Schedule | None = None  # GETs of served image URLs answered 503; not in FAULT_NAMES
    chat_image_shape: Literal["images", "markdown", "parts", "url", "rotate"] = "images"
    ratelimit_headers: bool = True
    thought_images: float = Field(0.0, ge=0.0, le=1.0)
    bad_keys: list[str] = []
    key_limits: dict[str, Limits] = {}  # an API key's own counted limits (in place of `limits` for it)
    require_key: bool = False
    image_mime: Literal["image/png", "image/jpeg", "image/webp"] = "image/png"
    batch: BatchSettings = BatchSettings()
    flex: FlexFaults | None = None  # serviceTier flex: see simulator/tiers.py
    priority_downgrade: float = Field(0.0, ge=0.0, le=1.0)  # share of priority requests served at standard
    # a generateContent body longer than this is refused 400 "Request payload size exceeds the limit"
    max_request_bytes: int = Field(100 * 1024 * 1024, gt=0)
    tokens: TokenDistributions | None = None  # seeded output text and thinking tokens: see tokendist.py

    @model_validator(mode="after")
    def _rates_fit(self) -> FaultConfig:
        total = sum(s.rate for s in self.schedules())
        if total > 1.0 + 1e-9:
            raise ValueError(f"the fault rates add up to {total:g}; they must add up to at most 1")
        return self

    def schedules(self) -> list[Schedule]:
        return [s for name in FAULT_NAMES if (s := getattr(self, name)) is not None]


PROFILES: dict[str, dict[str, Any]] = {
    "clean": {},
    "flaky": {
        "server_error": 0.02,
        "unavailable": 0.03,
        "drop": 0.01,
        "malformed": 0.01,
        "envelope200": 0.01,
        "hang": {"rate": 0.005, "seconds": 2},
        "latency": {"distribution": "uniform", "min_ms": 50, "max_ms": 500, "rate": 0.05},
        "thought_images": 0.2,
    },
    "overloaded": {
        "unavailable": 0.3,
        "server_error": 0.02,
        "latency": {"distribution": "long_tail", "median_ms": 100, "p99_ms": 2000, "max_ms": 5000},
    },
    "quota": {"limits": {"requests_per_day": 20}},
}


def profile_config(name: str) -> FaultConfig:
    """The FaultConfig of a named profile; UsageError for an unknown name."""
    if name not in PROFILES:
        known = ", ".join(PROFILES)
        raise UsageError(f"unknown simulator profile {name!r}: use one of {known}")
    return FaultConfig.model_validate(PROFILES[name])


def load_faults_file(path: str | Path) -> FaultConfig:
    """Read and validate a faults YAML file; errors name the file, the YAML path and the fix."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise SpecError(str(path), "", f"cannot read the faults file ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise SpecError(str(path), "", f"not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SpecError(str(path), "", "a faults file is a mapping of fault names to rates")
    try:
        return FaultConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-"))
        fix = _fix_message(first)
        raise SpecError(str(path), where, fix) from None


def _fix_message(error: ErrorDetails) -> str:
    if error["type"] == "extra_forbidden" and len(error["loc"]) == 1:
        allowed = ", ".join(FaultConfig.model_fields)
        return f"unknown key: top-level keys are {allowed}"
    if error["type"] == "extra_forbidden":
        return "unknown key: see the simulator's faults file in the README for the keys allowed here"
    return str(error["msg"]).removeprefix("Value error, ")


@dataclass(frozen=True, slots=True)
class Decision:
    """What happens to one generate request, before counted limits are applied."""

    fault: str | None  # one of FAULT_NAMES, or None for a normal reply
    delay_s: float
    thought_images: int


def decide(config: FaultConfig, seed: int, n: int) -> Decision:
    """The seeded decision for the n-th generate request (0-based arrival order)."""
    rng = random.Random(f"{seed}/{n}")
    u_fault, u_latency, u_thought, extra_thought = rng.random(), rng.random(), rng.random(), rng.random()
    delay = config.latency.sample_s(rng) if config.latency is not None else 0.0
    if config.latency is None or u_latency >= config.latency.rate:
        delay = 0.0
    thoughts = (1 + int(extra_thought < 0.5)) if u_thought < config.thought_images else 0
    return Decision(_pick_fault(config, n, u_fault), delay, thoughts)


def image_url_fails(config: FaultConfig, seed: int, n: int) -> bool:
    """Whether the n-th GET of an image URL (0-based) is answered 503."""
    schedule = config.image_url_fault
    if schedule is None:
        return False
    return schedule.scheduled(n) or random.Random(f"{seed}/image-url/{n}").random() < schedule.rate


def batch_fault_hits(schedule: Schedule | None, seed: int, stream: str, n: int) -> bool:
    """Whether the n-th item (0-based) of a batch fault's stream is hit; each stream draws on its own."""
    if schedule is None:
        return False
    return schedule.scheduled(n) or random.Random(f"{seed}/batch/{stream}/{n}").random() < schedule.rate


def _pick_fault(config: FaultConfig, n: int, u: float) -> str | None:
    for name in FAULT_NAMES:
        schedule = getattr(config, name)
        if schedule is not None and schedule.scheduled(n):
            return name
    edge = 0.0
    for name in FAULT_NAMES:
        schedule = getattr(config, name)
        if schedule is not None and schedule.rate:
            edge += schedule.rate
            if u < edge:
                return name
    return None
