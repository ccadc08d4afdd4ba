"""Input rows: csv, parquet, jsonl files and inline rows, read in batches."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchrun.errors import SpecError
from batchrun.planning.inputs import input_file, iter_row_batches
from batchrun.planning.spec import load_spec


def loaded_with_inputs(folder: Path, inputs: str):
    path = folder / "job.yaml"
    path.write_text(f"name: n\nmodel: gemini-3-flash-preview\ninputs: {inputs}\nrequest: {{prompt: x}}\n", encoding="utf-8")
    return load_spec(path)


def all_rows(loaded, batch_rows: int = 8192) -> list[dict]:
    return [row for batch in iter_row_batches(loaded, batch_rows) for row in batch]


def test_csv_cells_stay_strings(tmp_path):
    (tmp_path / "rows.csv").write_text('sku,qty,title\n00123,7,"Mug, large"\n0042,,é\n', encoding="utf-8")
    loaded = loaded_with_inputs(tmp_path, "{path: rows.csv}")
    assert input_file(loaded) == tmp_path / "rows.csv"
    assert all_rows(loaded) == [
        {"sku": "00123", "qty": "7", "title": "Mug, large"},
        {"sku": "0042", "qty": "", "title": "é"},
    ]


def test_csv_in_batches(tmp_path):
    lines = "\n".join(f"S{i},{i}" for i in range(7))
    (tmp_path / "rows.csv").write_text(f"sku,n\n{lines}\n", encoding="utf-8")
    batches = list(iter_row_batches(loaded_with_inputs(tmp_path, "{path: rows.csv}"), batch_rows=3))
    assert [len(b) for b in batches] == [3, 3, 1]
    assert [row["sku"] for b in batches for row in b] == [f"S{i}" for i in range(7)]


def test_parquet_keeps_its_types(tmp_path):
    table = pa.table({"sku": ["A", "B", "C"], "n": [1, 2, 3], "price": [1.5, None, 3.0]})
    pq.write_table(table, tmp_path / "rows.parquet")
    loaded = loaded_with_inputs(tmp_path, "{path: rows.parquet}")
    assert [len(b) for b in iter_row_batches(loaded, batch_rows=2)] == [2, 1]
    assert all_rows(loaded) == table.to_pylist()


def test_jsonl_and_ndjson(tmp_path):
    text = '{"sku": "A", "tags": ["x"]}\n\n{"sku": "B", "n": 2}\n{"sku": "C"}\n'
    (tmp_path / "rows.jsonl").write_text(text, encoding="utf-8")
    (tmp_path / "rows.ndjson").write_text(text, encoding="utf-8")
    for name in ("rows.jsonl", "rows.ndjson"):
        loaded = loaded_with_inputs(tmp_path, f"{{path: {name}}}")
        assert [len(b) for b in iter_row_batches(loaded, batch_rows=2)] == [2, 1]
        assert all_rows(loaded) == [{"sku": "A", "tags": ["x"]}, {"sku": "B", "n": 2}, {"sku": "C"}]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"sku": "A"}\n"just a string"\n', "line 2 is not a JSON object; write one object per line"),
        ('{"sku": "A"}\n\n{"sku": \n', "line 3 is not valid JSON (Expecting value)"),
    ],
)
def test_a_bad_jsonl_line_names_the_file_and_the_line(tmp_path, text, problem):
    (tmp_path / "rows.jsonl").write_text(text, encoding="utf-8")
    loaded = loaded_with_inputs(tmp_path, "{path: rows.jsonl}")
    with pytest.raises(SpecError) as caught:
        all_rows(loaded)
    assert str(caught.value) == f"{loaded.shown}: inputs.path: cannot read rows.jsonl: {problem}"


def test_inline_rows_in_batches(tmp_path):
    loaded = loaded_with_inputs(tmp_path, "{rows: [{a: 1}, {a: 2}, {a: '00123'}]}")
    assert input_file(loaded) is None
    assert list(iter_row_batches(loaded, batch_rows=2)) == [[{"a": 1}, {"a": 2}], [{"a": "00123"}]]


@pytest.mark.parametrize(
    ("name", "content", "where", "message"),
    [
        ("gone.csv", None, "inputs.path", "file not found: gone.csv (paths are relative to the spec's folder)"),
        ("empty.csv", "sku,title\n", "inputs.path", "empty.csv has no rows; add at least one row"),
        ("empty.jsonl", "\n\n", "inputs.path", "empty.jsonl has no rows; add at least one row"),
        ("ragged.csv", "a,b\n1,2\n3\n", "inputs.path", "cannot read ragged.csv: CSV parse error: "),
        ("junk.parquet", "not parquet", "inputs.path", "cannot read junk.parquet: "),
    ],
)
def test_input_file_problems(tmp_path, name, content, where, message):
    if content is not None:
        (tmp_path / name).write_text(content, encoding="utf-8")
    loaded = loaded_with_inputs(tmp_path, f"{{path: {name}}}")
    with pytest.raises(SpecError) as caught:
        all_rows(loaded)
    if message.endswith(": "):  # the reader's own words follow, on the same line
        assert str(caught.value).startswith(f"{loaded.shown}: {where}: {message}")
        assert "\n" not in str(caught.value)
    else:
        assert str(caught.value) == f"{loaded.shown}: {where}: {message}"


def test_empty_inline_rows(tmp_path):
    loaded = loaded_with_inputs(tmp_path, "{rows: []}")
    with pytest.raises(SpecError) as caught:
        all_rows(loaded)
    assert str(caught.value) == f"{loaded.shown}: inputs.rows: no rows; add at least one row"


def test_paths_are_relative_to_the_spec_not_the_working_folder(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "rows.csv").write_text("sku\nA\n", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert all_rows(loaded_with_inputs(tmp_path, "{path: data/rows.csv}")) == [{"sku": "A"}]
