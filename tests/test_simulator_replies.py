"""Google-shaped bodies: usage arithmetic, RetryInfo durations, stream chunks, error bodies."""

from __future__ import annotations

import pytest

from batchrun.simulator.replies import (
    bad_key_error,
    format_delay,
    gateway_envelope,
    generate_reply,
    quota_error,
    stream_chunks,
    usage_metadata,
)


@pytest.mark.parametrize("seconds,text", [(7, "7s"), (7.0, "7s"), (1.5, "1.5s"), (0.25, "0.25s"), (53.0164, "53.016s"), (-1, "0s")])
def test_retry_delay_is_written_like_a_protobuf_duration(seconds, text):
    assert format_delay(seconds) == text


def test_usage_splits_by_modality_and_totals_everything():
    usage = usage_metadata(prompt_text=12, prompt_image=1120, out_text=5, out_image=1290, thoughts=100)
    assert usage == {
        "promptTokenCount": 1132,
        "candidatesTokenCount": 1295,
        "totalTokenCount": 2527,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12}, {"modality": "IMAGE", "tokenCount": 1120}],
        "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 5}, {"modality": "IMAGE", "tokenCount": 1290}],
        "thoughtsTokenCount": 100,
    }


def test_stream_chunks_carry_full_usage_and_finish_reason_only_at_the_end():
    usage = usage_metadata(3, 0, 20, 0, 0)
    reply = generate_reply([{"text": "x" * 80}], "STOP", usage, "m", "rid")
    chunks = stream_chunks(reply)
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks) == "x" * 80
    assert chunks[-1]["usageMetadata"] == usage and chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[0]["usageMetadata"]["totalTokenCount"] == 3 and "finishReason" not in chunks[0]["candidates"][0]


def test_quota_error_has_quota_failure_and_retry_info():
    details = quota_error("GenerateRequestsPerMinutePerProjectPerModel", "m", 7, per_day=False)["error"]["details"]
    types = [d["@type"].rsplit(".", 1)[1] for d in details]
    assert types == ["Help", "QuotaFailure", "RetryInfo"]
    assert details[1]["violations"][0]["quotaId"] == "GenerateRequestsPerMinutePerProjectPerModel"
    assert details[2]["retryDelay"] == "7s"


def test_bad_key_and_gateway_envelope_bodies():
    error = bad_key_error()["error"]
    assert (error["code"], error["status"], error["details"][0]["reason"]) == (400, "INVALID_ARGUMENT", "API_KEY_INVALID")
    envelope = gateway_envelope("abc")["error"]
    assert set(envelope) == {"message", "type", "param", "code"} and "abc" in envelope["message"]
