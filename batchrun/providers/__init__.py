"""Provider adapters: a RequestRecord in, one HTTP exchange, a provider-neutral ProviderReply out.

Adapters never sleep, retry or write files, and take the run's `httpx.AsyncClient` as an argument.
`classify` holds the pure rules that turn statuses, error envelopes and finish reasons into Outcomes.
`registry` maps `provider.kind` to its adapter, transport and token-estimate inputs: the one place kinds differ.
"""

from ..errors import InputImageChanged
from .classify import (
    classify_error,
    classify_finish,
    classify_transport,
    parse_retry_delay,
    quota_reset_time,
    retry_after_header,
)
from .gemini import (
    DEFAULT_BASE_URL,
    GeminiProvider,
    parse_reply,
    parse_sse,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "GeminiProvider",
    "InputImageChanged",
    "classify_error",
    "classify_finish",
    "classify_transport",
    "parse_reply",
    "parse_retry_delay",
    "parse_sse",
    "quota_reset_time",
    "retry_after_header",
]
