"""The error message a provider returns: one line, the API key scrubbed from it, then cut short.

In:  a message as a server, a gateway or a transport wrote it (any length, any number of lines), and
     the run's API key (or None).
Out: one line of at most MAX_MESSAGE_CHARS characters holding neither the key, nor one of its
     url-encoded forms, nor a run of MIN_PREFIX or more of its first characters.

Invariant: the key is scrubbed from the whole text before anything cuts it, so no cut can leave a
piece of it behind; and a piece of it that a server echoed itself (its own cut, its own mask) is
scrubbed too.
"""

from __future__ import annotations

import re
from os.path import commonprefix
from typing import Any
from urllib.parse import quote, quote_plus

MAX_MESSAGE_CHARS = 300
MIN_PREFIX = 8  # a shorter run of the key's first characters says too little to scrub safely
REDACTED = "[redacted]"

_PERCENT = re.compile(r"%[0-9A-F]{2}")


def one_line(message: Any) -> str | None:
    """A message on one line, each run of whitespace one space; None when there is none."""
    if not isinstance(message, str) or not message:
        return None
    return " ".join(message.split()) or None


def key_forms(key: str) -> list[str]:
    """The ways a key may appear in a message: as is, on one line, url-encoded (either hex case)."""
    encoded = quote(key, safe="")
    forms = {key, " ".join(key.split()), encoded, quote_plus(key), _PERCENT.sub(lambda m: m[0].lower(), encoded)}
    return sorted(form for form in forms if form)


def redact(text: str, key: str | None) -> str:
    """`text` with every form of `key`, and every run of a form's first MIN_PREFIX+ characters, replaced."""
    if not key:
        return text
    forms = key_forms(key)
    heads = re.compile("|".join(re.escape(form[:MIN_PREFIX]) for form in forms))
    pieces: list[str] = []
    start = 0
    while (found := heads.search(text, start)) is not None:
        pieces += [text[start : found.start()], REDACTED]
        start = found.start() + max(_matched(text, found.start(), form) for form in forms)
    return "".join(pieces) + text[start:]


def _matched(text: str, at: int, form: str) -> int:
    """How many of `form`'s first characters `text` holds from `at` on."""
    return len(commonprefix([text[at : at + len(form)], form]))


def cut(text: str) -> str:
    """`text` cut to MAX_MESSAGE_CHARS, an ellipsis marking the cut."""
    if len(text) <= MAX_MESSAGE_CHARS:
        return text
    return text[: MAX_MESSAGE_CHARS - 1] + "…"


def safe_message(message: Any, key: str | None) -> str | None:
    """The message as kept and shown: one line, the key scrubbed from all of it, then cut."""
    line = one_line(message)
    return None if line is None else cut(redact(line, key))
