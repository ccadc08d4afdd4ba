"""Planning a job whose photos are URLs (served on 127.0.0.1) or prepared: the manifest, re-plans, --refresh,
the one-block error of failed fetches, --skip-bad-inputs and its file, request ids that ignore the cache."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest
import yaml
from photo_server import photo_bytes, serve_photos

from batchrun.errors import SpecError
from batchrun.planning.inputcache import cache_folder, cached_image_path
from batchrun.planning.manifest import iter_records
from batchrun.planning.plan import InputChoices, plan_job
from batchrun.planning.spec import load_spec
from batchrun.providers.wire import read_input_image


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def server():
    with serve_photos() as running:
        yield running


def write_job(folder: Path, photos: list[str], **request) -> Path:
    spec = {
        "name": "urls",
        "provider": {"kind": "simulator"},
        "model": "gemini-3.1-flash-image",
        "inputs": {"rows": [{"sku": f"S{i}", "photo": photo} for i, photo in enumerate(photos, 1)]},
        "request": {"prompt": "Photograph {{ sku }}", "images": ["{{ photo }}"],
                    "generation_config": {"responseModalities": ["IMAGE"]}, **request},
        "output": {"image_name": "{{ sku }}"},
    }
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def plan(path: Path, **choices):
    return plan_job(load_spec(path), inputs=InputChoices(**choices))


def test_a_url_photo_is_recorded_like_a_local_one_and_read_from_the_cache(server, tmp_path):
    url = f"{server.url}/photo/1.png?token=abc"
    plan(write_job(tmp_path, [url]))
    [record] = iter_records(Path("outputs/urls/manifest.parquet"))
    [ref] = record.images
    data = photo_bytes(1)
    assert (ref.path, ref.sha256, ref.mime, ref.bytes, ref.width, ref.height) == (
        url, hashlib.sha256(data).hexdigest(), "image/png", len(data), 24, 16)
    assert read_input_image(tmp_path, ref, cache_folder(Path("outputs/urls"))) == data


def test_the_request_id_does_not_depend_on_where_the_cache_lives(server, tmp_path):
    url = f"{server.url}/photo/2.png"
    (tmp_path / "local.png").write_bytes(photo_bytes(2))
    by_url = write_job(tmp_path, [url], )
    plan(by_url)
    first = next(iter_records(Path("outputs/urls/manifest.parquet"))).request_id
    spec = yaml.safe_load(by_url.read_text())
    spec["output"]["dir"] = "elsewhere/out"
    by_url.write_text(yaml.safe_dump(spec))
    plan(by_url)
    assert next(iter_records(Path("elsewhere/out/manifest.parquet"))).request_id == first
    plan(write_job(tmp_path, ["local.png"]))  # the same bytes from a local file: the same request
    assert next(iter_records(Path("outputs/urls/manifest.parquet"))).request_id == first


def test_a_re_plan_fetches_nothing_and_refresh_asks_with_validators(server, tmp_path):
    path = write_job(tmp_path, [f"{server.url}/photo/3.png"])
    plan(path)
    plan(path)
    assert len(server.log) == 1
    plan(path, refresh=True)
    assert [(e.path, e.if_none_match) for e in server.log] == [("/photo/3.png", None), ("/photo/3.png", '"photo-3"')]


def test_failed_fetches_are_reported_together_naming_rows_and_urls(server, tmp_path):
    photos = [f"{server.url}/photo/1.png", f"{server.url}/missing.png?sig=SECRET", f"{server.url}/page.png"]
    with pytest.raises(SpecError) as caught:
        plan(write_job(tmp_path, photos))
    message = str(caught.value)
    assert message.startswith(f"{tmp_path}/job.yaml: request.images[0]: 2 bad rows: row 2 (sku 'S2'): ")
    assert f"{server.url}/missing.png?…: HTTP 404" in message
    assert "row 3 (sku 'S3'): " in message and "text/html" in message
    assert "SECRET" not in message
    assert not Path("outputs/urls/manifest.parquet").exists()


def test_more_than_ten_bad_rows_are_counted(server, tmp_path):
    with pytest.raises(SpecError) as caught:
        plan(write_job(tmp_path, [f"{server.url}/missing.png?n={n}" for n in range(13)]))
    assert str(caught.value).endswith("; and 3 more")


def test_skip_bad_inputs_plans_the_rest_and_lists_the_others(server, tmp_path):
    (tmp_path / "ok.png").write_bytes(photo_bytes(8))
    photos = [f"{server.url}/photo/1.png", f"{server.url}/missing.png?sig=SECRET", "ok.png", "gone.png"]
    summary = plan(write_job(tmp_path, photos), skip_bad_inputs=True)
    assert [r.variables["sku"] for r in iter_records(summary.manifest)] == ["S1", "S3"]
    assert [(row.row, row.ident, row.image) for row in summary.skipped] == [
        (2, "S2", f"{server.url}/missing.png?…"), (4, "S4", "gone.png")]
    with open("outputs/urls/skipped_inputs.csv", newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["row", "sku", "image", "reason"]
    assert [r[:3] for r in rows[1:]] == [["2", "S2", f"{server.url}/missing.png?…"], ["4", "S4", "gone.png"]]
    assert rows[2][3] == "image not found: gone.png (relative to the spec's folder)"
    assert summary.to_json()["skipped_input_rows"] == 2


def test_a_clean_plan_removes_an_old_skipped_list(server, tmp_path):
    plan(write_job(tmp_path, ["gone.png", f"{server.url}/photo/1.png"]), skip_bad_inputs=True)
    assert Path("outputs/urls/skipped_inputs.csv").exists()
    summary = plan(write_job(tmp_path, [f"{server.url}/photo/1.png"]), skip_bad_inputs=True)
    assert summary.skipped_file is None and not Path("outputs/urls/skipped_inputs.csv").exists()
    assert "skipped_input_rows" not in summary.to_json()


def test_image_prep_changes_what_is_recorded_sent_and_identified(server, tmp_path):
    from PIL import Image

    Image.new("RGB", (3000, 1500), (1, 2, 3)).save(tmp_path / "big.png")
    plain = plan(write_job(tmp_path, ["big.png"]))
    plain_record = next(iter_records(plain.manifest))
    prepared = plan(write_job(tmp_path, ["big.png"], image_prep={"max_side": 1024, "format": "jpeg"}))
    record = next(iter_records(prepared.manifest))
    [ref] = record.images
    assert (ref.path, ref.mime, ref.width, ref.height) == ("big.png", "image/jpeg", 1024, 512)
    assert record.request_id != plain_record.request_id
    data = read_input_image(tmp_path, ref, cache_folder(Path("outputs/urls")))
    assert hashlib.sha256(data).hexdigest() == ref.sha256
    assert cached_image_path(cache_folder(Path("outputs/urls")), ref.sha256, ref.mime).is_file()
    index = json.loads((cache_folder(Path("outputs/urls")) / "index.json").read_text())
    assert list(index["prepared"].values()) == [ref.sha256]  # the next plan reuses it


def test_image_prep_rejects_unknown_settings(tmp_path):
    with pytest.raises(SpecError) as caught:
        load_spec(write_job(tmp_path, ["a.png"], image_prep={"max_side": 1024, "format": "gif"}))
    assert "request.image_prep.format" in str(caught.value)


def test_a_run_plans_again_when_the_input_cache_lost_a_photo_instead_of_failing_its_rows(server, tmp_path):
    import shutil

    from batchrun.jobrun import prepare
    from batchrun.planning.imagesources import missing_cached_images
    from batchrun.planning.plan import manifest_path

    path = write_job(tmp_path, [f"{server.url}/photo/{i}.png" for i in (4, 5)])
    plan(path)
    loaded = load_spec(path)
    assert missing_cached_images(loaded, manifest_path(loaded)) == 0
    shutil.rmtree(cache_folder(Path("outputs/urls")))
    assert missing_cached_images(loaded, manifest_path(loaded)) == 2
    prepare(loaded)
    assert missing_cached_images(loaded, manifest_path(loaded)) == 0
    for record in iter_records(Path("outputs/urls/manifest.parquet")):
        [ref] = record.images
        assert read_input_image(tmp_path, ref, cache_folder(Path("outputs/urls"))) == photo_bytes(int(ref.path[-5]))


def test_a_prepared_local_photo_lost_from_the_cache_is_prepared_again(tmp_path):
    from batchrun.planning.imagesources import missing_cached_images
    from batchrun.planning.plan import manifest_path

    (tmp_path / "local.png").write_bytes(photo_bytes(6))
    path = write_job(tmp_path, ["local.png"], image_prep={"format": "jpeg"})
    plan(path)
    loaded = load_spec(path)
    assert missing_cached_images(loaded, manifest_path(loaded)) == 0
    for file in cache_folder(Path("outputs/urls")).glob("*.jpg"):
        file.unlink()
    assert missing_cached_images(loaded, manifest_path(loaded)) == 1
