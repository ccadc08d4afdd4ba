import json
import re

import pytest

from batchrun.review import page
from batchrun.review.page import page_meta, write_data, write_page
from batchrun.review.sheet import Sheet


def _sheet(lines: int, variants: int = 1) -> Sheet:
    sheet = Sheet(("sku",), ("scene",), "variant", {})
    sheet.add_all({"row_id": f"r{n}-{s}-{v}", "input_row": n, "sku": f"S{n}", "scene": s, "variant": v, "status": "ok",
                   "prompt": "p"} for n in range(lines) for s in ("a", "b") for v in range(variants))
    return sheet


def _calls(path):
    """The arguments of the BR.* call a data file makes."""
    text = path.read_text()
    match = re.fullmatch(r"BR\.(\w+)\((.*)\);\n", text, re.S)
    return match.group(1), json.loads(f"[{match.group(2)}]")


def test_lines_are_written_in_chunks_with_their_details_beside_them(tmp_path, monkeypatch):
    monkeypatch.setattr(page, "CHUNK_LINES", 2)
    sheet = _sheet(5)
    assert write_data(tmp_path, sheet, "job") == 3
    name, (number, lines) = _calls(tmp_path / "data" / "lines-0002.js")
    assert (name, number, [line["in"] for line in lines]) == ("addLines", 2, [["S4"]])
    name, (number, details) = _calls(tmp_path / "data" / "detail-0002.js")
    assert (name, number, sorted(details)) == ("addDetails", 2, ["r4-a-0", "r4-b-0"])
    name, (meta,) = _calls(tmp_path / "data" / "meta.js")
    assert (meta["chunkCount"], meta["lines"], meta["cells"], meta["combos"]) == (3, 5, 10, [["a"], ["b"]])


def test_a_smaller_report_removes_the_chunks_of_a_larger_one(tmp_path, monkeypatch):
    monkeypatch.setattr(page, "CHUNK_LINES", 2)
    write_data(tmp_path, _sheet(5), "job")
    write_data(tmp_path, _sheet(1), "job")
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["detail-0000.js", "lines-0000.js", "meta.js"]


def test_meta_counts_the_variants_side_by_side_and_calls_a_job_without_images_text():
    meta = page_meta(_sheet(2, variants=3), "job", 1)
    assert (meta["maxVariants"], meta["kind"], meta["statuses"]) == (3, "text", ["ok"])


def test_the_page_inlines_its_css_and_script_and_loads_only_its_own_files(tmp_path):
    path = write_page(tmp_path, _sheet(1), "<p>summary</p>", "demo<1>")
    html = path.read_text()
    assert "{{" not in html and "<p>summary</p>" in html and "demo&lt;1&gt;" in html
    sources = re.findall(r'(?:src|href)="([^"]+)"', html.split("<body>")[0])
    assert sources == ["data:,", "data/meta.js", "data/lines-0000.js"]
    assert "http" not in "".join(re.findall(r"<script>.*?</script>", html, re.S))


@pytest.mark.parametrize("name", ["report.html", "report.css", "report.js"])
def test_each_asset_ships_with_the_package(name):
    assert page.asset_text(name)
