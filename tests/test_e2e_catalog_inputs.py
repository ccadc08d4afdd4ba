"""`batchrun plan` (the real CLI, a subprocess) of the store-export and spreadsheet examples in jobs/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
from e2e_helpers import REPO, batchrun
from test_plan_catalog_inputs import expected_catalog_rows, shopify_rows

JOBS = REPO / "jobs"


def manifest_rows(folder: Path, name: str) -> list[dict]:
    table = pq.read_table(folder / "outputs" / name / "manifest.parquet", columns=["input_row", "variables", "output_name"])
    return [{**row, "variables": json.loads(row["variables"])} for row in table.to_pylist()]


def test_plan_of_the_shopify_example_gives_a_row_per_product_image_and_scene(tmp_path):
    done = batchrun(tmp_path, "plan", str(JOBS / "shopify-catalog.yaml"), "--json", "--output-dir", "outputs")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["input_rows"], summary["rows"], summary["requests"], summary["input_images"]) == (8, 16, 16, 8)
    scenes = ["kitchen counter", "linen tablecloth"]
    assert manifest_rows(tmp_path, "shopify-catalog") == [
        {"input_row": number, "variables": {**row, "scene": scene},
         "output_name": f"{row['handle']}/{row['image_index']}-{scene.replace(' ', '-')}"}
        for number, row in enumerate(shopify_rows(), start=1) for scene in scenes
    ]


def test_plan_of_the_xlsx_example_reads_its_named_sheet_as_strings(tmp_path):
    done = batchrun(tmp_path, "plan", str(JOBS / "catalog-xlsx.yaml"), "--json", "--output-dir", "outputs")
    assert done.returncode == 0, done.stderr
    assert (json.loads(done.stdout)["input_rows"], json.loads(done.stdout)["rows"]) == (12, 24)
    rows = manifest_rows(tmp_path, "catalog-xlsx")
    assert [row["variables"] for row in rows[::2]] == [{**row, "scene": "kitchen counter"} for row in expected_catalog_rows()]


def test_plan_of_an_unsorted_export_exits_2_with_one_line_saying_to_sort_it(tmp_path):
    shutil.copytree(JOBS / "data", tmp_path / "data", ignore=shutil.ignore_patterns("*.xlsx"))
    export = tmp_path / "data" / "shopify_products.csv"
    lines = export.read_text(encoding="utf-8").splitlines(keepends=True)
    export.write_text("".join([lines[0], lines[1], *lines[4:6], lines[2], *lines[6:]]), encoding="utf-8")
    spec = tmp_path / "shopify-catalog.yaml"
    shutil.copy(JOBS / "shopify-catalog.yaml", spec)
    done = batchrun(tmp_path, "plan", str(spec))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"batchrun: error: {spec}: inputs.group.by: row 4: Handle 'stoneware-mug' comes back after "
                           "other keys; sort the file by Handle so each key's rows are together (a Shopify export "
                           "already is)\n")
    assert not (tmp_path / "outputs" / "shopify-catalog" / "manifest.parquet").exists()
