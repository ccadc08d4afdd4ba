""".xlsx inputs: one sheet streamed through openpyxl, every cell the string a CSV of it holds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from openpyxl import Workbook
from test_inputs import all_rows, loaded_with_inputs

from batchrun.errors import SpecError
from batchrun.planning.inputs import iter_row_batches
from batchrun.planning.spreadsheet import cell_text


def write_book(path: Path, sheets: dict[str, list[list]]) -> Path:
    book = Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def rows_of(tmp_path: Path, rows: list[list], inputs: str = "{path: rows.xlsx}") -> list[dict]:
    write_book(tmp_path / "rows.xlsx", {"Sheet1": rows})
    return all_rows(loaded_with_inputs(tmp_path, inputs))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        ("00123", "00123"),
        ("  spaced  ", "  spaced  "),
        (12, "12"),
        (12.0, "12"),
        (12.5, "12.5"),
        (-3.0, "-3"),
        (0.1, "0.1"),
        (4006381333931.0, "4006381333931"),
        (1e20, "1e+20"),
        (True, "TRUE"),
        (False, "FALSE"),
        (dt.datetime(2026, 3, 1), "2026-03-01"),
        (dt.datetime(2026, 3, 1, 14, 30), "2026-03-01T14:30:00"),
        (dt.datetime(2026, 3, 1, 14, 30, 5, 250000), "2026-03-01T14:30:05.250"),
        (dt.date(2026, 3, 1), "2026-03-01"),
        (dt.time(9, 15), "09:15:00"),
    ],
)
def test_a_cell_becomes_the_string_a_csv_holds(value, text):
    assert cell_text(value) == text


def test_cells_read_back_from_a_workbook_are_strings(tmp_path):
    rows = rows_of(tmp_path, [
        ["sku", "qty", "price", "added", "stamp", "note"],
        ["00123", 12, 12.5, dt.date(2026, 3, 1), dt.datetime(2026, 3, 1, 14, 30), None],
        ["0042", None, 7.0, None, None, "é"],
    ])
    assert rows == [
        {"sku": "00123", "qty": "12", "price": "12.5", "added": "2026-03-01", "stamp": "2026-03-01T14:30:00", "note": ""},
        {"sku": "0042", "qty": "", "price": "7", "added": "", "stamp": "", "note": "é"},
    ]


def test_an_empty_cell_is_what_csv_gives_for_an_empty_cell(tmp_path):
    (tmp_path / "rows.csv").write_text("sku,qty\nA,\n", encoding="utf-8")
    from_csv = all_rows(loaded_with_inputs(tmp_path, "{path: rows.csv}"))
    assert rows_of(tmp_path, [["sku", "qty"], ["A", None]]) == from_csv == [{"sku": "A", "qty": ""}]


def test_blank_rows_are_skipped_and_short_rows_padded(tmp_path):
    rows = rows_of(tmp_path, [["sku", "title"], ["A", "Mug"], [None, None], ["B"], [], [None, ""], [None]])
    assert rows == [{"sku": "A", "title": "Mug"}, {"sku": "B", "title": ""}]


def test_empty_cells_after_the_header_are_ignored(tmp_path):
    assert rows_of(tmp_path, [["sku", None, None], ["A", None, None]]) == [{"sku": "A"}]


def test_the_first_sheet_is_read_unless_one_is_named(tmp_path):
    write_book(tmp_path / "rows.xlsx", {"First": [["sku"], ["A"]], "Products": [["sku"], ["B"], ["C"]]})
    assert all_rows(loaded_with_inputs(tmp_path, "{path: rows.xlsx}")) == [{"sku": "A"}]
    named = loaded_with_inputs(tmp_path, "{path: rows.xlsx, sheet: Products}")
    assert all_rows(named) == [{"sku": "B"}, {"sku": "C"}]


def test_rows_come_in_batches(tmp_path):
    write_book(tmp_path / "rows.xlsx", {"S": [["sku"], *[[f"S{i}"] for i in range(7)]]})
    batches = list(iter_row_batches(loaded_with_inputs(tmp_path, "{path: rows.xlsx}"), batch_rows=3))
    assert [len(batch) for batch in batches] == [3, 3, 1]
    assert [row["sku"] for batch in batches for row in batch] == [f"S{i}" for i in range(7)]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([["sku", "title", "sku"], ["A", "B", "C"]], "the header names 'sku' twice (columns A and C); rename one"),
        ([["sku", None, "title"], ["A", "B", "C"]], "the header's column B is empty; name the column or delete it"),
        ([["sku", "title"], ["A", "B", None, "stray"]], "row 2 has a value in column D, past the header; "
                                                         "name the column in the first row or delete the value"),
        ([], "the first sheet has no header; put the column names in its first row"),
    ],
)
def test_a_bad_sheet_is_one_line_naming_the_file_and_the_fix(tmp_path, rows, message):
    write_book(tmp_path / "rows.xlsx", {"Sheet1": rows})
    loaded = loaded_with_inputs(tmp_path, "{path: rows.xlsx}")
    with pytest.raises(SpecError) as caught:
        all_rows(loaded)
    assert str(caught.value) == f"{loaded.shown}: inputs.path: cannot read rows.xlsx: {message}"


def test_a_header_without_rows_has_no_rows(tmp_path):
    write_book(tmp_path / "rows.xlsx", {"Sheet1": [["sku", "title"], [None, None]]})
    loaded = loaded_with_inputs(tmp_path, "{path: rows.xlsx}")
    with pytest.raises(SpecError) as caught:
        all_rows(loaded)
    assert str(caught.value) == f"{loaded.shown}: inputs.path: rows.xlsx has no rows; add at least one row"


def test_a_missing_sheet_names_the_sheets_there_are(tmp_path):
    write_book(tmp_path / "rows.xlsx", {"Notes": [["x"]], "Products": [["sku"], ["A"]]})
    loaded = loaded_with_inputs(tmp_path, "{path: rows.xlsx, sheet: Product}")
    with pytest.raises(SpecError) as caught:
        all_rows(loaded)
    assert str(caught.value) == (f"{loaded.shown}: inputs.sheet: rows.xlsx has no sheet 'Product'; "
                                 "its sheets: 'Notes', 'Products'")


@pytest.mark.parametrize("content", [b"not a workbook", b"PK\x03\x04 a broken zip"])
def test_a_file_that_is_not_a_workbook_says_to_save_it_again(tmp_path, content):
    (tmp_path / "rows.xlsx").write_bytes(content)
    loaded = loaded_with_inputs(tmp_path, "{path: rows.xlsx}")
    with pytest.raises(SpecError) as caught:
        all_rows(loaded)
    message = str(caught.value)
    assert message.startswith(f"{loaded.shown}: inputs.path: cannot read rows.xlsx: not a readable .xlsx workbook (")
    assert message.endswith("); save it again from Excel as .xlsx, or export it as .csv")
    assert "\n" not in message


def test_a_zip_that_is_not_a_workbook_says_to_save_it_again(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "rows.xlsx", "w") as archive:
        archive.writestr("hello.txt", "not a workbook")
    loaded = loaded_with_inputs(tmp_path, "{path: rows.xlsx}")
    with pytest.raises(SpecError, match="cannot read rows.xlsx: not a readable .xlsx workbook"):
        all_rows(loaded)


@pytest.mark.parametrize(
    ("inputs", "where", "message"),
    [
        ("{path: old.xls}", "inputs.path",
         "'old.xls' is an old-format Excel workbook (.xls); open it and save it as .xlsx or .csv"),
        ("{path: rows.csv, sheet: Products}", "inputs.sheet", "a sheet applies to an .xlsx inputs.path only; remove it"),
        ("{rows: [{a: 1}], sheet: Products}", "inputs.sheet", "a sheet applies to an .xlsx inputs.path only; remove it"),
    ],
)
def test_spec_problems_of_spreadsheets(tmp_path, inputs, where, message):
    with pytest.raises(SpecError) as caught:
        loaded_with_inputs(tmp_path, inputs)
    assert str(caught.value) == f"{tmp_path / 'job.yaml'}: {where}: {message}"
