"""The spreadsheet and store-export examples plan to the rows, variables and request ids the same rows as CSV give."""

from __future__ import annotations

import csv
import importlib.util
import io
from pathlib import Path

import pytest
from openpyxl import load_workbook

from batchrun.planning.manifest import iter_records
from batchrun.planning.plan import plan_job
from batchrun.planning.spec import load_spec

REPO = Path(__file__).resolve().parents[1]
JOBS = REPO / "jobs"
PRODUCTS = JOBS / "data" / "products.csv"


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def planned(spec: Path, output: Path) -> list[dict]:
    """The manifest's rows of a spec planned into `output`: what a test compares.

    The spec is copied into `output`, beside a link to its data folder (input paths and the photo
    paths in the inputs are relative to the spec), so nothing is written beside the repository's jobs.
    """
    output.mkdir(parents=True)
    (output / "data").symlink_to(spec.parent / "data")
    copy = output / spec.name
    copy.write_text(spec.read_text(encoding="utf-8").replace("  dir: outputs/", f"  dir: {output}/"), encoding="utf-8")
    summary = plan_job(load_spec(copy))
    return [
        {"request_id": r.request_id, "input_row": r.input_row, "variables": r.variables, "output_name": r.output_name}
        for r in iter_records(summary.manifest)
    ]


def in_folder(folder: Path, spec: str, inputs_block: str) -> Path:
    """A copy of jobs/SPEC beside the demo photos, with its inputs block replaced."""
    (folder / "data").mkdir(exist_ok=True)
    if not (folder / "data" / "photos").exists():
        (folder / "data" / "photos").symlink_to(JOBS / "data" / "photos")
    text = (JOBS / spec).read_text(encoding="utf-8")
    start = text.index("inputs:\n")
    end = text.index("matrix:\n")
    path = folder / spec
    path.write_text(text[:start] + inputs_block + text[end:], encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# ---------------------------------------------------------------- the spreadsheet example


def expected_catalog_rows() -> list[dict]:
    """products.csv's rows with the typed cells make_catalog_xlsx.py adds, as strings."""
    with PRODUCTS.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    prices = ["18", "21.5", "24", "54", "39.9", "26", "32", "19.5", "28", "12", "29", "16"]
    return [
        {**row, "supplier_code": f"{index * 37 + 5:05d}", "price": prices[index],
         "barcode": str(4006381333900 + index), "added": f"2026-03-{1 + index:02d}"}
        for index, row in enumerate(rows)
    ]


def test_the_committed_workbook_holds_the_demo_catalog_on_its_products_sheet():
    book = load_workbook(JOBS / "data" / "catalog.xlsx", read_only=True)
    try:
        assert book.sheetnames == ["Notes", "Products"]
    finally:
        book.close()


def test_the_workbook_script_writes_the_same_bytes_each_time():
    spec = importlib.util.spec_from_file_location("make_catalog_xlsx", JOBS / "data" / "make_catalog_xlsx.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    saved = []
    for _ in range(2):
        buffer = io.BytesIO()
        script.workbook().save(buffer)
        saved.append(script.reproducible(buffer.getvalue()))
    assert saved[0] == saved[1]


def test_the_xlsx_example_plans_the_rows_the_same_catalog_as_csv_plans(tmp_path):
    rows = expected_catalog_rows()
    from_xlsx = planned(JOBS / "catalog-xlsx.yaml", tmp_path / "xlsx")
    assert len(from_xlsx) == 24  # 12 products x 2 scenes
    assert [record["variables"] for record in from_xlsx[:2]] == [
        {**rows[0], "scene": "kitchen counter"}, {**rows[0], "scene": "picnic table"}]
    assert [record["variables"] for record in from_xlsx[::2]] == [{**row, "scene": "kitchen counter"} for row in rows]
    spec = in_folder(tmp_path, "catalog-xlsx.yaml", "inputs:\n  path: data/catalog.csv\n  id_column: sku\n")
    write_csv(tmp_path / "data" / "catalog.csv", rows)
    assert planned(spec, tmp_path / "csv") == from_xlsx


# ---------------------------------------------------------------- the Shopify export example

SHOPIFY_ROWS = [  # (handle, title, vendor, type, photo, alt, image_index): one row per product image
    ("stoneware-mug", "Stoneware Mug", "Hearth & Kiln", "Mug", "MUG-001", "Stoneware mug in sage green", 1),
    ("stoneware-mug", "Stoneware Mug", "Hearth & Kiln", "Mug", "MUG-002", "Stoneware mug in cobalt blue", 2),
    ("cast-iron-teapot", "Cast Iron Teapot", "Hearth & Kiln", "Teapot", "TEA-001", "Cast iron teapot in matte black", 1),
    ("cast-iron-teapot", "Cast Iron Teapot", "Hearth & Kiln", "Teapot", "TEA-002", "The teapot with its lid off", 2),
    ("ramen-bowl", "Ceramic Ramen Bowl", "Tidewater Ceramics", "Bowl", "BWL-001", "Ramen bowl in speckled cream", 1),
    ("ramen-bowl", "Ceramic Ramen Bowl", "Tidewater Ceramics", "Bowl", "BWL-002", "Two bowls stacked", 2),
    ("ramen-bowl", "Ceramic Ramen Bowl", "Tidewater Ceramics", "Bowl", "PLT-001", "The bowl on its matching plate", 3),
    ("soy-candle", "Soy Wax Candle", "Tidewater Ceramics", "Candle", "CAN-001", "Soy candle in an ivory tin", 1),
]
SHOPIFY_COLUMNS = ("handle", "title", "vendor", "type", "photo", "alt", "image_index")


def shopify_rows() -> list[dict]:
    return [dict(zip(SHOPIFY_COLUMNS, (*row[:4], f"data/photos/{row[4]}.png", *row[5:]))) for row in SHOPIFY_ROWS]


def test_the_shopify_example_plans_one_row_per_product_image_and_scene(tmp_path):
    records = planned(JOBS / "shopify-catalog.yaml", tmp_path / "shopify")
    scenes = ["kitchen counter", "linen tablecloth"]
    assert [record["variables"] for record in records] == [
        {**row, "scene": scene} for row in shopify_rows() for scene in scenes]
    assert [record["input_row"] for record in records] == [n for n in range(1, 9) for _ in scenes]
    assert records[2]["output_name"] == "stoneware-mug/2-kitchen-counter"
    assert len({record["request_id"] for record in records}) == 16


def test_the_shopify_example_has_the_request_ids_of_its_rows_given_flat(tmp_path):
    write_csv_rows = shopify_rows()
    spec = in_folder(tmp_path, "shopify-catalog.yaml", "inputs:\n  path: data/flat.csv\n  id_column: handle\n")
    write_csv(tmp_path / "data" / "flat.csv", write_csv_rows)
    flat = planned(spec, tmp_path / "flat")
    grouped = planned(JOBS / "shopify-catalog.yaml", tmp_path / "shopify")
    assert [r["request_id"] for r in flat] == [r["request_id"] for r in grouped]
    assert [r["output_name"] for r in flat] == [r["output_name"] for r in grouped]
    # a CSV cell is a string; grouping numbers the images
    assert [{**r["variables"], "image_index": int(r["variables"]["image_index"])} for r in flat] == [
        r["variables"] for r in grouped]


def test_images_first_keeps_one_row_per_product(tmp_path):
    text = (JOBS / "shopify-catalog.yaml").read_text(encoding="utf-8")
    (tmp_path / "data").symlink_to(JOBS / "data")
    first = tmp_path / "first.yaml"
    first.write_text(text.replace("images: each}", "images: first}").replace("{{ image_index }}-", ""), encoding="utf-8")
    records = planned(first, tmp_path / "first")
    assert [(r["variables"]["handle"], r["variables"]["photo"]) for r in records[::2]] == [
        ("stoneware-mug", "data/photos/MUG-001.png"), ("cast-iron-teapot", "data/photos/TEA-001.png"),
        ("ramen-bowl", "data/photos/BWL-001.png"), ("soy-candle", "data/photos/CAN-001.png")]
    assert "image_index" not in records[0]["variables"]
