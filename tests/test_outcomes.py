"""Typed outcomes: the strings written to files stay the same, and replies say what the pool acts on."""

from __future__ import annotations

import json
import re

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from batchrun.outcomes import (
    FINAL_STATUSES,
    RETRYABLE_FINAL,
    STATUSES,
    ErrorKind,
    Outcome,
    Status,
)
from batchrun.records import ProviderReply


def test_statuses_are_the_strings_the_results_have_always_held() -> None:
    assert [str(s) for s in STATUSES] == ["ok", "blocked", "invalid", "failed"]
    assert list(FINAL_STATUSES) == ["ok", "blocked", "invalid"] and list(RETRYABLE_FINAL) == ["invalid", "blocked"]
    assert json.dumps({Status.OK: Status.FAILED}) == '{"ok": "failed"}'
    column = pa.array(["ok", "failed", "blocked"])
    assert pc.equal(column, Status.FAILED).to_pylist() == [False, True, False]
    assert pc.is_in(column, pa.array(FINAL_STATUSES)).to_pylist() == [True, False, True]


@pytest.mark.parametrize(("outcome", "status"), [(Outcome.OK, "ok"), (Outcome.BLOCKED, "blocked"),
                                                 (Outcome.INVALID, "invalid"), (Outcome.RETRY, "failed")])
def test_a_final_exchange_is_recorded_with_the_status_of_its_outcome(outcome: Outcome, status: str) -> None:
    assert Status.of(outcome) is Status(status)


@pytest.mark.parametrize("outcome", [Outcome.STOP_AUTH, Outcome.STOP_QUOTA, Outcome.STOP_BILLING])
def test_a_stopping_outcome_has_no_status_it_is_never_recorded(outcome: Outcome) -> None:
    with pytest.raises(KeyError):
        Status.of(outcome)


def test_a_reply_says_whether_it_is_rate_limited_and_worth_another_attempt() -> None:
    limited = ProviderReply(Outcome.RETRY, http_status=429, error_kind="rate_limited", retry_after_s=7.0)
    assert limited.rate_limited and limited.worth_another_attempt and not limited.missing_output
    daily = ProviderReply(Outcome.STOP_QUOTA, http_status=429, error_kind=ErrorKind.DAILY_QUOTA)
    assert not daily.rate_limited and not daily.worth_another_attempt


@pytest.mark.parametrize(("kind", "missing"), [("no_image", True), ("recitation", True), ("no_text", False),
                                               ("server_error", False), (None, False)])
def test_only_a_reply_without_its_image_counts_as_missing_output(kind: str | None, missing: bool) -> None:
    assert ProviderReply(Outcome.RETRY, error_kind=kind).missing_output is missing


@pytest.mark.parametrize(("outcome", "kind", "suspect"), [
    (Outcome.INVALID, "not_found", True), (Outcome.INVALID, "invalid_request", True),
    (Outcome.INVALID, "client_error", True), (Outcome.INVALID, "unexpected_status", True),
    (Outcome.INVALID, "unsupported_language", False), (Outcome.INVALID, "input_changed", False),
    (Outcome.RETRY, "not_found", False),
])
def test_only_400_404_like_invalid_replies_may_mean_a_wrong_endpoint(outcome: Outcome, kind: str,
                                                                      suspect: bool) -> None:
    assert ProviderReply(outcome, http_status=404, error_kind=kind).may_be_config_error is suspect


def test_every_error_kind_in_the_classification_table_is_declared() -> None:
    from batchrun.providers import classify

    kinds = set()
    for line in (classify.__doc__ or "").splitlines():
        words = line.split()
        for word, after in zip(words, words[1:]):
            if word in Outcome.__members__ and re.fullmatch(r"[a-z_0-9]+", after):
                kinds.add(after)
    assert len(kinds) > 20
    assert kinds <= {kind.value for kind in ErrorKind}
