"""Write the demo catalog as a workbook, jobs/data/catalog.xlsx (committed; run again only to change it).

    python jobs/data/make_catalog_xlsx.py

The rows of products.csv on a sheet named Products, after a notes sheet (so a job names the sheet),
with cells typed as a spreadsheet holds them: a supplier code stored as text with its leading zeros,
a price and a barcode as numbers, a date. The file's bytes are reproducible: fixed document dates and
fixed zip entry times.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from pathlib import Path

from openpyxl import Workbook

HERE = Path(__file__).parent
FIXED = dt.datetime(2026, 1, 1)
MODIFIED = re.compile(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)")
PRICES = [18, 21.5, 24, 54, 39.9, 26, 32, 19.5, 28, 12, 29, 16]


def workbook() -> Workbook:
    book = Workbook()
    notes = book.active
    notes.title = "Notes"
    notes.append(["The catalog is on the sheet Products; this sheet is not read."])
    sheet = book.create_sheet("Products")
    with (HERE / "products.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    sheet.append([*rows[0], "supplier_code", "price", "barcode", "added"])
    for index, row in enumerate(rows):
        sheet.append([*row.values(), f"{index * 37 + 5:05d}", PRICES[index], 4006381333900 + index,
                      dt.date(2026, 3, 1) + dt.timedelta(days=index)])
    book.properties.created = FIXED
    return book


def reproducible(data: bytes) -> bytes:
    """The same zip with every entry's time fixed, so the same workbook gives the same bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=FIXED.timetuple()[:6])
            entry.compress_type = zipfile.ZIP_DEFLATED
            content = source.read(info.filename)
            if info.filename == "docProps/core.xml":  # saving stamps the time in it
                content = MODIFIED.sub(rb"\g<1>2026-01-01T00:00:00Z\g<2>", content)
            target.writestr(entry, content)
    return out.getvalue()


def main() -> None:
    buffer = io.BytesIO()
    workbook().save(buffer)
    (HERE / "catalog.xlsx").write_bytes(reproducible(buffer.getvalue()))


if __name__ == "__main__":
    main()
