"""x-ratelimit-* headers: Go durations, counts with and without limits, and values that count as not sent."""

from __future__ import annotations

import pytest

from batchrun.providers.ratelimits import parse_duration, parse_headroom
from batchrun.records import Headroom


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("12ms", 0.012),
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("1h2m3.5s", 3723.5),
        ("250us", 0.00025),
        ("250µs", 0.00025),
        ("100ns", 1e-7),
        ("1.5", 1.5),
        ("0", 0.0),
        ("0s", 0.0),
        (" 2s ", 2.0),
    ],
)
def test_a_go_duration_or_plain_seconds_reads_as_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    [None, "", "soon", "1x", "s", "1s garbage", "garbage 1s", "1s2", "-1s", "-1.5", "1m-2s", "nan", "NaN", "inf", "1e400"],
)
def test_a_duration_that_cannot_be_read_or_is_negative_or_not_finite_is_none(text: str | None) -> None:
    assert parse_duration(text) is None


OPENAI_HEADERS = {
    "x-ratelimit-limit-requests": "60",
    "x-ratelimit-remaining-requests": "59",
    "x-ratelimit-reset-requests": "1s",
    "x-ratelimit-limit-tokens": "150000",
    "x-ratelimit-remaining-tokens": "149984",
    "x-ratelimit-reset-tokens": "6ms",
}


def test_openais_six_headers_make_a_headroom_of_both_limits() -> None:
    assert parse_headroom(OPENAI_HEADERS) == Headroom(
        requests=59, requests_limit=60, requests_reset_s=1.0,
        tokens=149984, tokens_limit=150000, tokens_reset_s=pytest.approx(0.006),
    )


def test_remaining_counts_alone_make_a_headroom_without_limits_or_resets() -> None:
    headers = {"x-ratelimit-remaining-requests": "3", "x-ratelimit-remaining-tokens": "900"}
    assert parse_headroom(headers) == Headroom(requests=3, tokens=900)


def test_a_requests_count_alone_leaves_the_tokens_unknown() -> None:
    headers = {"x-ratelimit-remaining-requests": "3", "x-ratelimit-reset-requests": "20s"}
    assert parse_headroom(headers) == Headroom(requests=3, requests_reset_s=20.0)


@pytest.mark.parametrize("headers", [None, {}, {"content-type": "application/json"}, {"x-request-id": "req_1"}])
def test_replies_without_rate_limit_headers_have_no_headroom(headers: dict[str, str] | None) -> None:
    assert parse_headroom(headers) is None


def test_limits_and_resets_without_a_remaining_count_are_no_headroom() -> None:
    headers = {k: v for k, v in OPENAI_HEADERS.items() if "remaining" not in k}
    assert parse_headroom(headers) is None


@pytest.mark.parametrize("bad", ["", "many", "1.5", "-1", "NaN", "0x10"])
def test_a_count_that_is_not_a_non_negative_int_counts_as_not_sent(bad: str) -> None:
    headers = {**OPENAI_HEADERS, "x-ratelimit-remaining-requests": bad, "x-ratelimit-limit-tokens": bad}
    headroom = parse_headroom(headers)
    assert headroom is not None
    assert (headroom.requests, headroom.requests_limit) == (None, 60)
    assert (headroom.tokens, headroom.tokens_limit) == (149984, None)


def test_azures_minus_one_counts_make_no_headroom() -> None:
    headers = {"x-ratelimit-remaining-requests": "-1", "x-ratelimit-remaining-tokens": "-1"}
    assert parse_headroom(headers) is None


def test_an_unreadable_reset_is_none_and_the_counts_stand() -> None:
    headroom = parse_headroom({**OPENAI_HEADERS, "x-ratelimit-reset-requests": "later"})
    assert headroom is not None
    assert (headroom.requests, headroom.requests_reset_s) == (59, None)
