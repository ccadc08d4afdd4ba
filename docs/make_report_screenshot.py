"""Make docs/report.png: the demo catalog with 2 variants on the simulator (a tenth of the replies
blocked), its report, one image rejected from the keyboard, a 1440x860 screenshot in Debian's chromium.

    python docs/make_report_screenshot.py        # needs chromium (/usr/bin/chromium) and playwright
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        spec = yaml.safe_load((ROOT / "jobs" / "demo.yaml").read_text())
        spec["provider"] = {"kind": "simulator", "faults": "faults.yaml", "seed": 3}
        spec["inputs"]["path"] = str(ROOT / "jobs" / "data" / "products.csv")
        spec["request"]["variants"] = 2
        spec["output"]["image_name"] += "-v{{ variant }}"
        spec["request"]["images"] = [str(ROOT / "jobs") + "/{{ photo }}"]
        spec["budget"] = {"max_cost_usd": 50}
        spec["output"]["dir"] = str(folder / "outputs" / "demo")
        (folder / "faults.yaml").write_text("blocked: 0.1\n")
        (folder / "demo.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        run = subprocess.run([sys.executable, "-m", "batchrun", "-q", "run", str(folder / "demo.yaml")], cwd=folder)
        if run.returncode not in (0, 8):  # 8: finished, some rows blocked (the faults' doing)
            raise SystemExit(f"batchrun run exited {run.returncode}")
        subprocess.run([sys.executable, "-m", "batchrun", "-q", "report", str(folder / "demo.yaml")], cwd=folder,
                       check=True)
        page_path = folder / "outputs" / "demo" / "report" / "index.html"
        with sync_playwright() as play:
            browser = play.chromium.launch(executable_path="/usr/bin/chromium")
            page = browser.new_page(viewport={"width": 1440, "height": 860})
            page.goto(page_path.as_uri())
            page.wait_for_selector(".cell img")
            page.focus("#sheet")
            for key in ("ArrowRight", "ArrowRight", "r", "ArrowDown"):
                page.keyboard.press(key)
            page.wait_for_timeout(300)
            page.screenshot(path=str(ROOT / "docs" / "report.png"))
            browser.close()
    print(ROOT / "docs" / "report.png")


if __name__ == "__main__":
    main()
