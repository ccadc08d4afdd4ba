"""Image names a file system can hold: the pure check, and the file system's own limit."""

from __future__ import annotations

import pytest

from batchrun.planning.imagenames import NAME_MAX_DEFAULT, name_max, name_problem


@pytest.mark.parametrize("name", ["MUG-001/kitchen-counter-1-1", "a", "é/ü-ß", "a/b/c/d", "x" * 250, "sku.v2"])
def test_ordinary_names_pass(name):
    assert name_problem(name) is None


@pytest.mark.parametrize("name, reason", [
    ("a\x00b", "a NUL character"),
    ("a\nb", "a line break"),
    ("a\tb", "a tab"),
    ("a\x1bb", "the control character '\\x1b'"),
    ("1:1", "':'"),
    ("a?b", "'?'"),
    ("a\\b", "'\\\\'"),
    ("a//b", "a part of the name is ''"),
    ("a/./b", "a part of the name is '.'"),
    ("..", "a part of the name is '..'"),
    (".hidden", "starts with '.'"),
    ("a/trailing.", "ends with a dot or a space"),
    ("a/trailing ", "ends with a dot or a space"),
    ("NUL", "a device name Windows reserves"),
    ("a/lpt1.x", "a device name Windows reserves"),
    ("x" * 251, "251 bytes long and this file system takes 250 at most"),
    ("é" * 126, "252 bytes long"),
    ("d/" * 600 + "x", "bytes long; keep a name under 1024 bytes"),
])
def test_names_a_file_system_cannot_hold_are_refused_with_the_reason(name, reason):
    problem = name_problem(name)
    assert problem is not None and reason in problem


def test_a_directory_part_may_use_the_whole_limit_the_last_part_leaves_room_for_the_extension():
    assert name_problem("d" * 255 + "/x") is None
    assert name_problem("d" * 256 + "/x") is not None
    assert name_problem("x" * 143, longest_part=143) is not None  # e.g. an encrypted home folder


def test_name_max_reads_the_nearest_existing_folder(tmp_path):
    assert name_max(tmp_path / "not" / "yet" / "there") == name_max(tmp_path) <= NAME_MAX_DEFAULT
