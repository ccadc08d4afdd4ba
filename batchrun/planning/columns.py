"""`inputs.columns`: the input's columns a job keeps, under the names its templates use.

Input: rows (after grouping) and a mapping of template name to input column, e.g.
`{image_src: Image Src}`, which makes a column whose name has spaces usable as `{{ image_src }}`.
Output: rows holding only the named columns, renamed, in the mapping's order, plus the `image_index`
grouping adds (unless the mapping names it). Invariant: a column the mapping names and the input
lacks is an InputProblem at the first row, listing the input's columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from batchrun.errors import InputProblem
from batchrun.planning.grouping import IMAGE_INDEX

Row = dict[str, Any]


def pick_columns(rows: Iterable[Row], columns: dict[str, str]) -> Iterator[Row]:
    """Each row with only the mapped columns, under their template names."""
    pairs = list(columns.items())
    checked = False
    for row in rows:
        if not checked:
            _check_columns(row, columns)
            checked = True
        picked = {name: row[column] for name, column in pairs if column in row}
        if IMAGE_INDEX in row and IMAGE_INDEX not in picked:
            picked[IMAGE_INDEX] = row[IMAGE_INDEX]
        yield picked


def _check_columns(row: Row, columns: dict[str, str]) -> None:
    for name, column in columns.items():
        if column not in row:
            known = ", ".join(repr(key) for key in row)
            raise InputProblem(f"inputs.columns.{name}", f"no column {column!r} in the input; name one of: {known}")
