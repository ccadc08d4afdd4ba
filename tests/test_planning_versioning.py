"""A redone row's new version: its seed, request id, row id and image name, applied by every plan.

Rows not redone, and every id of a job without a versions file, stay as they are.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from batchrun.errors import SpecError
from batchrun.planning.plan import fingerprint, manifest_path, plan_job
from batchrun.planning.sharing import request_id
from batchrun.planning.spec import load_spec
from batchrun.planning.versioning import (
    SEED_STEP,
    earlier_row_ids,
    row_versions,
    version_row_id,
    versioned_body,
    versioned_name,
)
from batchrun.planning.versions import VersionEntry, append_versions

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")

SPEC = """
name: vers
provider: {kind: gemini, api_key_env: GEMINI_API_KEY}
model: gemini-3.1-flash-image
inputs:
  rows:
    - {sku: CUP-1, name: cup}
    - {sku: MUG-2, name: mug}
    - {sku: MUG-2-L, name: mug}
matrix:
  scene: [kitchen, garden]
request:
  prompt: "A {{ name }} in a {{ scene }}"
  images: ["photo.png"]
  generation_config:
    responseModalities: [IMAGE]
    imageConfig: {aspectRatio: "1:1", imageSize: 1K}
output:
  image_name: "{{ sku }}/{{ scene }}"
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photo.png").write_bytes(PNG)


def plan(tmp_path: Path, text: str = SPEC) -> list[dict]:
    (tmp_path / "job.yaml").write_text(text)
    loaded = load_spec(tmp_path / "job.yaml")
    plan_job(loaded)
    return pq.read_table(manifest_path(loaded)).to_pylist()


def redo(tmp_path: Path, *entries: tuple[str, int]) -> None:
    append_versions(tmp_path / "outputs" / "vers",
                    [VersionEntry(row, version, row, None, "", "2026-11-27T16:40:00Z") for row, version in entries])


# ---------------------------------------------------------------- the rules, pure


def test_version_1_keeps_its_row_id_and_later_versions_get_their_own():
    assert version_row_id("abc", 1) == "abc"
    assert len({version_row_id("abc", 2), version_row_id("abc", 3), version_row_id("abd", 2)}) == 3


def test_a_versions_image_name_is_name_dot_v_n():
    assert versioned_name("MUG-2/kitchen", 2) == "MUG-2/kitchen.v2"
    assert versioned_name("MUG-2/kitchen.v2", 3, current=2) == "MUG-2/kitchen.v3"
    assert versioned_name(None, 2) is None


def test_a_versions_seed_is_the_rows_seed_plus_1000_per_version():
    body = {"options": {"seed": 7, "temperature": 1}}

    assert versioned_body(body, 2)["options"] == {"seed": 7 + SEED_STEP, "temperature": 1}
    assert versioned_body(body, 3)["options"]["seed"] == 7 + 2 * SEED_STEP
    assert versioned_body({"options": {}}, 2)["options"] == {"seed": SEED_STEP}
    assert versioned_body(versioned_body(body, 2), 3, current=2) == versioned_body(body, 3)
    assert body == {"options": {"seed": 7, "temperature": 1}}  # a copy is changed, never the row's body


def test_the_version_is_part_of_a_request_id_only_from_version_2():
    body = {"contents": []}

    assert request_id("gemini", "m", body, None, 1) == request_id("gemini", "m", body)
    assert request_id("gemini", "m", body, None, 2) != request_id("gemini", "m", body)


def test_earlier_row_ids_are_every_version_but_the_current_one():
    entries = [VersionEntry("r1", 2, "r1"), VersionEntry("r1", 3, "x"), VersionEntry("r2", 2, "r2")]

    assert row_versions(entries)[version_row_id("r1", 2)] == ("r1", 2)
    assert earlier_row_ids(entries) == {"r1", version_row_id("r1", 2), "r2"}


# ---------------------------------------------------------------- the plan applying them


def test_without_a_versions_file_the_manifest_and_its_fingerprint_are_unchanged(tmp_path):
    before = plan(tmp_path)
    loaded = load_spec(tmp_path / "job.yaml")
    printed = fingerprint(loaded)
    (tmp_path / "outputs" / "vers" / "unrelated.txt").write_text("x")

    assert plan(tmp_path) == before
    assert fingerprint(loaded) == printed


def test_a_redone_row_gets_its_new_version_and_no_other_row_changes(tmp_path):
    before = plan(tmp_path)
    rejected = before[0]
    redo(tmp_path, (rejected["row_id"], 2))

    after = plan(tmp_path)

    assert after[1:] == before[1:]
    new = after[0]
    assert new["row_id"] == version_row_id(rejected["row_id"], 2)
    assert new["output_name"] == "CUP-1/kitchen.v2"
    assert json.loads(new["body"])["options"]["seed"] == SEED_STEP
    assert new["request_id"] not in {row["request_id"] for row in before}
    assert {k: v for k, v in new.items() if k not in ("row_id", "request_id", "body", "output_name")} == \
        {k: v for k, v in rejected.items() if k not in ("row_id", "request_id", "body", "output_name")}


def test_the_same_spec_and_versions_file_plan_the_same_manifest(tmp_path):
    rows = plan(tmp_path)
    redo(tmp_path, (rows[2]["row_id"], 2), (rows[3]["row_id"], 2))

    assert plan(tmp_path) == plan(tmp_path)


def test_a_new_version_changes_the_fingerprint_so_the_next_run_plans_again(tmp_path):
    rows = plan(tmp_path)
    loaded = load_spec(tmp_path / "job.yaml")
    printed = fingerprint(loaded)
    redo(tmp_path, (rows[0]["row_id"], 2))

    assert fingerprint(loaded) != printed


def test_a_row_redone_twice_is_at_version_3(tmp_path):
    rows = plan(tmp_path)
    redo(tmp_path, (rows[0]["row_id"], 2))
    redo(tmp_path, (rows[0]["row_id"], 3))

    new = plan(tmp_path)[0]

    assert new["row_id"] == version_row_id(rows[0]["row_id"], 3)
    assert new["output_name"] == "CUP-1/kitchen.v3"
    assert json.loads(new["body"])["options"]["seed"] == 2 * SEED_STEP


def test_a_redone_row_that_shared_a_request_gets_a_request_of_its_own(tmp_path):
    rows = plan(tmp_path)
    mug, mug_large = rows[2], rows[4]  # MUG-2 and MUG-2-L make the same request in the kitchen
    assert mug["request_id"] == mug_large["request_id"] and mug["row_id"] != mug_large["row_id"]
    redo(tmp_path, (mug_large["row_id"], 2))

    after = plan(tmp_path)
    summary = plan_job(load_spec(tmp_path / "job.yaml"))

    assert after[2] == mug  # the row that was not rejected keeps its id, request and name
    assert after[4]["request_id"] != mug["request_id"]
    assert after[4]["row_id"] == version_row_id(mug_large["row_id"], 2)
    assert (summary.rows, summary.requests, summary.shared_rows, summary.redone_rows) == (6, 5, 1, 1)  # the garden pair still shares


def test_a_versions_entry_for_a_row_the_plan_no_longer_has_changes_nothing(tmp_path):
    before = plan(tmp_path)
    redo(tmp_path, ("f" * 32, 2))

    assert plan(tmp_path) == before


def test_a_new_versions_name_taken_by_another_row_stops_the_plan(tmp_path):
    text = SPEC.replace("- {sku: MUG-2-L, name: mug}", "- {sku: CUP-1/kitchen.v2, name: bowl}")
    text = text.replace("matrix:\n  scene: [kitchen, garden]", "matrix:\n  scene: [kitchen]")
    text = text.replace('"{{ sku }}/{{ scene }}"', '"{{ sku }}{% if name != \'bowl\' %}/{{ scene }}{% endif %}"')
    rows = plan(tmp_path, text)
    redo(tmp_path, (rows[0]["row_id"], 2))

    with pytest.raises(SpecError, match=r"images/CUP-1/kitchen.v2 \(a redone row's new version\) is also the name"):
        plan(tmp_path, text)
