"""Rows of an .xlsx sheet, streamed: openpyxl in read-only mode, every cell the string CSV would hold.

Input: a workbook path and a sheet name (None: the first sheet). Output: batches of row dicts keyed by
the header, the sheet's first row. Invariants: header names are distinct and none is empty (empty
cells at the header's end are ignored); blank rows are skipped; a value past the header's last column
is refused. A cell becomes a string as CSV gives it: text as typed (a SKU 00123 stored as text keeps
its zeros), a whole number without '.0', a date (a date-time at midnight) as YYYY-MM-DD, a date and
time as YYYY-MM-DDTHH:MM:SS, TRUE/FALSE, and an empty cell as '' (CSV's empty cell). Formulas give the
value Excel last saved with them.
"""

from __future__ import annotations

import datetime as dt
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from batchrun.errors import BadInputLine, InputProblem

EXACT_WHOLE = 1e16  # a float at or past this is not held exactly: written as Python writes it (1e+16)


def cell_text(value: Any) -> str:
    """One cell's value as the string a CSV export of it holds."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < EXACT_WHOLE else repr(value)
    if isinstance(value, dt.datetime):
        return _datetime_text(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _datetime_text(value: dt.datetime) -> str:
    if value.time() == dt.time(0):
        return value.date().isoformat()
    return value.isoformat(timespec="milliseconds" if value.microsecond else "seconds")


def xlsx_rows(path: Path, sheet: str | None = None) -> Iterator[dict[str, Any]]:
    """Yield the row dicts of one sheet; raises InputProblem or BadInputLine for an unusable one."""
    workbook = _open_workbook(path)
    try:
        worksheet = _sheet(workbook, sheet, path)
        worksheet.reset_dimensions()  # a sheet's stored size can be wrong (some tools write A1): read every cell
        rows = worksheet.iter_rows(values_only=True)
        try:
            yield from _rows(rows, _header(next(rows, None), sheet))
        finally:
            rows.close()  # the sheet's open stream holds the file open, even past the workbook's close
    finally:
        workbook.close()  # read-only mode keeps the file open until closed


def _rows(rows: Iterator[Sequence[Any]], header: list[str]) -> Iterator[dict[str, Any]]:
    for number, cells in enumerate(rows, start=2):
        row = _row(cells, header, number)
        if row is not None:
            yield row


def _open_workbook(path: Path) -> Any:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        with warnings.catch_warnings():  # styles and extensions openpyxl skips do not touch the values
            warnings.simplefilter("ignore")
            return load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
        raise BadInputLine(f"not a readable .xlsx workbook ({exc.__class__.__name__}); "
                           "save it again from Excel as .xlsx, or export it as .csv") from None


def _sheet(workbook: Any, sheet: str | None, path: Path) -> Any:
    if sheet is None:
        return workbook.worksheets[0]
    if sheet not in workbook.sheetnames:
        names = ", ".join(repr(name) for name in workbook.sheetnames)
        raise InputProblem("inputs.sheet", f"{path.name} has no sheet {sheet!r}; its sheets: {names}")
    return workbook[sheet]


def _header(cells: Sequence[Any] | None, sheet: str | None) -> list[str]:
    names = [cell_text(cell) for cell in cells or ()]
    while names and not names[-1].strip():
        names.pop()
    where = f"sheet {sheet!r}" if sheet else "the first sheet"
    if not names:
        raise BadInputLine(f"{where} has no header; put the column names in its first row")
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if not name.strip():
            raise BadInputLine(f"the header's column {_letter(index)} is empty; name the column or delete it")
        if name in seen:
            raise BadInputLine(f"the header names {name!r} twice (columns {_letter(seen[name])} and "
                               f"{_letter(index)}); rename one")
        seen[name] = index
    return names


def _row(cells: Sequence[Any], header: list[str], number: int) -> dict[str, str] | None:
    """The row's cells by column name; None for a blank row."""
    texts = [cell_text(cell) for cell in cells]
    if not any(texts):
        return None
    width = len(header)
    past = next((index for index in range(width, len(texts)) if texts[index]), None)
    if past is not None:
        raise BadInputLine(f"row {number} has a value in column {_letter(past)}, past the header; "
                           "name the column in the first row or delete the value")
    texts.extend([""] * (width - len(texts)))
    return dict(zip(header, texts[:width]))


def _letter(index: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(index + 1)
