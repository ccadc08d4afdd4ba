"""The provider registry: `provider.kind` -> what the planner, the estimator and the runner need of it.

In:  a `provider` section of a spec (kind, base_url, auth, stream, simulator settings).
Out: a ProviderEntry, whose functions give the adapter (wire body, endpoint, one exchange), the HTTP
     transport it sends through, the inputs of the token estimate, the default key variable and the
     endpoint a run records.

Invariant: this is the only module that tells kinds apart. A new provider is a module of its own
(an adapter that satisfies `Provider`) and one entry in `ENTRIES`. Adapters are imported when an
entry is used, so loading a spec does not import the HTTP stack.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from ..errors import UnknownProvider
from ..records import EstimateInputs, ProviderReply, RequestRecord
from ..rendered import RenderedRequest
from ..tiers import Tier

GOOGLE_BASE_URL = "https://generativelanguage.googleapis.com"
SIMULATOR_BASE_URL = "http://simulator.batchrun.invalid"
OPENAI_BASE_URL = "https://api.openai.com/v1"


class Provider(Protocol):
    """One provider's adapter: a rendered request in, one HTTP exchange, a ProviderReply out."""

    def endpoint(self, model: str, stream: bool = False) -> httpx.URL:
        """The URL a request for `model` is posted to."""
        ...

    def encode_body(self, record: RequestRecord) -> bytes:
        """The exact bytes sent for a record's rendered request, input images inlined."""
        ...

    async def send(self, client: httpx.AsyncClient, record: RequestRecord) -> ProviderReply:
        """One exchange; HTTP and transport failures come back as replies, never raised."""
        ...


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """What building an adapter and its transport takes, read from the spec and the run."""

    provider: Any  # the spec's ProviderSpec
    api_key: str | None = None
    spec_dir: Path = Path(".")
    timeout_s: float = 180.0
    concurrency: int = 16
    tier: Tier = Tier.STANDARD  # added to each body at send time, never part of the request id
    image_cache: Path | None = None  # the output folder's input cache (photos by URL, image_prep)


@dataclass(frozen=True, slots=True)
class ProviderEntry:
    """Everything that varies by `provider.kind`."""

    kind: str
    default_key_env: str | None  # the variable the key is read from when the spec names none
    build: Callable[[ProviderSettings], Provider]
    transport: Callable[[ProviderSettings], httpx.AsyncBaseTransport]
    estimate_inputs: Callable[[RenderedRequest], EstimateInputs]
    # what is sent (input images as their hash), from the rendered request and the spec's provider section
    wire_body: Callable[[RenderedRequest, Any], dict[str, Any]]
    endpoint_label: Callable[[Any], str]  # where a run sends, as `runs/*.json` records it
    default_base_url: str
    example_urls: str  # named in the message about a base_url that is not a URL
    url_path: Callable[[str, str], str]  # a base_url's path, a pasted API path dropped (ValueError: refused)
    spec_problem: Callable[[Any], tuple[str, str] | None]  # a spec key the kind can't send: (yaml path, fix)
    files_api: bool = True  # images past the inline limit are uploaded (else refused at plan time)


def _gemini_path(path: str, scheme_and_host: str) -> str:
    """The provider appends /v1beta/models/MODEL:generateContent: a pasted /v1beta or /v1beta/models is dropped."""
    path = _GEMINI_SUFFIX.sub("", path)
    if "/v1beta/" in path + "/":
        raise ValueError(
            "the URL holds the API path (/v1beta/...): batchrun adds /v1beta/models/MODEL:generateContent "
            f"itself; write only what comes before /v1beta, e.g. {scheme_and_host}{path.partition('/v1beta')[0]}"
        )
    return path


def _chat_path(path: str, scheme_and_host: str) -> str:
    """The provider appends /chat/completions: a pasted one is dropped; a Gemini-native path is refused."""
    path = _CHAT_SUFFIX.sub("", path)
    if "/models/" in path + "/" or path.rstrip("/").endswith(":generateContent"):
        raise ValueError(
            "the URL holds a Gemini-native API path; provider.kind openai posts to BASE_URL/chat/completions, "
            f"so write the chat-completions base, e.g. {scheme_and_host}/v1"
        )
    return path


_GEMINI_SUFFIX = re.compile(r"/v1beta(?:/models)?/*$")
_CHAT_SUFFIX = re.compile(r"/chat/completions/*$")


def _gemini(base_url: str) -> Callable[[ProviderSettings], Provider]:
    def build(settings: ProviderSettings) -> Provider:
        from .gemini import GeminiProvider

        spec = settings.provider
        url = base_url or spec.url
        return GeminiProvider(url, settings.api_key, auth=spec.auth, spec_dir=settings.spec_dir,
                              image_cache=settings.image_cache,
                              stream=spec.stream, timeout_s=settings.timeout_s, tier=settings.tier,
                              inline_limit=spec.inline_limit, uploads=_image_uploads(settings, url, durable=not base_url))

    return build


def _image_uploads(settings: ProviderSettings, url: str, *, durable: bool) -> Any:
    """Large input images' uploads: recorded in the shared book of `url`, or (the in-process simulator,
    whose files end with the run) in memory only."""
    from ..batching.files import ImageFilesRoute
    from .uploads import ImageUploads, UploadBook, default_book_path

    route = ImageFilesRoute(url, settings.api_key, auth=settings.provider.auth)
    return ImageUploads(route, UploadBook(default_book_path(url) if durable else None))


def _aiohttp_transport(settings: ProviderSettings) -> httpx.AsyncBaseTransport:
    from batchrun.running.http import AiohttpTransport

    return AiohttpTransport(max_connections=settings.concurrency)


def _simulator_transport(settings: ProviderSettings) -> httpx.AsyncBaseTransport:
    from ..simulator.transport import SimulatorTransport

    spec = settings.provider
    faults = str(settings.spec_dir / spec.faults) if spec.faults else None
    return SimulatorTransport(profile=spec.profile or "clean", seed=spec.seed, faults_file=faults)


def _lazy(module: str, name: str) -> Callable[..., Any]:
    """`module.name`, imported at its first call (once: the expander calls it for every row)."""
    target: Callable[..., Any] | None = None

    def call(*args: Any) -> Any:
        nonlocal target
        if target is None:
            target = getattr(importlib.import_module(module, __package__), name)
        return target(*args)

    return call


def _openai(settings: ProviderSettings) -> Provider:
    from .openai import OpenAIProvider

    spec = settings.provider
    return OpenAIProvider(spec.url, settings.api_key, spec_dir=settings.spec_dir, image_cache=settings.image_cache,
                          stream=spec.stream,
                          timeout_s=settings.timeout_s, max_tokens_field=spec.max_tokens_field,
                          tier=settings.tier)


_gemini_estimate_inputs: Callable[[RenderedRequest], EstimateInputs] = _lazy(".gemini", "gemini_estimate_inputs")
_gemini_body: Callable[[RenderedRequest, Any], dict[str, Any]] = _lazy(".gemini", "gemini_body")
_chat_body: Callable[[RenderedRequest, Any], dict[str, Any]] = _lazy(".openai_request", "chat_body")
_gemini_problem: Callable[[Any], tuple[str, str] | None] = _lazy(".openai_request", "gemini_spec_problem")
_chat_problem: Callable[[Any], tuple[str, str] | None] = _lazy(".openai_request", "chat_spec_problem")
GEMINI_EXAMPLES = "https://generativelanguage.googleapis.com or https://api.cometapi.com"


ENTRIES: dict[str, ProviderEntry] = {
    "gemini": ProviderEntry(
        kind="gemini", default_key_env="GEMINI_API_KEY", build=_gemini(""), transport=_aiohttp_transport,
        estimate_inputs=_gemini_estimate_inputs, wire_body=_gemini_body, endpoint_label=lambda spec: spec.url,
        default_base_url=GOOGLE_BASE_URL, example_urls=GEMINI_EXAMPLES, url_path=_gemini_path,
        spec_problem=_gemini_problem,
    ),
    # the Gemini adapter answered in process by the simulator: no network, no key
    "simulator": ProviderEntry(
        kind="simulator", default_key_env=None, build=_gemini(SIMULATOR_BASE_URL), transport=_simulator_transport,
        estimate_inputs=_gemini_estimate_inputs, wire_body=_gemini_body,
        endpoint_label=lambda spec: "simulator (in process)",
        default_base_url=GOOGLE_BASE_URL, example_urls=GEMINI_EXAMPLES, url_path=_gemini_path,
        spec_problem=_gemini_problem,
    ),
    # OpenAI-compatible chat completions: OpenAI, CometAPI's /v1, Google's compat route, any such gateway.
    # The spec's generation options keep their Gemini names; openai_request maps them.
    "openai": ProviderEntry(
        kind="openai", default_key_env="OPENAI_API_KEY", build=_openai, transport=_aiohttp_transport,
        estimate_inputs=_gemini_estimate_inputs, wire_body=_chat_body, endpoint_label=lambda spec: spec.url,
        default_base_url=OPENAI_BASE_URL, example_urls="https://api.cometapi.com/v1 or https://api.openai.com/v1",
        url_path=_chat_path, spec_problem=_chat_problem, files_api=False,
    ),
}
KINDS = tuple(ENTRIES)


def provider_entry(kind: str) -> ProviderEntry:
    """The registry entry of a provider kind; UnknownProvider names the kinds there are."""
    try:
        return ENTRIES[kind]
    except KeyError:
        raise UnknownProvider(kind, list(KINDS)) from None


def build_provider(settings: ProviderSettings) -> Provider:
    """The adapter for the spec's provider."""
    return provider_entry(settings.provider.kind).build(settings)


def build_transport(settings: ProviderSettings) -> httpx.AsyncBaseTransport:
    """The HTTP transport the spec's provider sends through."""
    return provider_entry(settings.provider.kind).transport(settings)
