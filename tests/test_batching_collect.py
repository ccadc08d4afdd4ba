"""Collect: each results line matched to its request 1:1; missing, unknown and repeated keys accounted for."""

from __future__ import annotations

import base64
import json

import anyio
from batch_fake import text_response

from batchrun.batching.collect import ResultsCollector, reply_of_line
from batchrun.records import Outcome


def line(key, **fields) -> str:
    return json.dumps({"key": key, **fields})


def collect(lines, wants_image):
    collector = ResultsCollector(wants_image)

    async def stream():
        for text in lines:
            yield text

    async def main():
        return [pair async for pair in collector.replies(stream())]

    return anyio.run(main), collector.summary()


def test_each_line_becomes_the_reply_of_the_request_its_key_names():
    pairs, summary = collect([line("b", response=text_response("b")), line("a", response=text_response("a"))],
                             {"a": False, "b": False})
    assert [(rid, reply.outcome, reply.text) for rid, reply in pairs] == [
        ("b", Outcome.OK, "reply to b"), ("a", Outcome.OK, "reply to a")]
    assert pairs[0].reply.usage.total == 7
    assert (summary.lines, summary.replies, summary.missing, summary.errors) == (2, 2, [], 0)


def test_an_image_reply_is_decoded_for_a_request_that_wants_one():
    png = b"\x89PNG image"
    response = {"candidates": [{"content": {"parts": [{"inlineData": {"mimeType": "image/png",
                                                                      "data": base64.b64encode(png).decode()}}]},
                                "finishReason": "STOP"}]}
    [(rid, reply)], _ = collect([line("a", response=response)], {"a": True})
    assert (rid, reply.outcome, reply.image, reply.image_mime) == ("a", Outcome.OK, png, "image/png")


def test_a_text_only_reply_to_an_image_request_is_retried_as_no_image():
    [(_, reply)], _ = collect([line("a", response=text_response("a"))], {"a": True})
    assert (reply.outcome, reply.error_kind) == (Outcome.RETRY, "no_image")


def test_a_key_missing_from_the_results_is_listed_to_go_back_to_pending():
    pairs, summary = collect([line("a", response=text_response("a"))], {"a": False, "b": False, "c": False})
    assert [rid for rid, _ in pairs] == ["a"]
    assert summary.missing == ["b", "c"]


def test_an_unknown_key_is_an_error_and_never_a_reply():
    pairs, summary = collect([line("zzz", response=text_response("zzz")), line("a", response=text_response("a"))],
                             {"a": False})
    assert [rid for rid, _ in pairs] == ["a"]
    assert (summary.unknown, summary.errors) == (["zzz"], 1)


def test_a_repeated_key_keeps_the_first_line_and_counts_the_repeat_as_an_error():
    first = text_response("a")
    second = {**text_response("a"), "candidates": [{"content": {"parts": [{"text": "impostor"}]}, "finishReason": "STOP"}]}
    pairs, summary = collect([line("a", response=first), line("a", response=second)], {"a": False, "b": False})
    assert [(rid, reply.text) for rid, reply in pairs] == [("a", "reply to a")]
    assert (summary.repeated, summary.missing, summary.errors) == (["a"], ["b"], 1)


def test_lines_without_a_key_or_not_json_are_unreadable_errors():
    pairs, summary = collect(['{"response": {}}', "not json", "[1]", line("a", response=text_response("a"))],
                             {"a": False})
    assert [rid for rid, _ in pairs] == ["a"]
    assert (summary.lines, summary.unreadable, summary.errors) == (4, 3, 3)


def test_the_inline_results_shape_with_the_key_in_metadata_is_read_too():
    pairs, _ = collect([json.dumps({"metadata": {"key": "a"}, "response": text_response("a")})], {"a": False})
    assert [rid for rid, _ in pairs] == ["a"]


def test_an_error_line_is_classified_like_a_synchronous_error():
    cases = {
        "bad": {"code": 400, "status": "INVALID_ARGUMENT", "message": "bad request"},
        "busy": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "slow down"},
        "down": {"status": "UNAVAILABLE", "message": "try later"},
    }
    replies = {key: reply_of_line({"key": key, "error": error}, False) for key, error in cases.items()}
    assert {key: (r.outcome, r.error_kind, r.http_status) for key, r in replies.items()} == {
        "bad": (Outcome.INVALID, "invalid_request", 400),
        "busy": (Outcome.RETRY, "rate_limited", 429),
        "down": (Outcome.RETRY, "unavailable", 503),
    }
    assert replies["bad"].error_message == "bad request"


def test_a_status_object_with_a_nonzero_code_is_an_error_and_a_zero_code_is_not():
    failed = reply_of_line({"key": "a", "status": {"code": 13, "message": "internal"}}, False)
    fine = reply_of_line({"key": "a", "status": {"code": 0}, "response": text_response("a")}, False)
    assert failed.outcome is Outcome.RETRY
    assert fine.outcome is Outcome.OK


def test_a_line_with_neither_response_nor_error_is_retried():
    reply = reply_of_line({"key": "a"}, False)
    assert reply.outcome is Outcome.RETRY
    assert reply.error_message == "results line has neither a response nor an error"
