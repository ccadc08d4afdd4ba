"""Planning: spec -> manifest, the summary of what will be sent, and every bad spec's exact message."""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from batchrun.errors import AlreadyRunning, SpecError
from batchrun.output.lock import folder_lock
from batchrun.planning.manifest import iter_records, read_fingerprint
from batchrun.planning.plan import (
    fingerprint,
    manifest_is_current,
    manifest_path,
    plan_job,
    render_request,
)
from batchrun.planning.spec import load_spec

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "jobs" / "demo.yaml"
BAD_SPECS = sorted((Path(__file__).parent / "specs" / "bad").glob("*.yaml"))
HEADER = re.compile(r"^# \[(?P<path>.+?)\] .+\n# message: (?P<message>.+)\n")


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    """The repo's demo job writes beside the repo's pyproject.toml: send its output folder to tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BATCHRUN_OUTPUT_DIR", str(tmp_path / "outputs"))


def write_spec(folder: Path, text: str, name: str = "job.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("spec", BAD_SPECS, ids=lambda p: p.stem)
def test_every_bad_spec_fails_with_its_exact_message(spec):
    header = HEADER.match(spec.read_text(encoding="utf-8"))
    with pytest.raises(SpecError) as caught:
        plan_job(load_spec(spec))
    assert str(caught.value) == f"{spec}: {header['path']}: {header['message']}"
    assert caught.value.path == header["path"]


def test_demo_plans_48_requests_from_12_rows_and_4_combinations(tmp_path):
    summary = plan_job(load_spec(DEMO))
    photos = sorted((REPO / "jobs" / "data" / "photos").glob("*.png"))
    assert summary.to_json() == {
        "manifest": "outputs/demo/manifest.parquet",
        "requests": 48,
        "rows": 48,
        "input_rows": 12,
        "matrix_combinations": 4,
        "variants": 1,
        "models": ["gemini-3.1-flash-image"],
        "input_images": 12,
        "input_image_bytes": sum(p.stat().st_size for p in photos),
        "rows_sharing_a_request": 0,
    }
    records = list(iter_records(tmp_path / "outputs" / "demo" / "manifest.parquet"))
    assert [r.seq for r in records] == list(range(48))
    assert len({r.request_id for r in records}) == 48
    assert len({r.images[0].sha256 for r in records}) == 12
    assert records[0].output_name == "MUG-001/kitchen-counter-1-1"
    assert records[3].output_name == "MUG-001/picnic-table-4-5"
    assert records[4].output_name == "MUG-002/kitchen-counter-1-1"


def test_planning_twice_writes_the_same_manifest(tmp_path):
    loaded = load_spec(DEMO)
    plan_job(loaded)
    first = manifest_path(loaded).read_bytes()
    plan_job(load_spec(DEMO))
    assert manifest_path(loaded).read_bytes() == first


def test_request_ids_ignore_the_order_of_mapping_keys(tmp_path):
    common = "inputs: {rows: [{sku: A1, t: 0.5}, {sku: B2, t: 0.7}]}\n"
    one = write_spec(
        tmp_path,
        "name: one\nmodel: gemini-3-flash-preview\n" + common + "request:\n  prompt: 'Describe {{ sku }}'\n"
        "  generation_config:\n    temperature: '{{ t }}'\n    maxOutputTokens: 100\n"
        "    thinkingConfig: {thinkingLevel: low, includeThoughts: false}\n",
        "one.yaml",
    )
    two = write_spec(
        tmp_path,
        "request:\n  generation_config:\n    thinkingConfig: {includeThoughts: false, thinkingLevel: low}\n"
        "    maxOutputTokens: 100\n    temperature: '{{ t }}'\n  prompt: 'Describe {{ sku }}'\n"
        + common + "model: gemini-3-flash-preview\nname: two\n",
        "two.yaml",
    )
    ids = []
    for spec in (one, two):
        loaded = load_spec(spec)
        plan_job(loaded)
        ids.append([r.request_id for r in iter_records(manifest_path(loaded))])
    assert ids[0] == ids[1]
    assert len(set(ids[0])) == 2


def test_show_keeps_the_first_n_rendered_requests():
    summary = plan_job(load_spec(DEMO), show=3, batch_rows=2)
    assert [r.seq for r in summary.shown] == [0, 1, 2]
    text = render_request(summary.shown[0], "gemini")
    assert '"output_name": "MUG-001/kitchen-counter-1-1"' in text
    assert '"data": "sha256:' in text


def test_small_batches_give_the_same_manifest_as_one_batch(tmp_path):
    loaded = load_spec(DEMO)
    plan_job(loaded, batch_rows=5)
    small = pq.read_table(manifest_path(loaded)).to_pylist()
    plan_job(loaded)
    assert pq.read_table(manifest_path(loaded)).to_pylist() == small


def test_a_failed_plan_keeps_the_previous_manifest(tmp_path):
    rows = "  - {sku: A1, title: mug}\n  - {sku: B2, title: cup}\n"
    spec = write_spec(
        tmp_path, f"name: keep\nmodel: gemini-3-flash-preview\ninputs:\n  rows:\n{rows}request: {{prompt: '{{{{ title }}}}'}}\n"
    )
    plan_job(load_spec(spec))
    manifest = tmp_path / "outputs" / "keep" / "manifest.parquet"
    before = manifest.read_bytes()
    spec.write_text(spec.read_text().replace("B2, title: cup", "B2, name: cup"))
    with pytest.raises(SpecError, match=r"row 2 \(sku 'B2'\): undefined variable 'title'"):
        plan_job(load_spec(spec))
    assert manifest.read_bytes() == before
    assert sorted(p.name for p in manifest.parent.iterdir()) == ["manifest.parquet"]


def test_a_plan_while_another_process_holds_the_folders_lock_is_refused_and_replaces_nothing(tmp_path):
    loaded = load_spec(DEMO)
    plan_job(loaded)
    before = manifest_path(loaded).read_bytes()
    with folder_lock(loaded.output_dir) as lock:  # a run writing the folder
        held = lock.read_bytes()
        with pytest.raises(AlreadyRunning, match=r"another batchrun run is writing outputs/demo \(pid \d+, started "):
            plan_job(loaded)
        assert lock.read_bytes() == held
        assert manifest_path(loaded).read_bytes() == before
        plan_job(loaded, lock_held=True)  # a run planning under the lock it holds
        assert lock.read_bytes() == held


def test_a_plan_removes_what_a_killed_plan_left_and_releases_its_lock(tmp_path):
    loaded = load_spec(DEMO)
    folder = loaded.output_dir
    folder.mkdir(parents=True)
    for name in ("manifest.parquet.tmp", "manifest.parquet.4242-0a1b2c3d.tmp"):
        (folder / name).write_bytes(b"half a manifest")
    plan_job(loaded)
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.parquet"]


def test_fingerprint_follows_the_spec_and_the_input_file(tmp_path):
    (tmp_path / "rows.csv").write_text("sku\nA1\n", encoding="utf-8")
    spec = write_spec(tmp_path, "name: fp\nmodel: gemini-3-flash-preview\ninputs: {path: rows.csv}\nrequest: {prompt: '{{ sku }}'}\n")
    loaded = load_spec(spec)
    assert not manifest_is_current(loaded)
    plan_job(loaded)
    assert read_fingerprint(manifest_path(loaded)) == fingerprint(loaded)
    assert manifest_is_current(loaded)
    (tmp_path / "rows.csv").write_text("sku\nA1\nB2\n", encoding="utf-8")
    assert not manifest_is_current(loaded)
    plan_job(loaded)
    spec.write_text(spec.read_text() + "limits: {concurrency: 2}\n")
    assert not manifest_is_current(load_spec(spec))


def test_rows_with_identical_requests_share_one_request_and_keep_their_own_rows(tmp_path):
    spec = write_spec(
        tmp_path,
        "name: dup\nmodel: gemini-3-flash-preview\ninputs: {rows: [{sku: A1, c: red}, {sku: A1, c: blue}, {sku: B2, c: red}]}\n"
        "request: {prompt: 'Describe {{ sku }}'}\n",
    )
    summary = plan_job(load_spec(spec))
    assert (summary.requests, summary.rows, summary.shared_rows, summary.input_rows) == (2, 3, 1, 3)
    records = list(iter_records(summary.manifest))
    assert [(r.seq, r.input_row, r.variables) for r in records] == [
        (0, 1, {"sku": "A1", "c": "red"}), (1, 2, {"sku": "A1", "c": "blue"}), (2, 3, {"sku": "B2", "c": "red"})]
    assert records[0].request_id == records[1].request_id != records[2].request_id
    # rows that share a request get ids of their own; a row alone with its request keeps the request's id
    assert len({r.row_id for r in records}) == 3
    assert records[0].row_id != records[0].request_id and records[2].row_id == records[2].request_id


def test_manifest_holds_no_image_bytes(tmp_path):
    noise = Image.frombytes("RGB", (160, 160), os.urandom(160 * 160 * 3))
    noise.save(tmp_path / "noise.png")
    data = (tmp_path / "noise.png").read_bytes()
    rows = ", ".join(f"{{n: {i}}}" for i in range(50))
    spec = write_spec(
        tmp_path,
        f"name: noise\nmodel: gemini-3.1-flash-image\ninputs: {{rows: [{rows}]}}\n"
        "request: {prompt: 'variant {{ n }}', images: [noise.png]}\n",
    )
    summary = plan_job(load_spec(spec))
    assert (summary.requests, summary.images, summary.image_bytes) == (50, 1, len(data))
    manifest = summary.manifest.read_bytes()
    assert len(manifest) < len(data) // 4
    assert base64.b64encode(data)[400:480] not in manifest and data[300:360] not in manifest


def test_the_manifest_carries_each_request_s_aspect_ratio():
    plan_job(load_spec(DEMO))
    ratios = pq.read_table(manifest_path(load_spec(DEMO)), columns=["est_aspect_ratio"])["est_aspect_ratio"]
    assert sorted(set(ratios.to_pylist())) == ["1:1", "4:5"]


def test_a_manifest_planned_without_aspect_ratios_is_planned_again_with_the_same_ids(monkeypatch):
    import batchrun.planning.plan as plan_module

    loaded = load_spec(DEMO)
    plan_job(loaded)
    path = manifest_path(loaded)
    before = pq.read_table(path)
    with monkeypatch.context() as patch:
        patch.setattr(plan_module, "COLUMNS_LAYOUT", b"")  # the fingerprint as batchrun computed it before
        old_fingerprint = fingerprint(loaded)
    old = before.drop_columns(["est_aspect_ratio"])
    pq.write_table(old.replace_schema_metadata({**before.schema.metadata, b"batchrun.fingerprint": old_fingerprint.encode()}), path)
    assert not manifest_is_current(loaded)
    plan_job(loaded)
    after = pq.read_table(path)
    assert manifest_is_current(loaded)
    assert after["request_id"].to_pylist() == before["request_id"].to_pylist()
    assert after["est_aspect_ratio"].to_pylist() == before["est_aspect_ratio"].to_pylist()
