"""End to end: `batchrun report` on a job run against the simulator, checked in a real browser.

A job of 3 SKUs x 2 scenes x 2 variants runs against the simulator as an HTTP server, every 4th reply
blocked; one returned image is then replaced on disk by a 300x100 picture, so the automatic checks have
something to flag. `batchrun report SPEC` (the CLI, as a subprocess) writes the page, which Debian's
chromium opens from file:// through Playwright. The browser checks need `apt-get install -y chromium`
and `pip install playwright`; without them they skip, saying so.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_helpers import batchrun, image_job, outputs, run_job, start_simulator, text_job, write_faults, write_spec
from PIL import Image

from batchrun.review.marks import read_marks

CHROMIUM = Path("/usr/bin/chromium")
LOAD_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """(folder, rows of the results, path of index.html) of an image job run and reported once."""
    folder = tmp_path_factory.mktemp("report")
    faults = write_faults(folder, "blocked", {"blocked": {"every": 4}})
    simulator = start_simulator(folder, faults=faults)
    try:
        spec = write_spec(folder, image_job("sheet", simulator.url, folder, photos=3, scenes=2,
                                            request={"variants": 2}, limits={"concurrency": 1},
                                            output={"image_name": "{{ sku }}/{{ scene | slug }}-{{ variant }}"}))
        run = run_job(folder, spec)
    finally:
        simulator.stop()
    assert run.returncode in (0, 8), run.stderr
    rows = outputs(folder, "sheet").rows()
    ok = next(r for r in reversed(rows) if r["status"] == "ok")  # of the last SKU: sorting moves it up
    Image.new("RGB", (300, 100), (40, 90, 160)).save(folder / "outputs" / "sheet" / ok["image_path"])
    report = batchrun(folder, "report", str(spec), key=None)
    assert report.returncode == 0, report.stderr
    return folder, rows, ok, folder / report.stdout.strip()


def test_report_prints_the_path_of_a_page_that_loads_nothing_from_the_network(reported):
    folder, rows, _, index = reported
    assert index == folder / "outputs" / "sheet" / "report" / "index.html"
    html = index.read_text()
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html
    assert len(list((index.parent / "thumbs").glob("*.webp"))) == len({r["image_sha256"] for r in rows if r["image_sha256"]})


@pytest.fixture
def browser_page():
    """A chromium page recording console errors; skips when chromium or Playwright is missing."""
    if not CHROMIUM.exists():
        pytest.skip("the browser checks need chromium: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser checks need Playwright: pip install playwright")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900}, accept_downloads=True)
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.errors = errors
        yield page
        browser.close()


def _open(page, index: Path) -> None:
    page.goto(index.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=LOAD_TIMEOUT_MS)


def _thumbnails_in_view_loaded(page) -> bool:
    return page.evaluate("""() => {
        const view = document.getElementById('scroller').getBoundingClientRect();
        const imgs = [...document.querySelectorAll('#scroller img')].filter(i => {
            const r = i.getBoundingClientRect(); return r.bottom > view.top && r.top < view.bottom; });
        return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
    }""")


def test_the_contact_sheet_loads_every_thumbnail_in_view_without_console_errors(reported, browser_page, tmp_path):
    _, rows, _, index = reported
    _open(browser_page, index)
    assert _wait(browser_page, _thumbnails_in_view_loaded)
    assert browser_page.locator(".cell").count() == len(rows)  # 3 lines fit on one screen
    browser_page.screenshot(path=str(tmp_path / "contact-sheet.png"))
    assert (tmp_path / "contact-sheet.png").stat().st_size > 0
    assert browser_page.errors == []


def _wait(page, condition, tries: int = 200) -> bool:
    for _ in range(tries):
        if condition(page):
            return True
        page.wait_for_timeout(50)
    return False


def test_filters_show_the_expected_cells(reported, browser_page):
    _, rows, _, index = reported
    _open(browser_page, index)
    blocked = sum(r["status"] == "blocked" for r in rows)
    assert blocked > 0
    browser_page.select_option("#filter-status", "blocked")
    assert browser_page.locator(".cell").count() == blocked
    assert browser_page.locator(".cell.s-blocked .reason").first.inner_text().startswith("blocked")
    browser_page.select_option("#filter-status", "")
    browser_page.select_option("select[data-matrix='scene']", "picnic table")
    assert browser_page.locator(".cell").count() == len(rows) // 2  # 2 scenes
    browser_page.select_option("select[data-matrix='scene']", "")
    sku = browser_page.locator(".label b").first.inner_text()
    browser_page.fill("#search", sku.lower())
    assert browser_page.locator(".cell").count() == 4  # 2 scenes x 2 variants
    assert browser_page.locator(".label b").all_inner_texts() == [sku]
    assert browser_page.errors == []


def test_the_suspicious_filter_and_sort_show_the_image_of_the_wrong_shape(reported, browser_page):
    _, _, ok, index = reported
    _open(browser_page, index)
    browser_page.select_option("#filter-status", "suspicious")
    flagged = browser_page.locator(".cell")
    assert flagged.count() == 1
    assert flagged.first.get_attribute("data-row") == ok["row_id"]
    assert "aspect 300x100" in flagged.first.inner_text()
    browser_page.select_option("#filter-status", "")
    first_line = browser_page.locator(".line").first.locator(f".cell[data-row='{ok['row_id']}']")
    assert first_line.count() == 0
    browser_page.check("#suspicious-first")
    assert browser_page.locator(".line").first.locator(f".cell[data-row='{ok['row_id']}']").count() == 1


def test_the_detail_view_shows_the_prompt_and_question_mark_shows_the_keys(reported, browser_page):
    _, _, _, index = reported
    _open(browser_page, index)
    browser_page.locator(".cell").first.click()
    browser_page.wait_for_selector("#detail .prompt")
    assert browser_page.locator("#detail .prompt").inner_text().startswith("Photograph the product")
    browser_page.keyboard.press("Escape")
    assert browser_page.locator("#detail").is_hidden()
    browser_page.keyboard.press("?")
    assert "mark the image rejected" in browser_page.locator("#help").inner_text()
    assert browser_page.errors == []


def test_reject_marks_are_saved_as_the_marks_file_and_survive_a_reload(reported, browser_page, tmp_path):
    _, rows, _, index = reported
    _open(browser_page, index)
    browser_page.evaluate("localStorage.clear()")
    browser_page.reload()
    browser_page.wait_for_selector("body[data-ready='1']")
    browser_page.locator("#sheet").focus()
    browser_page.keyboard.press("r")  # the first cell has the focus
    browser_page.keyboard.press("ArrowRight")
    browser_page.keyboard.press("r")
    rejected = browser_page.locator(".cell.rejected")
    assert rejected.count() == 2
    marked = [rejected.nth(i).get_attribute("data-row") for i in range(2)]
    with browser_page.expect_download() as download:
        browser_page.click("#save-marks")
    download.value.save_as(tmp_path / "sheet-marks.json")
    marks = read_marks(tmp_path / "sheet-marks.json", job="sheet")
    by_row = {r["row_id"]: r for r in rows}
    assert sorted(m.row_id for m in marks.rejected) == sorted(marked)
    assert all(m.image_sha256 == by_row[m.row_id]["image_sha256"] for m in marks.rejected)
    browser_page.reload()
    browser_page.wait_for_selector("body[data-ready='1']")
    assert sorted(browser_page.locator(".cell.rejected").nth(i).get_attribute("data-row") for i in range(2)) == sorted(marked)
    assert browser_page.locator("#mark-count").inner_text() == "2"
    assert browser_page.errors == []


@pytest.fixture(scope="module")
def text_reported(tmp_path_factory):
    """The path of the report of a text job of 5 rows."""
    folder = tmp_path_factory.mktemp("replies")
    simulator = start_simulator(folder, profile="clean")
    try:
        spec = write_spec(folder, text_job("replies", simulator.url, 5))
        assert run_job(folder, spec).returncode == 0
    finally:
        simulator.stop()
    report = batchrun(folder, "report", str(spec), key=None)
    assert report.returncode == 0, report.stderr
    return folder / report.stdout.strip()


def test_a_text_job_is_reported_as_a_table_of_replies(text_reported, browser_page):
    _open(browser_page, text_reported)
    assert browser_page.locator(".textline").count() == 5
    assert browser_page.locator(".textline img").count() == 0
    browser_page.locator(".textline .cell").first.click()
    browser_page.wait_for_selector("#detail .reply")
    assert browser_page.locator("#detail .prompt").inner_text().startswith("Write one line about")
    assert browser_page.errors == []
