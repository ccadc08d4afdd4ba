"""Strings drawn to match a schema's `pattern`: they match, they vary, and what cannot be drawn says so."""

from __future__ import annotations

import random
import re

import pytest

from batchrun.errors import UnsupportedPattern
from batchrun.simulator.patterns import sample_match

PATTERNS = [
    r"^[A-Z]{3}-\d{4}$",
    r"^SKU-[0-9a-f]{6}(-v[1-9])?$",
    r"^(red|green|blue)/(S|M|L|XL)$",
    r"\w+@\w+\.(com|org)",
    r"^[^\s,]{2,5}$",
    r"^(ab)+\1$",
    r"^.{3}x*?y+$",
    r"(?i)^mug$",
    r"^\D\S\W?$",
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_drawn_strings_match_their_pattern(pattern):
    for seed in range(25):
        assert re.search(pattern, sample_match(pattern, random.Random(seed)))


def test_the_same_random_state_draws_the_same_string_and_others_differ():
    pattern = r"^[A-Z]{3}-\d{4}$"
    assert sample_match(pattern, random.Random(1)) == sample_match(pattern, random.Random(1))
    assert len({sample_match(pattern, random.Random(seed)) for seed in range(20)}) == 20


@pytest.mark.parametrize("pattern", [r"^(?=a)b$", r"^a(?!b)", r"(?<=x)y", r"(a)?(?(1)b|c)", r"[a"])
def test_lookarounds_conditionals_and_broken_patterns_are_unsupported(pattern):
    with pytest.raises(UnsupportedPattern):
        sample_match(pattern, random.Random(0))
