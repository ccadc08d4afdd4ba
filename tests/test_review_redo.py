"""`batchrun redo`'s checks, its versions file lines, its dry run, and the history the report lists.

A small image job runs on the in-process simulator; marks are written as the report saves them.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest

from batchrun.errors import AlreadyRunning, UsageError
from batchrun.jobrun import results_table, run_job
from batchrun.options import RunOptions
from batchrun.output.lock import folder_lock
from batchrun.output.status import summarize
from batchrun.planning.spec import load_spec
from batchrun.planning.versioning import version_row_id
from batchrun.planning.versions import read_versions
from batchrun.review.marks import Marks, RejectMark
from batchrun.review.redo import check_marks, format_preview, preview_redo, record_redo
from batchrun.review.rejections import MarksChecker, RowResult
from batchrun.review.versions import current_version, earlier_versions, version_history

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
NOW = dt.datetime(2026, 11, 27, 16, 40, tzinfo=dt.UTC)
SPEC = """
name: shots
provider: {kind: simulator}
model: gemini-3.1-flash-image
inputs:
  rows: [{sku: CUP-1}, {sku: MUG-2}]
matrix:
  scene: [kitchen, garden]
request:
  prompt: "The {{ sku }} in a {{ scene }}"
  images: ["photo.png"]
  generation_config:
    responseModalities: [IMAGE]
    imageConfig: {aspectRatio: "1:1", imageSize: "512"}
output:
  image_name: "{{ sku }}/{{ scene }}"
"""
OPTIONS = RunOptions(handle_signals=False, progress="none")


@pytest.fixture
def job(tmp_path, monkeypatch):
    """The job, run once: every row ok with an image."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photo.png").write_bytes(PNG)
    (tmp_path / "job.yaml").write_text(SPEC)
    loaded = load_spec(tmp_path / "job.yaml")
    assert run_job(loaded, OPTIONS) == 0
    return loaded


def current_rows(loaded) -> dict[str, dict]:
    """The latest result of each row of the current manifest, by image name."""
    import pyarrow.parquet as pq

    manifest = pq.read_table(loaded.output_dir / "manifest.parquet", columns=["row_id", "output_name"]).to_pylist()
    results = {r["row_id"]: r for r in results_table(loaded.output_dir, ("row_id", "image_path", "image_sha256",
                                                                          "status")).to_pylist()}
    return {m["output_name"]: {**results.get(m["row_id"], {}), "row_id": m["row_id"]} for m in manifest}


def write_marks(folder: Path, rejected: list[dict], job: str = "shots") -> Path:
    path = folder / "marks.json"
    path.write_text(json.dumps({"version": 1, "job": job, "rejected": rejected}))
    return path


def mark(row: dict, note: str = "") -> dict:
    return {"row_id": row["row_id"], "image_sha256": row["image_sha256"], "note": note}


# ---------------------------------------------------------------- recording a redo


def test_a_redo_records_one_version_entry_per_rejected_row(job, tmp_path):
    rows = current_rows(job)
    marks = write_marks(tmp_path, [mark(rows["CUP-1/kitchen"], "logo cut off"), mark(rows["MUG-2/garden"])])

    rejections = record_redo(job, marks, NOW)

    assert [(r.version, r.rejected_row_id) for r in rejections] == [
        (2, rows["CUP-1/kitchen"]["row_id"]), (2, rows["MUG-2/garden"]["row_id"])]
    entries = read_versions(job.output_dir)
    assert [(e.row_id, e.version, e.note, e.at, e.image_sha256) for e in entries] == [
        (rows["CUP-1/kitchen"]["row_id"], 2, "logo cut off", "2026-11-27T16:40:00Z", rows["CUP-1/kitchen"]["image_sha256"]),
        (rows["MUG-2/garden"]["row_id"], 2, "", "2026-11-27T16:40:00Z", rows["MUG-2/garden"]["image_sha256"]),
    ]


def test_the_run_after_a_redo_sends_the_new_versions_and_keeps_the_old_results(job, tmp_path):
    rows = current_rows(job)
    record_redo(job, write_marks(tmp_path, [mark(rows["CUP-1/kitchen"])]), NOW)

    assert run_job(job, OPTIONS) == 0

    after = current_rows(job)
    assert set(after) == {"CUP-1/kitchen.v2", "CUP-1/garden", "MUG-2/kitchen", "MUG-2/garden"}
    assert after["CUP-1/kitchen.v2"]["image_path"] == "images/CUP-1/kitchen.v2.png"
    old = rows["CUP-1/kitchen"]
    assert (job.output_dir / old["image_path"]).exists()
    every = {r["row_id"] for r in results_table(job.output_dir, ("row_id",)).to_pylist()}
    assert old["row_id"] in every and len(every) == 5
    summary = summarize(job.output_dir)
    assert (summary.total, summary.done["ok"], summary.pending) == (4, 4, 0)
    assert (summary.earlier_versions, summary.not_in_manifest) == (1, 0)


def test_a_mark_with_no_sha256_rejects_whatever_the_row_holds_now(job, tmp_path):
    rows = current_rows(job)
    marks = write_marks(tmp_path, [{"row_id": rows["MUG-2/kitchen"]["row_id"], "image_sha256": None}])

    assert [r.image_sha256 for r in check_marks(job, marks)] == [rows["MUG-2/kitchen"]["image_sha256"]]


def test_marks_rejecting_nothing_record_nothing(job, tmp_path):
    assert record_redo(job, write_marks(tmp_path, []), NOW) == []
    assert not (job.output_dir / "versions.jsonl").exists()


def test_a_redo_while_a_run_holds_the_folder_is_refused_and_records_nothing(job, tmp_path):
    rows = current_rows(job)
    marks = write_marks(tmp_path, [mark(rows["CUP-1/kitchen"])])

    with folder_lock(job.output_dir), pytest.raises(AlreadyRunning):
        record_redo(job, marks, NOW)
    assert read_versions(job.output_dir) == []


# ---------------------------------------------------------------- marks that can't be redone


def test_marks_for_another_job_are_refused(job, tmp_path):
    marks = write_marks(tmp_path, [], job="other")

    with pytest.raises(UsageError, match=r"marks file .*marks.json is for job 'other', not 'shots'"):
        check_marks(job, marks)


def test_an_unknown_row_is_refused_naming_the_file_the_entry_and_the_fix(job, tmp_path):
    rows = current_rows(job)
    marks = write_marks(tmp_path, [mark(rows["CUP-1/kitchen"]), {"row_id": "f" * 32, "image_sha256": None}])

    with pytest.raises(UsageError) as caught:
        record_redo(job, marks, NOW)

    assert str(caught.value) == (
        f"marks file {marks}: rejected[1] (row {'f' * 32}): no such row in outputs/shots/manifest.parquet: the "
        "marks are from another job or another plan; save them again from this job's report; nothing was sent")
    assert read_versions(job.output_dir) == []


def test_an_image_the_row_no_longer_holds_is_stale(job, tmp_path):
    rows = current_rows(job)
    marks = write_marks(tmp_path, [{**mark(rows["CUP-1/kitchen"]), "image_sha256": "0" * 64},
                                   {**mark(rows["MUG-2/kitchen"]), "image_sha256": "1" * 64}])

    with pytest.raises(UsageError, match=(
            r"rejected\[0\] \(row \w+\): the marked image \(sha256 000000000000…\) is not the row's image now "
            r"\(images/CUP-1/kitchen.png\): the marks are stale; review the job again and save new marks "
            r"\(and 1 more entries with problems\); nothing was sent$")):
        check_marks(job, marks)


def test_marks_of_a_version_already_redone_are_stale(job, tmp_path):
    rows = current_rows(job)
    marks = write_marks(tmp_path, [mark(rows["CUP-1/kitchen"])])
    record_redo(job, marks, NOW)
    run_job(job, OPTIONS)

    with pytest.raises(UsageError, match=r"that is version 1 of a row now at version 2 \(redone since these marks "
                                         r"were saved\): review the new version and save the marks again"):
        check_marks(job, marks)


def test_marks_of_a_row_redone_but_not_yet_sent_say_to_run(job, tmp_path):
    rows = current_rows(job)
    marks = write_marks(tmp_path, [mark(rows["CUP-1/kitchen"])])
    record_redo(job, marks, NOW)  # the run that plans and sends it never happened

    with pytest.raises(UsageError, match=r"already redone as version 2, not yet sent: `batchrun run` sends it"):
        check_marks(job, marks)


def test_a_row_without_a_result_or_with_a_failed_one_cant_be_rejected():
    checker = MarksChecker(Path("m.json"), ["a", "b"], {"b": RowResult("failed")}, [], Path("outputs/x"))

    with pytest.raises(UsageError, match=r"rejected\[0\] \(row a\): the row has no result yet"):
        checker.rejections(Marks("x", (RejectMark("a"),)))
    with pytest.raises(UsageError, match=r"rejected\[0\] \(row b\): the row failed and has no image to reject"):
        checker.rejections(Marks("x", (RejectMark("b"),)))


# ---------------------------------------------------------------- a second redo, history, dry run


def test_a_row_rejected_twice_is_at_version_3_and_its_history_lists_both_earlier_versions(job, tmp_path):
    first = current_rows(job)["CUP-1/kitchen"]
    record_redo(job, write_marks(tmp_path, [mark(first, "logo cut off")]), NOW)
    run_job(job, OPTIONS)
    second = current_rows(job)["CUP-1/kitchen.v2"]
    record_redo(job, write_marks(tmp_path, [mark(second, "still cut off")]), NOW)
    run_job(job, OPTIONS)

    third = current_rows(job)["CUP-1/kitchen.v3"]
    assert third["row_id"] == version_row_id(first["row_id"], 3)
    assert current_version(job.output_dir) == {third["row_id"]: 3}
    history = [(v.version, v.row_id, v.image_path, v.image_sha256, v.status, v.note)
               for v in earlier_versions(job.output_dir, third["row_id"])]
    assert history == [
        (1, first["row_id"], "images/CUP-1/kitchen.png", first["image_sha256"], "ok", "logo cut off"),
        (2, second["row_id"], "images/CUP-1/kitchen.v2.png", second["image_sha256"], "ok", "still cut off"),
    ]
    assert earlier_versions(job.output_dir, first["row_id"]) == earlier_versions(job.output_dir, third["row_id"])
    assert list(version_history(job.output_dir)) == [third["row_id"]]
    assert len({first["image_sha256"], second["image_sha256"], third["image_sha256"]}) == 3


def test_a_row_never_redone_has_no_earlier_versions(job):
    row = current_rows(job)["MUG-2/garden"]

    assert earlier_versions(job.output_dir, row["row_id"]) == []


def test_a_dry_run_lists_what_would_be_sent_and_its_cost_and_writes_nothing(job, tmp_path):
    rows = current_rows(job)
    marks = write_marks(tmp_path, [mark(rows["CUP-1/kitchen"], "logo cut off"), mark(rows["MUG-2/garden"])])
    from batchrun.cost.pricing import PriceCatalog

    preview = preview_redo(job, marks, PriceCatalog.load(), "standard")

    assert (preview.rows, preview.requests, preview.other_pending) == (2, 2, 0)
    assert preview.expected_usd is not None and preview.expected_usd > 0
    assert preview.lines == [
        "row 1 (sku 'CUP-1', scene 'kitchen'): version 2 -> images/CUP-1/kitchen.v2.png; "
        'images/CUP-1/kitchen.png is kept ("logo cut off")',
        "row 2 (sku 'MUG-2', scene 'garden'): version 2 -> images/MUG-2/garden.v2.png; images/MUG-2/garden.png is kept",
    ]
    assert format_preview(preview).startswith("would send 2 requests for 2 rejected rows as new versions")
    assert not (job.output_dir / "versions.jsonl").exists()


def test_the_report_after_a_redo_shows_the_rejected_image_beside_the_new_version(job, tmp_path):
    import re

    from batchrun.review.report import write_report

    rows = current_rows(job)
    old = rows["CUP-1/kitchen"]
    record_redo(job, write_marks(tmp_path, [mark(old, "logo cut off")]), NOW)
    assert run_job(job, OPTIONS) == 0
    new = current_rows(job)["CUP-1/kitchen.v2"]

    report = write_report(job.output_dir, "shots")
    folder = report.path.parent
    details = "".join(p.read_text() for p in sorted((folder / "data").glob("detail-*.js")))
    lines = "".join(p.read_text() for p in sorted((folder / "data").glob("lines-*.js")))
    earlier = json.loads(re.search(r'"earlier": ?(\[.*?\])', details).group(1))
    assert earlier == [{"version": 1, "status": "ok", "note": "logo cut off", "img": f"../{old['image_path']}",
                        "thumb": f"thumbs/{old['image_sha256']}.webp"}]
    assert (folder / "thumbs" / f"{old['image_sha256']}.webp").is_file()
    assert re.search(r'"id": ?"' + new["row_id"] + r'"[^}]*"e": ?1', lines)
