"""Strict YAML: repeated keys are errors, syntax errors name the line, 16:9 stays a string, alias bombs
are refused; the same on libyaml's parser and on PyYAML's pure-Python one (every test runs on both)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from batchrun.errors import EXIT_USAGE, SpecError
from batchrun.planning import yamlload
from batchrun.planning.yamlload import LOADERS, MAX_NODES, load_yaml

NEEDS_LIBYAML = pytest.mark.skipif("c" not in LOADERS, reason="PyYAML was built without libyaml")


@pytest.fixture(autouse=True, params=[pytest.param("c", marks=NEEDS_LIBYAML), "pure"])
def loader(request, monkeypatch) -> type:
    """Every test reads through each parser: the one `load_yaml` uses by default is swapped."""
    monkeypatch.setattr(yamlload, "DEFAULT_LOADER", LOADERS[request.param])
    return LOADERS[request.param]


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
        ("request:\n  generation_config:\n    imageConfig: {imageSize: 1K, imageSize: 2K}\n",
         "request.generation_config.imageConfig.imageSize", "imageSize", 3),
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


def test_yaml_1_1_booleans_nulls_and_dates_are_read_as_before(tmp_path):
    path = write(tmp_path, "flags: [yes, no, on, off, Yes, OFF, true, y, n]\nnone: [~, null, NULL]\nempty:\n"
                           "day: 2026-01-02\nat: 2026-01-02 10:30:00\nzulu: 2026-01-02T10:30:00Z\n")
    assert load_yaml(path) == {
        "flags": [True, False, True, False, True, False, True, "y", "n"],
        "none": [None, None, None],
        "empty": None,
        "day": dt.date(2026, 1, 2),
        "at": dt.datetime(2026, 1, 2, 10, 30),
        "zulu": dt.datetime(2026, 1, 2, 10, 30, tzinfo=dt.UTC),
    }


def test_base_60_floats_stay_strings_too(tmp_path):
    path = write(tmp_path, "a: [1:30.5, -2:05.0, 1.5, .5, -.inf, 1e3, 1.0e+3]\n")
    assert load_yaml(path) == {"a": ["1:30.5", "-2:05.0", 1.5, 0.5, float("-inf"), "1e3", 1000.0]}


def test_a_tab_where_pyyaml_refuses_it_is_refused_by_both_parsers(tmp_path):
    path = write(tmp_path, "name:\tx\n")
    assert error_of(path) == f"{path}: line 1: found character '\\t' that cannot start any token; fix the YAML syntax"


def test_tabs_inside_quoted_and_block_text_are_kept(tmp_path):
    path = write(tmp_path, 'a: "x\ty"\nb: |\n  p\tq\n')
    assert load_yaml(path) == {"a": "x\ty", "b": "p\tq\n"}


def test_nesting_too_deep_is_one_line(tmp_path):
    path = write(tmp_path, "[" * 20_000 + "]" * 20_000 + "\n")
    assert error_of(path) == f"{path}: line 1: the YAML nests too deeply to read; flatten it"


# ------------------------------------------------------------------------------------ anchors and aliases


def test_anchors_aliases_and_merge_keys_work(tmp_path):
    path = write(tmp_path, (
        "rows:\n"
        "  - &base {color: red, size: M}\n"
        "  - {<<: *base, size: L}\n"
        "  - {<<: [*base, {glaze: matte}], color: blue}\n"
        "tags: &tags [a, b]\n"
        "more: *tags\n"
    ))
    assert load_yaml(path) == {
        "rows": [
            {"color": "red", "size": "M"},
            {"color": "red", "size": "L"},
            {"color": "blue", "size": "M", "glaze": "matte"},
        ],
        "tags": ["a", "b"],
        "more": ["a", "b"],
    }


def bomb(levels: int) -> str:
    """'Billion laughs': each level a list of nine aliases of the level before; 9**levels leaves."""
    names = "abcdefghijklmnopqrstuvwxyz"
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for before, name in zip(names, names[1:levels]):
        lines.append(f"{name}: &{name} [{', '.join([f'*{before}'] * 9)}]")
    return "\n".join(lines) + "\n"


def test_a_billion_laughs_is_refused_at_the_alias_that_passes_the_limit(tmp_path):
    path = write(tmp_path, bomb(9))
    # a..f expand to 10 + 91 + 820 + 7,381 + 66,430 + 597,871 nodes; the first *f on line 7 passes 10**6
    with pytest.raises(SpecError) as caught:
        load_yaml(path)
    assert str(caught.value) == (
        f"{path}: line 7: the alias *f takes the spec past 1,000,000 nodes once expanded; "
        "expand the aliases by hand, or keep the spec under 1,000,000 nodes"
    )
    assert caught.value.exit_code == EXIT_USAGE
    assert MAX_NODES == 1_000_000


@pytest.mark.parametrize(("limit", "accepted"), [(9, True), (8, False)])
def test_the_limit_counts_every_node_once_each_alias_is_expanded(tmp_path, limit, accepted):
    # mapping, key a, list, x, y, key b, and *a expanded again (list, x, y): 9 nodes
    path = write(tmp_path, "a: &a [x, y]\nb: *a\n")
    if accepted:
        assert load_yaml(path, max_nodes=limit) == {"a": ["x", "y"], "b": ["x", "y"]}
    else:
        assert error_of_limited(path, limit) == (
            f"{path}: line 2: the alias *a takes the spec past 8 nodes once expanded; "
            "expand the aliases by hand, or keep the spec under 8 nodes"
        )


def error_of_limited(path: Path, limit: int) -> str:
    with pytest.raises(SpecError) as caught:
        load_yaml(path, max_nodes=limit)
    return str(caught.value)


def test_aliases_of_scalars_count_one_node_and_do_not_shift_the_line_named(tmp_path):
    path = write(tmp_path, "s: &s word\nt: *s\nl: &l [1, 2, 3]\nm: [*s, *s, *l]\nn: *l\n")
    assert error_of_limited(path, 18).startswith(f"{path}: line 5: the alias *l takes the spec past 18 nodes")


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path):
    path = write(tmp_path, "name: x\nloop: &loop\n  - a\n  - *loop\n")
    assert error_of(path) == (
        f"{path}: line 4: the alias *loop is inside its own anchor and never ends; "
        "expand the aliases by hand, or keep the spec under 1,000,000 nodes"
    )


def test_a_bomb_under_a_raised_limit_is_walked_once_per_node(tmp_path):
    # 9**9 leaves through aliases: checking every path would take minutes; each node is checked once
    data = load_yaml(write(tmp_path, bomb(9)), max_nodes=10**10)
    assert data["i"][8][8][8][8][8][8][8][8][8] == "x"
    assert data["i"][0] is data["i"][8]


def test_a_repeated_key_in_an_anchored_mapping_is_named_where_it_is_written(tmp_path):
    path = write(tmp_path, "defaults: &d\n  color: red\n  color: blue\nrows:\n  - *d\n  - {<<: *d, sku: A}\n")
    assert error_of(path) == f"{path}: defaults.color: key 'color' appears twice (line 3); keep one"


def test_a_key_given_through_an_alias_counts_as_that_key(tmp_path):
    path = write(tmp_path, "key: &k color\nrow: {*k : red, size: M, color: blue}\n")
    assert error_of(path) == f"{path}: row.color: key 'color' appears twice (line 2); keep one"


def test_a_merge_then_the_same_key_twice_is_still_an_error(tmp_path):
    path = write(tmp_path, "base: &b {color: red}\nrow: {<<: *b, size: M, size: L}\n")
    assert error_of(path) == f"{path}: row.size: key 'size' appears twice (line 2); keep one"


@NEEDS_LIBYAML
def test_what_only_libyaml_refuses_is_refused_with_its_own_message(tmp_path):
    path = write(tmp_path, 'a: "\\ud800"\n')  # a lone surrogate: PyYAML reads it, libyaml does not
    with pytest.raises(SpecError) as caught:
        load_yaml(path, loader=LOADERS["c"])
    assert str(caught.value) == f"{path}: line 1: found invalid Unicode character escape code; fix the YAML syntax"
