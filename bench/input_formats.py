"""Input formats: the same catalog read as CSV, as .xlsx, and as a store export grouped by product.

    python bench/input_formats.py                 # 100,000 rows, 3 rounds
    python bench/input_formats.py --rows 2000     # a smoke run

One process, interleaved round by round: `iter_row_batches` over the same rows written as CSV, as
an .xlsx workbook with its text in a shared-strings table (as Excel and LibreOffice save it), and as
one with its text inline (as openpyxl saves it), and over a Shopify-style export of the same size (4 rows a
product) with `inputs.group: {by: Handle, images: each}`. Prints each median in rows per second (CPU
seconds, less disturbed by other work on a shared machine), and xlsx/csv and grouped/csv, as one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

from openpyxl import Workbook

from batchrun.planning.inputs import iter_row_batches
from batchrun.planning.spec import load_spec

COLUMNS = ["sku", "title", "color", "category", "material", "photo", "price", "barcode"]
EXPORT = ["Handle", "Title", "Vendor", "Option1 Value", "Variant SKU", "Variant Price", "Image Src", "Image Position"]


def catalog_rows(rows: int) -> list[list[str]]:
    return [[f"S{i:06d}", f"Mug {i}", "sage", "mug", "stoneware", f"photos/{i}.png", f"{i % 90}.5", f"{4006381333900 + i}"]
            for i in range(rows)]


def export_rows(rows: int) -> list[list[str]]:
    out = []
    for i in range(rows):
        product, k = divmod(i, 4)
        first = k == 0
        out.append([f"p{product}", f"Mug {product}" if first else "", "Kiln" if first else "", f"v{k}",
                    f"S{i}", "18.00", f"photos/{product}-{k}.png" if k < 3 else "", str(k + 1) if k < 3 else ""])
    return out


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def write_xlsx(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """openpyxl writes each text cell inline (<is><t>...</t></is>), which it reads back slowly."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Products")
    sheet.append(header)
    for row in rows:
        sheet.append([*row[:6], float(row[6]), int(row[7])])  # price and barcode as numbers, as a sheet holds them
    book.save(path)


INLINE = re.compile(rb'<c r="([A-Z]+[0-9]+)" t="inlineStr"><is><t>([^<]*)</t></is></c>')
SHARED_TYPE = (b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
               b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>')
SHARED_REL = (b'<Relationship Id="rIdShared" Target="sharedStrings.xml" '
              b'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings"/>')


def with_shared_strings(source: Path, target: Path) -> None:
    """The same workbook with its text in a shared-strings table, as Excel and LibreOffice write it."""
    strings: dict[bytes, int] = {}

    def shared(match: re.Match[bytes]) -> bytes:
        index = strings.setdefault(match[2], len(strings))
        return b'<c r="' + match[1] + b'" t="s"><v>' + str(index).encode() + b"</v></c>"

    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for name in old.namelist():
            data = old.read(name)
            if name.startswith("xl/worksheets/"):
                data = INLINE.sub(shared, data)
            elif name == "[Content_Types].xml":
                data = data.replace(b"</Types>", SHARED_TYPE + b"</Types>")
            elif name == "xl/_rels/workbook.xml.rels":
                data = data.replace(b"</Relationships>", SHARED_REL + b"</Relationships>")
            new.writestr(name, data)
        items = b"".join(b"<si><t>" + text + b"</t></si>" for text in strings)
        new.writestr("xl/sharedStrings.xml", b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
                     b'uniqueCount="' + str(len(strings)).encode() + b'">' + items + b"</sst>")


def spec(folder: Path, name: str, inputs: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(f"name: {name}\nmodel: gemini-3-flash-preview\ninputs: {inputs}\nrequest: {{prompt: x}}\n",
                    encoding="utf-8")
    return path


def cpu_seconds(path: Path) -> tuple[float, int]:
    loaded = load_spec(path)
    start = time.process_time()
    count = sum(len(batch) for batch in iter_row_batches(loaded))
    return time.process_time() - start, count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        rows = catalog_rows(args.rows)
        write_csv(folder / "rows.csv", COLUMNS, rows)
        write_xlsx(folder / "inline.xlsx", COLUMNS, rows)
        with_shared_strings(folder / "inline.xlsx", folder / "rows.xlsx")
        write_csv(folder / "export.csv", EXPORT, export_rows(args.rows))
        specs = {
            "csv": spec(folder, "csv", "{path: rows.csv}"),
            "xlsx": spec(folder, "xlsx", "{path: rows.xlsx}"),
            "xlsx_inline": spec(folder, "inline", "{path: inline.xlsx}"),
            "grouped_csv": spec(folder, "grouped", "{path: export.csv, group: {by: Handle, images: each}}"),
        }
        times: dict[str, list[float]] = {name: [] for name in specs}
        counts: dict[str, int] = {}
        for _ in range(args.rounds):
            for name, path in specs.items():
                seconds, counts[name] = cpu_seconds(path)
                times[name].append(seconds)
    median = {name: statistics.median(values) for name, values in times.items()}
    print(json.dumps({
        "rows": args.rows,
        "rows_out": counts,
        "cpu_s": {name: [round(v, 3) for v in values] for name, values in times.items()},
        "rows_per_s": {name: round(args.rows / median[name]) for name in median},
        "xlsx_over_csv": round(median["xlsx"] / median["csv"], 1),
        "xlsx_inline_over_csv": round(median["xlsx_inline"] / median["csv"], 1),
        "grouped_over_csv": round(median["grouped_csv"] / median["csv"], 1),
    }))


if __name__ == "__main__":
    main()
