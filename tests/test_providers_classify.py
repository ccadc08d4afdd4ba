"""One test per row of the classification table in batchrun/providers/classify.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from batchrun.providers.classify import (
    classify_error,
    classify_finish,
    classify_transport,
    parse_retry_delay,
    quota_reset_time,
    retry_after_header,
)
from batchrun.records import Outcome

NOW = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)  # 03:00 in Los Angeles (PDT)

RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


def google_error(code, status, *details, message="boom"):
    return {"error": {"code": code, "message": message, "status": status, "details": list(details)}}


def comet_error(code="", type_="comet_api_error", message="upstream said no (request id: 2026x)"):
    return {"error": {"message": message, "type": type_, "param": "", "code": code}}


def quota(quota_id):
    return {"@type": QUOTA_FAILURE, "violations": [{"quotaId": quota_id, "quotaMetric": "m"}]}


# --- finishReason rows -------------------------------------------------------------------------


def test_stop_with_image_for_an_image_job_is_ok():
    assert classify_finish("STOP", True, True) == (Outcome.OK, None)


def test_stop_for_a_text_job_is_ok():
    assert classify_finish("STOP", False, False) == (Outcome.OK, None)


@pytest.mark.parametrize("reason", ["STOP", "MAX_TOKENS", "NO_IMAGE", "IMAGE_OTHER", "OTHER", None])
def test_image_job_without_an_image_is_retried_as_no_image(reason):
    assert classify_finish(reason, False, True, True) == (Outcome.RETRY, "no_image")


@pytest.mark.parametrize("reason", ["MAX_TOKENS", "OTHER", "IMAGE_OTHER", None])
def test_image_job_with_an_image_is_ok_whatever_the_soft_reason(reason):
    assert classify_finish(reason, True, True) == (Outcome.OK, None)


def test_max_tokens_with_text_is_ok_for_a_text_job():
    assert classify_finish("MAX_TOKENS", False, False, True) == (Outcome.OK, None)


def test_max_tokens_without_text_is_retried_for_a_text_job():
    assert classify_finish("MAX_TOKENS", False, False, False) == (Outcome.RETRY, "no_text")


@pytest.mark.parametrize("reason", ["OTHER", "NO_IMAGE", "IMAGE_OTHER"])
def test_other_for_a_text_job_is_retried(reason):
    assert classify_finish(reason, False, False) == (Outcome.RETRY, "other")


@pytest.mark.parametrize(
    "reason",
    ["SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT"],
)
@pytest.mark.parametrize("has_image", [False, True])
def test_safety_finishes_are_blocked_even_with_an_image(reason, has_image):
    assert classify_finish(reason, has_image, True) == (Outcome.BLOCKED, "safety_block")


@pytest.mark.parametrize("reason", ["RECITATION", "IMAGE_RECITATION"])
def test_recitation_is_retried(reason):
    assert classify_finish(reason, False, True) == (Outcome.RETRY, "recitation")


def test_language_is_invalid():
    assert classify_finish("LANGUAGE", False, False) == (Outcome.INVALID, "unsupported_language")


@pytest.mark.parametrize("reason", ["MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"])
def test_tool_call_finishes_are_retried(reason):
    assert classify_finish(reason, False, False) == (Outcome.RETRY, "tool_call")


@pytest.mark.parametrize("reason", ["FINISH_REASON_UNSPECIFIED", "SOMETHING_NEW"])
def test_unknown_finish_is_retried(reason):
    assert classify_finish(reason, True, True) == (Outcome.RETRY, "unknown_finish")


# --- error envelopes inside HTTP 200 ------------------------------------------------------------


def test_envelope_in_200_is_classified_by_its_code():
    reply = classify_error(200, google_error(503, "UNAVAILABLE"), {})
    assert (reply.outcome, reply.error_kind, reply.http_status) == (Outcome.RETRY, "unavailable", 200)


def test_envelope_in_200_without_code_uses_the_google_status():
    payload = {"error": {"message": "bad key", "status": "UNAUTHENTICATED"}}
    assert classify_error(200, payload).outcome is Outcome.STOP_AUTH


def test_envelope_in_200_with_neither_code_nor_status_is_retried():
    reply = classify_error(200, comet_error())
    assert (reply.outcome, reply.error_kind) == (Outcome.RETRY, "envelope_in_200")
    assert reply.error_message == "upstream said no (request id: 2026x)"


def test_envelope_in_200_wrapped_in_a_list_is_unwrapped():
    reply = classify_error(200, [google_error(404, "NOT_FOUND")])
    assert (reply.outcome, reply.error_kind) == (Outcome.INVALID, "not_found")


def test_comet_invalid_request_envelope_in_200_is_invalid():
    assert classify_error(200, comet_error("invalid_request")).outcome is Outcome.INVALID


# --- HTTP status rows -------------------------------------------------------------------------


def test_400_api_key_invalid_stops_the_run():
    payload = google_error(400, "INVALID_ARGUMENT", {"@type": ERROR_INFO, "reason": "API_KEY_INVALID"})
    reply = classify_error(400, payload)
    assert (reply.outcome, reply.error_kind) == (Outcome.STOP_AUTH, "auth")


def test_400_failed_precondition_stops_the_run():
    reply = classify_error(400, google_error(400, "FAILED_PRECONDITION"))
    assert (reply.outcome, reply.error_kind) == (Outcome.STOP_AUTH, "precondition")


def test_401_stops_the_run():
    reply = classify_error(401, comet_error())
    assert (reply.outcome, reply.error_kind) == (Outcome.STOP_AUTH, "auth")


def test_403_stops_the_run():
    reply = classify_error(403, google_error(403, "PERMISSION_DENIED"))
    assert (reply.outcome, reply.error_kind) == (Outcome.STOP_AUTH, "permission")


@pytest.mark.parametrize("status", [429, 402, 200])
def test_insufficient_quota_stops_the_run(status):
    reply = classify_error(status, comet_error("insufficient_user_quota", "insufficient_quota"))
    assert (reply.outcome, reply.error_kind) == (Outcome.STOP_QUOTA, "insufficient_quota")


def test_openai_spend_limit_code_stops_the_run():
    payload = {"error": {"message": "m", "type": "requests", "code": "project_spend_limit_exceeded"}}
    assert classify_error(429, payload).outcome is Outcome.STOP_QUOTA


def test_429_per_day_quota_stops_the_run_and_says_when_it_resets():
    payload = google_error(
        429, "RESOURCE_EXHAUSTED", quota("GenerateRequestsPerDayPerProjectPerModel"),
        {"@type": RETRY_INFO, "retryDelay": "1.5s"},
    )
    reply = classify_error(429, payload, {}, now=NOW)
    assert (reply.outcome, reply.error_kind) == (Outcome.STOP_QUOTA, "daily_quota")
    assert reply.retry_after_s == 21 * 3600  # 03:00 PDT -> midnight PDT
    assert "GenerateRequestsPerDayPerProjectPerModel" in reply.error_message
    assert "midnight Pacific time (2026-05-02T00:00:00-07:00, in 21h00m)" in reply.error_message


def test_429_per_day_quota_without_a_clock_still_names_the_reset():
    payload = google_error(429, "RESOURCE_EXHAUSTED", quota("GenerateRequestsPerDayPerProjectPerModel-FreeTier"))
    reply = classify_error(429, payload)
    assert reply.outcome is Outcome.STOP_QUOTA
    assert reply.error_message.endswith("resets at midnight Pacific time")
    assert reply.retry_after_s is None


def test_429_per_minute_is_retried_after_the_retry_info_delay():
    payload = google_error(
        429, "RESOURCE_EXHAUSTED", quota("GenerateContentPaidTierInputTokensPerModelPerMinute"),
        {"@type": RETRY_INFO, "retryDelay": "53s"},
    )
    reply = classify_error(429, payload, {"Retry-After": "9"})
    assert (reply.outcome, reply.error_kind, reply.retry_after_s) == (Outcome.RETRY, "rate_limited", 53.0)


def test_429_without_retry_info_uses_the_retry_after_header():
    reply = classify_error(429, google_error(429, "RESOURCE_EXHAUSTED"), httpx.Headers({"Retry-After": "7"}))
    assert (reply.error_kind, reply.retry_after_s) == ("rate_limited", 7.0)


def test_429_with_retry_after_ms_header():
    reply = classify_error(429, comet_error(), {"retry-after-ms": "1500"})
    assert reply.retry_after_s == 1.5


@pytest.mark.parametrize("status", [408, 504, 524])
def test_timeouts_are_retried(status):
    reply = classify_error(status, None)
    assert (reply.outcome, reply.error_kind, reply.retry_after_s) == (Outcome.RETRY, "timeout", None)
    assert reply.error_message == f"HTTP {status}"


@pytest.mark.parametrize("status", [502, 503])
def test_unavailable_is_retried(status):
    reply = classify_error(status, google_error(status, "UNAVAILABLE"))
    assert (reply.outcome, reply.error_kind) == (Outcome.RETRY, "unavailable")


def test_comet_500_invalid_request_is_invalid():
    reply = classify_error(500, comet_error("invalid_request"))
    assert (reply.outcome, reply.error_kind) == (Outcome.INVALID, "invalid_request")


@pytest.mark.parametrize("status", [500, 501, 599])
def test_other_5xx_is_retried_as_server_error(status):
    reply = classify_error(status, comet_error())
    assert (reply.outcome, reply.error_kind) == (Outcome.RETRY, "server_error")


def test_other_400_is_invalid():
    reply = classify_error(400, google_error(400, "INVALID_ARGUMENT"))
    assert (reply.outcome, reply.error_kind) == (Outcome.INVALID, "invalid_request")


def test_404_is_invalid():
    reply = classify_error(404, None)
    assert (reply.outcome, reply.error_kind) == (Outcome.INVALID, "not_found")


@pytest.mark.parametrize("status", [405, 409, 413, 422])
def test_other_4xx_is_invalid(status):
    reply = classify_error(status, None)
    assert (reply.outcome, reply.error_kind) == (Outcome.INVALID, "client_error")


@pytest.mark.parametrize("status", [301, 302, 101])
def test_unexpected_status_is_invalid(status):
    reply = classify_error(status, None)
    assert (reply.outcome, reply.error_kind) == (Outcome.INVALID, "unexpected_status")


def test_classification_ignores_message_text():
    payload = google_error(400, "INVALID_ARGUMENT", message="API key not valid. Please retry in 5s.")
    reply = classify_error(400, payload)
    assert (reply.outcome, reply.retry_after_s) == (Outcome.INVALID, None)


def test_error_message_is_one_whole_line():
    # whole: the provider scrubs the key from all of it before it cuts it (providers/messages.py)
    reply = classify_error(500, google_error(500, "INTERNAL", message="line\n" + "x" * 1000))
    assert reply.error_message == "line " + "x" * 1000


# --- transport rows -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc", [httpx.ReadTimeout("read timed out"), httpx.ConnectTimeout(""), httpx.PoolTimeout("pool")]
)
def test_timeouts_in_transport_are_retried(exc):
    reply = classify_transport(exc)
    assert (reply.outcome, reply.error_kind, reply.http_status) == (Outcome.RETRY, "timeout", None)


@pytest.mark.parametrize(
    "exc",
    [httpx.ConnectError("refused"), httpx.ReadError("reset"), httpx.RemoteProtocolError("closed")],
)
def test_connection_failures_are_retried(exc):
    reply = classify_transport(exc)
    assert (reply.outcome, reply.error_kind) == (Outcome.RETRY, "connection")
    assert reply.error_message.startswith(type(exc).__name__)


# --- delays and the quota clock ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("53s", 53.0), ("1.5s", 1.5), ("0.016342224s", 0.016342224), ("0s", 0.0),
     ("53", None), ("-1s", None), ("soon", None), (None, None), (53, None)],
)
def test_parse_retry_delay(value, seconds):
    assert parse_retry_delay(value) == seconds


def test_retry_after_header_in_seconds():
    assert retry_after_header("120") == 120.0
    assert retry_after_header(" 2.5 ") == 2.5


def test_retry_after_header_as_an_http_date_needs_now():
    date = "Fri, 01 May 2026 10:00:30 GMT"
    assert retry_after_header(date, now=NOW) == 30.0
    assert retry_after_header(date) is None
    assert retry_after_header("Fri, 01 May 2026 09:00:00 GMT", now=NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "later", "Fri, 99 Foo 2026"])
def test_retry_after_header_that_is_no_delay(value):
    assert retry_after_header(value, now=NOW) is None


@pytest.mark.parametrize(
    ("now", "reset"),
    [
        (NOW, "2026-05-02T00:00:00-07:00"),  # summer time
        (datetime(2026, 1, 15, 9, 0, tzinfo=UTC), "2026-01-16T00:00:00-08:00"),  # winter
        (datetime(2026, 3, 8, 7, 30, tzinfo=UTC), "2026-03-08T00:00:00-08:00"),  # eve of DST
        (datetime(2026, 5, 2, 7, 0, tzinfo=UTC), "2026-05-03T00:00:00-07:00"),  # at midnight
    ],
)
def test_quota_reset_time_is_the_next_pacific_midnight(now, reset):
    assert quota_reset_time(now).isoformat() == reset
    assert quota_reset_time(now) > now


def test_quota_reset_time_eve_of_dst_is_half_an_hour_away():
    now = datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    assert quota_reset_time(now) - now == timedelta(minutes=30)


DEPLETED = {"@type": ERROR_INFO, "reason": "PREPAYMENT_CREDITS_DEPLETED", "domain": "googleapis.com"}


@pytest.mark.parametrize("status, payload", [
    (402, google_error(402, "RESOURCE_EXHAUSTED", DEPLETED, message="Your prepayment credits are depleted.")),
    (402, {"error": {"code": 402, "message": "Payment required"}}),
    (429, google_error(429, "RESOURCE_EXHAUSTED", DEPLETED, message="Your prepayment credits are depleted.")),
    (200, google_error(429, "RESOURCE_EXHAUSTED", DEPLETED)),
    (403, google_error(403, "PERMISSION_DENIED", {"@type": ERROR_INFO, "reason": "BILLING_DISABLED"})),
])
def test_a_spent_prepaid_balance_stops_the_run_as_a_billing_stop(status, payload):
    reply = classify_error(status, payload, now=NOW)
    assert (reply.outcome, reply.error_kind) == (Outcome.STOP_BILLING, "billing")


def test_a_429_without_a_billing_reason_is_still_a_rate_limit():
    other = {"@type": ERROR_INFO, "reason": "RATE_LIMIT_EXCEEDED", "domain": "googleapis.com"}
    reply = classify_error(429, google_error(429, "RESOURCE_EXHAUSTED", other), now=NOW)
    assert (reply.outcome, reply.error_kind) == (Outcome.RETRY, "rate_limited")


def test_429_per_day_quota_with_a_retry_after_header_resets_when_the_header_says():
    payload = google_error(
        429, "RESOURCE_EXHAUSTED", quota("GenerateRequestsPerDayPerProjectPerModel"),
        {"@type": RETRY_INFO, "retryDelay": "1.5s"},
    )
    reply = classify_error(429, payload, {"Retry-After": "90"}, now=NOW)
    assert (reply.outcome, reply.retry_after_s) == (Outcome.STOP_QUOTA, 90.0)
    assert "the server's Retry-After" in reply.error_message
