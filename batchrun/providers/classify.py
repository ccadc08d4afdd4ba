"""How every reply and every failed exchange is classified, as pure functions.

Input: an HTTP status, the parsed JSON body (a Google or CometAPI error envelope, or a generateContent
reply's finishReason / blockReason), response headers, or a transport exception. Output: an `Outcome`,
a short `error_kind`, and a retry delay when the server named one. Only structured fields are read
(status, `error.status`, `error.details[]`, `error.type` / `error.code`), never message text.

    signal                                                   outcome      error_kind
    -------------------------------------------------------  -----------  ----------------------
    200, finishReason STOP (image job: an image part exists)  OK           -
    image job, STOP / MAX_TOKENS / NO_IMAGE / IMAGE_OTHER /   RETRY        no_image
      OTHER / no finishReason, and no image part
    image job, any of those and an image part                OK           -
    text job, MAX_TOKENS with text (truncated, paid for)     OK           -
    text job, MAX_TOKENS and no text                         RETRY        no_text
    text job, OTHER / NO_IMAGE / IMAGE_OTHER                 RETRY        other
    SAFETY, PROHIBITED_CONTENT, BLOCKLIST, SPII,             BLOCKED      safety_block
      IMAGE_SAFETY, IMAGE_PROHIBITED_CONTENT
    RECITATION, IMAGE_RECITATION                             RETRY        recitation
    LANGUAGE                                                 INVALID      unsupported_language
    MALFORMED_FUNCTION_CALL, UNEXPECTED_TOOL_CALL,           RETRY        tool_call
      TOO_MANY_TOOL_CALLS
    any other finishReason                                   RETRY        unknown_finish
    no candidates, promptFeedback.blockReason                BLOCKED      prompt_blocked
    no candidates, no blockReason                            RETRY        no_candidates
    200 whose JSON is an error envelope                      as the error it carries (code from the
                                                             envelope, else Google status); neither:
                                                             RETRY envelope_in_200
    200 whose body is not JSON (or not a reply)              RETRY        malformed
    400 + ErrorInfo reason API_KEY_INVALID                   STOP_AUTH    auth
    400 + status FAILED_PRECONDITION (billing, region)       STOP_AUTH    precondition
    401                                                      STOP_AUTH    auth
    403                                                      STOP_AUTH    permission
    error.type / error.code insufficient_quota (any status)  STOP_QUOTA   insufficient_quota
    402 (a prepaid balance used up)                          STOP_BILLING billing
    ErrorInfo reason PREPAYMENT_CREDITS_DEPLETED or          STOP_BILLING billing
      BILLING_DISABLED (any status, a 429 included)
    429 + QuotaFailure quotaId containing "PerDay"           STOP_QUOTA   daily_quota
    429                                                      RETRY        rate_limited
    408, 504, 524                                            RETRY        timeout
    502, 503                                                 RETRY        unavailable
    500 + CometAPI error.code "invalid_request"              INVALID      invalid_request
    500, other 5xx                                           RETRY        server_error
    other 400                                                INVALID      invalid_request
    404                                                      INVALID      not_found
    other 4xx                                                INVALID      client_error
    any other status (1xx, 3xx: a wrong base URL)            INVALID      unexpected_status
    httpx.TimeoutException                                   RETRY        timeout
    other httpx.RequestError (connect, read, protocol)       RETRY        connection

A RETRY's `retry_after_s` comes from `RetryInfo.retryDelay`, else `Retry-After` (seconds or an
HTTP date), else `retry-after-ms`. A daily-quota STOP_QUOTA's `retry_after_s` is the time left until
the quota resets (midnight Pacific time, or what a `Retry-After` header says: its RetryInfo is ignored, Google
sends a few seconds there though the quota stays spent until midnight), when `now` is given.

Error messages come out whole, on one line: the provider scrubs the API key from all of a message
before it cuts it short (`messages.safe_message`), so that no cut can leave part of the key behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, time, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from ..outcomes import ErrorKind
from ..records import Outcome, ProviderReply
from .messages import one_line

PACIFIC = ZoneInfo("America/Los_Angeles")

_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"

BLOCKING_FINISHES = frozenset(
    {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT"}
)
RECITATION_FINISHES = frozenset({"RECITATION", "IMAGE_RECITATION"})
TOOL_FINISHES = frozenset({"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"})
SOFT_FINISHES = frozenset({"STOP", "MAX_TOKENS", "NO_IMAGE", "IMAGE_OTHER", "OTHER", None})
INSUFFICIENT_QUOTA = frozenset(
    {
        "insufficient_quota",
        "credit_balance_exhausted",
        "organization_spend_limit_exceeded",
        "project_spend_limit_exceeded",
        "organization_usage_limit_exceeded",
    }
)
# ErrorInfo reasons that say the account can't pay: no request will pass until someone adds credit.
BILLING_REASONS = frozenset({"PREPAYMENT_CREDITS_DEPLETED", "BILLING_DISABLED"})
# An error envelope in an HTTP 200 may carry only a Google status; this gives it a code.
_GOOGLE_STATUS_CODES = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
_RETRY_KINDS = {408: "timeout", 429: "rate_limited", 502: "unavailable", 503: "unavailable",
                504: "timeout", 524: "timeout"}


def classify_finish(
    finish_reason: str | None, has_image: bool, wants_image: bool, has_text: bool = True
) -> tuple[Outcome, str | None]:
    """The outcome and error kind of a reply with candidates, from candidate 0's finishReason."""
    if finish_reason in BLOCKING_FINISHES:
        return Outcome.BLOCKED, "safety_block"
    if finish_reason in RECITATION_FINISHES:
        return Outcome.RETRY, "recitation"
    if finish_reason in SOFT_FINISHES:
        if wants_image:
            return (Outcome.OK, None) if has_image else (Outcome.RETRY, "no_image")
        if finish_reason in ("STOP", None):
            return Outcome.OK, None
        if finish_reason == "MAX_TOKENS":
            return (Outcome.OK, None) if has_text else (Outcome.RETRY, "no_text")
        return Outcome.RETRY, "other"
    if finish_reason == "LANGUAGE":
        return Outcome.INVALID, "unsupported_language"
    if finish_reason in TOOL_FINISHES:
        return Outcome.RETRY, "tool_call"
    return Outcome.RETRY, "unknown_finish"


def error_envelope(payload: Any) -> dict[str, Any] | None:
    """The `error` object of a Google or CometAPI envelope (also inside a one-element list), or None."""
    if isinstance(payload, list) and len(payload) == 1:
        payload = payload[0]
    if isinstance(payload, dict) and "candidates" not in payload:
        error = payload.get("error")
        if isinstance(error, dict):
            return error
    return None


def classify_error(
    status: int,
    payload: Any,
    headers: Mapping[str, str] | None = None,
    *,
    now: datetime | None = None,
) -> ProviderReply:
    """Classify a non-2xx reply, or a 2xx reply whose body is an error envelope."""
    error = error_envelope(payload) or {}
    code = status if not 200 <= status < 300 else envelope_status(error)
    message = one_line(error.get("message")) or f"HTTP {code or status}"
    outcome, kind = classify_status(code, error)
    reply = ProviderReply(outcome, http_status=status, error_kind=kind, error_message=message)
    if kind == ErrorKind.DAILY_QUOTA:
        reset_in = retry_after_header(_header(headers, "retry-after"), now=now) if headers else None
        reply.error_message, reply.retry_after_s = daily_quota_message(error, now, reset_in)
    elif outcome is Outcome.RETRY:
        reply.retry_after_s = retry_delay(error, headers, now=now)
    return reply


def envelope_status(error: Mapping[str, Any]) -> int | None:
    """The HTTP status an envelope inside a 200 stands for: its int code, else its Google status."""
    code = error.get("code")
    if isinstance(code, int) and not isinstance(code, bool) and code >= 400:
        return code
    if isinstance(code, str) and code.isdigit() and int(code) >= 400:
        return int(code)
    return _GOOGLE_STATUS_CODES.get(error.get("status"))  # type: ignore[arg-type]


def classify_status(code: int | None, error: Mapping[str, Any]) -> tuple[Outcome, str]:
    """The outcome of an error from its status code and the envelope's structured fields."""
    if _marker(error, "type") in INSUFFICIENT_QUOTA or _marker(error, "code") in INSUFFICIENT_QUOTA:
        return Outcome.STOP_QUOTA, "insufficient_quota"
    if code == 402 or BILLING_REASONS & set(error_info_reasons(error)):
        return Outcome.STOP_BILLING, "billing"
    if code is None:
        if _marker(error, "code") == "invalid_request":
            return Outcome.INVALID, "invalid_request"
        return Outcome.RETRY, "envelope_in_200"
    if code == 400:
        return _classify_400(error)
    if code in (401, 403):
        return Outcome.STOP_AUTH, "auth" if code == 401 else "permission"
    if code == 429 and daily_quota_id(error) is not None:
        return Outcome.STOP_QUOTA, ErrorKind.DAILY_QUOTA
    if code in _RETRY_KINDS:
        return Outcome.RETRY, _RETRY_KINDS[code]
    if code == 500 and _marker(error, "code") == "invalid_request":
        return Outcome.INVALID, "invalid_request"
    if code >= 500:
        return Outcome.RETRY, "server_error"
    if code == 404:
        return Outcome.INVALID, "not_found"
    if code >= 400:
        return Outcome.INVALID, "client_error"
    return Outcome.INVALID, "unexpected_status"


def _classify_400(error: Mapping[str, Any]) -> tuple[Outcome, str]:
    if "API_KEY_INVALID" in error_info_reasons(error):
        return Outcome.STOP_AUTH, "auth"
    if error.get("status") == "FAILED_PRECONDITION":
        return Outcome.STOP_AUTH, "precondition"
    return Outcome.INVALID, "invalid_request"


def classify_transport(exc: BaseException) -> ProviderReply:
    """A transport failure (no HTTP reply at all) as a retryable reply."""
    kind = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection"
    detail = str(exc)
    message = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return ProviderReply(Outcome.RETRY, error_kind=kind, error_message=one_line(message))


def _marker(error: Mapping[str, Any], field: str) -> str | None:
    value = error.get(field)
    return value if isinstance(value, str) else None


def _details(error: Mapping[str, Any], type_url: str) -> list[dict[str, Any]]:
    details = error.get("details")
    if not isinstance(details, list):
        return []
    return [d for d in details if isinstance(d, dict) and d.get("@type") == type_url]


def error_info_reasons(error: Mapping[str, Any]) -> set[str]:
    """The `reason` of every ErrorInfo detail."""
    return {d["reason"] for d in _details(error, _ERROR_INFO) if isinstance(d.get("reason"), str)}


def daily_quota_id(error: Mapping[str, Any]) -> str | None:
    """The first QuotaFailure quotaId that is a per-day quota, or None."""
    for detail in _details(error, _QUOTA_FAILURE):
        for violation in detail.get("violations") or []:
            quota_id = violation.get("quotaId") if isinstance(violation, dict) else None
            if isinstance(quota_id, str) and "PerDay" in quota_id:
                return quota_id
    return None


def quota_reset_time(now: datetime) -> datetime:
    """The next midnight in America/Los_Angeles after `now` (an aware datetime), when daily quotas reset."""
    tomorrow = now.astimezone(PACIFIC).date() + timedelta(days=1)
    return datetime.combine(tomorrow, time.min, tzinfo=PACIFIC)  # DST never moves midnight


def daily_quota_message(error: Mapping[str, Any], now: datetime | None,
                        reset_in: float | None = None) -> tuple[str, float | None]:
    """The one-line message of a spent daily quota, and the seconds until it resets: midnight Pacific,
    unless a Retry-After header says otherwise (`reset_in`: a gateway's, or the simulator's short day)."""
    quota = daily_quota_id(error) or "a per-day quota"
    if now is not None and reset_in is not None:
        reset = (now + timedelta(seconds=reset_in)).astimezone()
        return (f"daily quota {quota} is spent; it resets at {reset.strftime('%H:%M:%S')} "
                f"({reset.isoformat(timespec='seconds')}, the server's Retry-After); run again then", reset_in)
    if now is None:
        return f"daily quota {quota} is spent; it resets at midnight Pacific time", None
    reset = quota_reset_time(now)
    wait = (reset - now).total_seconds()
    hours, minutes = divmod(int(wait) // 60, 60)
    return (
        f"daily quota {quota} is spent; it resets at midnight Pacific time "
        f"({reset.isoformat()}, in {hours}h{minutes:02d}m); run again then",
        wait,
    )


def retry_delay(
    error: Mapping[str, Any], headers: Mapping[str, str] | None, *, now: datetime | None = None
) -> float | None:
    """The wait the server asked for: RetryInfo.retryDelay, else Retry-After, else retry-after-ms."""
    for detail in _details(error, _RETRY_INFO):
        delay = parse_retry_delay(detail.get("retryDelay"))
        if delay is not None:
            return delay
    if not headers:
        return None
    delay = retry_after_header(_header(headers, "retry-after"), now=now)
    if delay is not None:
        return delay
    millis = _header(headers, "retry-after-ms")
    try:
        return max(0.0, float(millis) / 1000) if millis else None
    except ValueError:
        return None


def parse_retry_delay(value: Any) -> float | None:
    """Seconds in a protobuf Duration as JSON writes it ("53s", "1.5s"), or None if it is not one."""
    if not isinstance(value, str) or not value.endswith("s"):
        return None
    try:
        seconds = float(value[:-1])
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def retry_after_header(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds in a Retry-After header: delta-seconds, or an HTTP date (needs `now`)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    if now is None:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


def _header(headers: Mapping[str, str], name: str) -> str | None:
    if isinstance(headers, httpx.Headers):
        value: str | None = headers.get(name)  # case-insensitive
        return value
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None

