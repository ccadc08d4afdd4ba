"""Strings that match a regular expression, drawn from a seeded random source.

A schema's `pattern` is a regular expression a string must contain a match of; a string that matches
the whole expression does. The expression is read by the standard library's own parser (`re._parser`,
present from Python 3.11): literals, classes, `.`, repeats, groups, alternation and backreferences are
drawn, anchors draw nothing. Lookarounds and conditionals raise `UnsupportedPattern`, and so does a
drawn string that `re.search` does not accept, so a caller never gets a string that fails the pattern.
"""

from __future__ import annotations

import random
import re
import string
from typing import Any

from ..errors import UnsupportedPattern

try:
    from re import _parser as _regex_parser  # type: ignore[attr-defined]  # private: typeshed has no stub for it
except ImportError:  # pragma: no cover - a future Python that moves it: patterns are left unsampled
    _regex_parser = None

OPEN_REPEAT_EXTRA = 3  # `*`, `+` and `{n,}` repeat at most this many times more than their minimum
_PRINTABLE = string.ascii_letters + string.digits + " -_.,:/"
_CATEGORY_CHARS = {
    "DIGIT": string.digits,
    "NOT_DIGIT": string.ascii_letters,
    "SPACE": " ",
    "NOT_SPACE": string.ascii_letters + string.digits,
    "WORD": string.ascii_letters + string.digits + "_",
    "NOT_WORD": " -.,",
}
_CATEGORY_REGEX = {"DIGIT": r"\d", "NOT_DIGIT": r"\D", "SPACE": r"\s", "NOT_SPACE": r"\S",
                   "WORD": r"\w", "NOT_WORD": r"\W"}


def sample_match(pattern: str, rng: random.Random) -> str:
    """A string that matches `pattern`; UnsupportedPattern when none can be drawn."""
    if _regex_parser is None:
        raise UnsupportedPattern("no regular expression parser")
    try:
        tree = _regex_parser.parse(pattern)
    except re.error as exc:
        raise UnsupportedPattern(f"not a regular expression: {exc}") from None
    text = _draw(tree, rng, {})
    if re.search(pattern, text) is None:
        raise UnsupportedPattern(f"drew {text!r}, which does not match")
    return text


def _draw(items: Any, rng: random.Random, groups: dict[int, str]) -> str:
    return "".join(_draw_one(str(op), value, rng, groups) for op, value in items)


def _draw_one(op: str, value: Any, rng: random.Random, groups: dict[int, str]) -> str:
    if op == "LITERAL":
        return chr(value)
    if op == "NOT_LITERAL":
        return rng.choice([c for c in _PRINTABLE if ord(c) != value])
    if op == "ANY":
        return rng.choice(string.ascii_letters)
    if op == "IN":
        return _draw_class(value, rng)
    if op in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
        return _draw_repeat(value, rng, groups)
    if op == "SUBPATTERN":
        group, _, _, items = value
        text = _draw(items, rng, groups)
        if group is not None:
            groups[group] = text
        return text
    if op == "ATOMIC_GROUP":
        return _draw(value, rng, groups)
    if op == "BRANCH":
        return _draw(rng.choice(value[1]), rng, groups)
    if op == "GROUPREF":
        return groups.get(value, "")
    if op == "AT":
        return ""
    raise UnsupportedPattern(f"cannot draw {op}")


def _draw_repeat(value: Any, rng: random.Random, groups: dict[int, str]) -> str:
    low, high, items = value
    high = min(high, low + OPEN_REPEAT_EXTRA)  # MAXREPEAT (unbounded) is a very large int
    return "".join(_draw(items, rng, groups) for _ in range(rng.randint(low, high)))


def _draw_class(items: list, rng: random.Random) -> str:
    if items and str(items[0][0]) == "NEGATE":
        allowed = [c for c in _PRINTABLE if not any(_in_item(c, str(op), v) for op, v in items[1:])]
        if not allowed:
            raise UnsupportedPattern("a negated class that excludes every printable character")
        return rng.choice(allowed)
    op, value = rng.choice(items)
    op = str(op)
    if op == "LITERAL":
        return chr(value)
    if op == "RANGE":
        return chr(rng.randint(*value))
    if op == "CATEGORY":
        return rng.choice(_CATEGORY_CHARS[_category(value)])
    raise UnsupportedPattern(f"cannot draw {op} in a class")


def _in_item(char: str, op: str, value: Any) -> bool:
    if op == "LITERAL":
        return ord(char) == value
    if op == "RANGE":
        return value[0] <= ord(char) <= value[1]
    if op == "CATEGORY":
        return re.fullmatch(_CATEGORY_REGEX[_category(value)], char) is not None
    raise UnsupportedPattern(f"cannot draw {op} in a negated class")


def _category(value: Any) -> str:
    name = str(value).removeprefix("CATEGORY_").removeprefix("UNI_").removeprefix("LOC_")
    if name not in _CATEGORY_CHARS:
        raise UnsupportedPattern(f"cannot draw the class {value}")
    return name
