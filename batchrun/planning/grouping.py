"""Store exports with several rows per product, grouped into input rows as they stream.

Input: rows in file order and a GroupSpec: the key column (a Shopify export's `Handle`), `first` or
`each`, the image column (`Image Src`) and the position column (`Image Position`, used when present).
Output, per key: its image rows ordered by position (rows without one after, in file order), each
image once; every such row has its empty cells filled from the key's first row (which carries Title,
Body (HTML), Vendor...). `first` gives the first of them; `each` gives all of them, numbered in the
column `image_index` from 1. A key with no image gives its first row, the image cell empty.

Invariants: memory holds one key's rows and an 8-byte digest of each key met. The rows of a key must
be together (a Shopify export writes them so): a key that comes back after another key is an
InputProblem saying to sort the file, never a silent second product.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Iterable, Iterator
from typing import Any

from batchrun.errors import InputProblem
from batchrun.planning.spec import GroupSpec

IMAGE_INDEX = "image_index"

Row = dict[str, Any]


def group_rows(rows: Iterable[Row], group: GroupSpec) -> Iterator[Row]:
    """The grouped rows, in the order their keys first appear."""
    seen: set[bytes] = set()
    numbered = enumerate(rows, start=1)
    for key, run in itertools.groupby(numbered, key=lambda pair: _key(pair, group)):
        members = list(run)
        digest = hashlib.blake2b(str(key).encode(), digest_size=8).digest()
        if digest in seen:
            raise InputProblem("inputs.group.by", _sort_message(group.by, key, members[0][0]))
        seen.add(digest)
        yield from _product_rows([row for _, row in members], group)


def _key(pair: tuple[int, Row], group: GroupSpec) -> Any:
    number, row = pair
    if number == 1:
        _check_columns(row, group)
    key = row.get(group.by)
    if key is None or key == "":
        raise InputProblem("inputs.group.by", f"row {number} has no {group.by}; fill it: every row of a "
                           "product carries its key")
    return key


def _check_columns(row: Row, group: GroupSpec) -> None:
    known = ", ".join(row)
    for where, column in (("by", group.by), ("image_column", group.image_column)):
        if column not in row:
            raise InputProblem(f"inputs.group.{where}", f"no column {column!r} in the input; name one of: {known}")
    if group.images == "each" and IMAGE_INDEX in row:
        raise InputProblem("inputs.group.images", f"the input already has a column '{IMAGE_INDEX}', which "
                           "images: each adds; rename that column")


def _sort_message(column: str, key: Any, number: int) -> str:
    return (f"row {number}: {column} {key!r} comes back after other keys; sort the file by {column} so each "
            "key's rows are together (a Shopify export already is)")


def _product_rows(members: list[Row], group: GroupSpec) -> Iterator[Row]:
    first = members[0]
    images = _image_rows(members, group)
    if not images:
        yield first
        return
    if group.images == "first":
        yield _filled(images[0], first)
        return
    for index, row in enumerate(images, start=1):
        yield {**_filled(row, first), IMAGE_INDEX: index}


def _image_rows(members: list[Row], group: GroupSpec) -> list[Row]:
    """The key's rows with an image, by position, each image once."""
    column = group.image_column
    with_image = [(index, row) for index, row in enumerate(members) if row.get(column) not in (None, "")]
    with_image.sort(key=lambda pair: (*_position(pair[1].get(group.position_column)), pair[0]))
    kept: dict[Any, Row] = {}
    for _, row in with_image:
        kept.setdefault(row[column], row)
    return list(kept.values())


def _position(value: Any) -> tuple[int, float]:
    """Rows with a numeric position first, by it; the others after (in file order)."""
    try:
        position = float(value)
    except (TypeError, ValueError):
        return (1, 0.0)
    return (0, position) if math.isfinite(position) else (1, 0.0)


def _filled(row: Row, first: Row) -> Row:
    """The row, its empty cells taken from the key's first row."""
    if row is first:
        return row
    filled = {column: value if value not in (None, "") else first.get(column, value) for column, value in row.items()}
    for column, value in first.items():
        filled.setdefault(column, value)
    return filled
