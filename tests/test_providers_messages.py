"""Error messages as kept and shown: one line, the key scrubbed from all of it, then cut short."""

from __future__ import annotations

import pytest

from batchrun.providers.messages import (
    MAX_MESSAGE_CHARS,
    MIN_PREFIX,
    REDACTED,
    cut,
    key_forms,
    one_line,
    redact,
    safe_message,
)

KEY = "AIzaSyD-k3y+with/odd=chars_0123456789ab"


def key_pieces(text: str, key: str = KEY) -> list[str]:
    """Every run of MIN_PREFIX or more of the key's first characters found in `text`."""
    return [key[:n] for n in range(MIN_PREFIX, len(key) + 1) if key[:n] in text]


def test_one_line_joins_lines_and_runs_of_spaces():
    assert one_line("quota\n  exceeded\tfor\r\nmodel ") == "quota exceeded for model"


@pytest.mark.parametrize("value", [None, "", "  \n ", 42, {"message": "x"}])
def test_one_line_of_no_message_is_none(value):
    assert one_line(value) is None


def test_cut_keeps_a_short_text_and_marks_the_cut_of_a_long_one():
    assert cut("x" * MAX_MESSAGE_CHARS) == "x" * MAX_MESSAGE_CHARS
    assert cut("x" * 1000) == "x" * (MAX_MESSAGE_CHARS - 1) + "…"


def test_the_key_is_replaced_wherever_it_appears():
    assert redact(f"bad key {KEY}; header Bearer {KEY}", KEY) == f"bad key {REDACTED}; header Bearer {REDACTED}"


@pytest.mark.parametrize("kept", [MIN_PREFIX, 12, len(KEY) - 1])
def test_a_piece_of_the_key_a_server_cut_itself_is_replaced(kept):
    assert redact(f"invalid key {KEY[:kept]}", KEY) == f"invalid key {REDACTED}"


def test_a_masked_echo_loses_its_first_characters():
    assert redact(f"key {KEY[:10]}****{KEY[-4:]} is not valid", KEY) == f"key {REDACTED}****{KEY[-4:]} is not valid"


def test_fewer_than_min_prefix_characters_are_ordinary_text():
    assert redact("the AIzaSy prefix marks Google keys", KEY) == "the AIzaSy prefix marks Google keys"


@pytest.mark.parametrize(
    "echoed",
    ["AIzaSyD-k3y%2Bwith%2Fodd%3Dchars_0123456789ab", "AIzaSyD-k3y%2bwith%2fodd%3dchars_0123456789ab"],
)
def test_the_url_encoded_key_is_replaced_whole(echoed):
    text = f"GET https://proxy.example/v1beta/models?key={echoed} refused"
    assert redact(text, KEY) == f"GET https://proxy.example/v1beta/models?key={REDACTED} refused"


def test_key_forms_are_the_key_and_its_url_encodings():
    assert key_forms(KEY) == sorted({
        KEY,
        "AIzaSyD-k3y%2Bwith%2Fodd%3Dchars_0123456789ab",
        "AIzaSyD-k3y%2bwith%2fodd%3dchars_0123456789ab",
    })


def test_a_key_that_url_encoding_changes_early_is_still_found_whole():
    key = "a+b/c=d-0123456789"
    assert redact("raw a+b/c=d-0123456789, encoded a%2Bb%2Fc%3Dd-0123456789.", key) == (
        f"raw {REDACTED}, encoded {REDACTED}."
    )


def test_no_key_redacts_nothing():
    assert redact("AIzaSyD-k3y+with", None) == "AIzaSyD-k3y+with"


@pytest.mark.parametrize("at", [*range(MAX_MESSAGE_CHARS - 40, MAX_MESSAGE_CHARS + 21), 5000])
def test_a_key_across_the_cut_leaves_no_piece_of_itself(at):
    message = "x" * at + KEY + " and then more text" * 3
    kept = safe_message(message, KEY)
    assert len(kept) <= MAX_MESSAGE_CHARS
    assert key_pieces(kept) == []


def test_a_safe_message_is_one_line_scrubbed_then_cut():
    message = "line one\n" + "y" * 20 + f" key={KEY}\n" + "z" * 1000
    kept = safe_message(message, KEY)
    assert kept.startswith("line one " + "y" * 20 + f" key={REDACTED} zzz")
    assert len(kept) == MAX_MESSAGE_CHARS and kept.endswith("…")


def test_a_safe_message_of_nothing_is_none():
    assert safe_message(None, KEY) is None and safe_message("", KEY) is None
