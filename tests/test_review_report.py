"""`write_report` on an output folder made by a real run on the in-process simulator."""

import shutil
from pathlib import Path

import pytest
import yaml

from batchrun.cli import main
from batchrun.review.report import write_report
from batchrun.review.thumbs import ThumbStats

PHOTOS = Path(__file__).resolve().parents[1] / "jobs" / "data" / "photos"


@pytest.fixture
def run_folder(tmp_path, monkeypatch):
    """The output folder of a 2 SKU x 2 scene image job run on the in-process simulator."""
    for photo in sorted(PHOTOS.glob("*.png"))[:2]:
        shutil.copy(photo, tmp_path / photo.name)
    spec = {"name": "tiny", "provider": {"kind": "simulator"}, "model": "gemini-3.1-flash-image",
            "inputs": {"rows": [{"sku": p.stem, "photo": p.name} for p in sorted(PHOTOS.glob("*.png"))[:2]]},
            "matrix": {"scene": ["kitchen", "garden"]},
            "request": {"prompt": "{{ sku }} on a {{ scene }}", "images": ["{{ photo }}"],
                        "generation_config": {"responseModalities": ["IMAGE"],
                                              "imageConfig": {"aspectRatio": "1:1", "imageSize": "512"}}},
            "output": {"image_name": "{{ sku }}/{{ scene }}"}}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.chdir(tmp_path)
    assert main(["run", "tiny.yaml", "-q", "--progress", "none"]) == 0
    return tmp_path / "outputs" / "tiny"


def test_a_report_makes_a_thumbnail_per_image_and_a_second_one_makes_none(run_folder):
    first = write_report(run_folder, "tiny")
    assert first.path == run_folder / "report" / "index.html" and first.rows == 4
    assert first.thumbs == ThumbStats(made=4, cached=0, failed=0) and first.flagged == 0
    second = write_report(run_folder, "tiny")
    assert second.thumbs == ThumbStats(made=0, cached=4, failed=0)
    assert len(list((run_folder / "report" / "thumbs").glob("*.webp"))) == 4


def test_a_report_of_a_folder_never_planned_says_to_plan_first(tmp_path):
    from batchrun.errors import UsageError

    with pytest.raises(UsageError, match="batchrun plan"):
        write_report(tmp_path, "none")
