"""Strict YAML: repeated keys are errors, syntax errors name the line, 16:9 stays a string."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchrun.errors import SpecError
from batchrun.yamlload import load_yaml


def write(folder: Path, text: str) -> Path:
    path = folder / "job.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path) -> str:
    with pytest.raises(SpecError) as caught:
        load_yaml(path)
    return str(caught.value)


def test_a_plain_mapping_loads(tmp_path):
    path = write(tmp_path, "name: x\nlimits: {concurrency: 4}\nitems: [1, two, 3.5, true, null]\n")
    assert load_yaml(path) == {"name": "x", "limits": {"concurrency": 4}, "items": [1, "two", 3.5, True, None]}


@pytest.mark.parametrize(
    ("text", "where", "key", "line"),
    [
        ("name: a\nmodel: b\nname: c\n", "name", "name", 3),
        ("matrix:\n  scene: [a]\n  ratio: [b]\n  scene: [c]\n", "matrix.scene", "scene", 4),
        ("request:\n  generation_config:\n    imageConfig: {imageSize: 1K, imageSize: 2K}\n", "request.generation_config.imageConfig.imageSize", "imageSize", 3),
        ("inputs:\n  rows:\n    - {sku: a}\n    - {sku: b, sku: c}\n", "inputs.rows[1].sku", "sku", 4),
    ],
)
def test_a_repeated_key_anywhere_is_an_error(tmp_path, text, where, key, line):
    path = write(tmp_path, text)
    assert error_of(path) == f"{path}: {where}: key '{key}' appears twice (line {line}); keep one"


def test_the_same_key_in_sibling_mappings_is_fine(tmp_path):
    path = write(tmp_path, "a: {x: 1}\nb: {x: 2}\nc: [{x: 1}, {x: 2}]\n")
    assert load_yaml(path) == {"a": {"x": 1}, "b": {"x": 2}, "c": [{"x": 1}, {"x": 2}]}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: a\n  model: b\n", "line 2: mapping values are not allowed here; fix the YAML syntax"),
        ("a: [1, 2\nb: 3\n", "line 2: expected ',' or ']', but got ':'; fix the YAML syntax"),
        ("a: 'open\n", "line 2: found unexpected end of stream; fix the YAML syntax"),
        ("a:\n\t- b\n", "line 2: found character '\\t' that cannot start any token; fix the YAML syntax"),
    ],
)
def test_syntax_errors_name_the_line(tmp_path, text, expected):
    path = write(tmp_path, text)
    assert error_of(path) == f"{path}: {expected}"


def test_a_missing_file(tmp_path):
    assert error_of(tmp_path / "nope.yaml") == f"{tmp_path / 'nope.yaml'}: file not found; check the path"


def test_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    assert error_of(path) == f"{path}: cannot read the file (UnicodeDecodeError)"


def test_the_shown_name_is_used_in_messages(tmp_path):
    path = write(tmp_path, "a: 1\na: 2\n")
    with pytest.raises(SpecError) as caught:
        load_yaml(path, "jobs/x.yaml")
    assert str(caught.value) == "jobs/x.yaml: a: key 'a' appears twice (line 2); keep one"


def test_unquoted_ratios_and_times_stay_strings(tmp_path):
    path = write(tmp_path, "ratios: [1:1, 4:5, 16:9, 21:9]\nat: 12:30:00\nnumbers: [10, -3, 0x1f, 1_000, 2.5]\n")
    assert load_yaml(path) == {
        "ratios": ["1:1", "4:5", "16:9", "21:9"],
        "at": "12:30:00",
        "numbers": [10, -3, 31, 1000, 2.5],
    }


def test_an_empty_file_is_none(tmp_path):
    assert load_yaml(write(tmp_path, "# only a comment\n")) is None


def test_no_python_objects(tmp_path):
    path = write(tmp_path, "a: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(SpecError, match=r"line 1: .*; fix the YAML syntax"):
        load_yaml(path)
