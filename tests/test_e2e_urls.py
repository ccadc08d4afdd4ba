"""End to end: an image job whose product photos are URLs on a local photo server, planned and run by the
real CLI against `batchrun simulate`; bad photos reported in one block, or left out by --skip-bad-inputs.

The photo server logs every request: a plan fetches each URL once, a run of a current plan fetches none.
"""

from __future__ import annotations

import csv
import hashlib

import pytest
from e2e_helpers import (  # noqa: F401 (serve is a fixture)
    batchrun,
    image_job,
    outputs,
    run_job,
    sends_by_id,
    serve,
    write_spec,
)
from photo_server import photo_bytes, serve_photos
from test_e2e_batch import fast_batch_simulator, runs_until_done

from batchrun.planning.inputcache import cache_folder
from batchrun.providers.gemini import GeminiProvider


@pytest.fixture
def photos():
    with serve_photos() as running:
        yield running


def url_job(name: str, simulator_url: str, folder, photo_urls: list[str], **overrides):
    rows = [{"sku": f"P{i}", "photo": url} for i, url in enumerate(photo_urls, 1)]
    return image_job(name, simulator_url, folder, photos=0, scenes=2, inputs={"rows": rows}, **overrides)


def sent_hashes(job) -> dict[str, str]:
    """sha256 of the exact body sent for each request id, its photos read from the input cache."""
    provider = GeminiProvider("http://127.0.0.1", None, spec_dir=job.spec_dir, image_cache=cache_folder(job.folder))
    return {hashlib.sha256(provider.encode_body(record)).hexdigest(): record.request_id
            for record in _records(job)}


def _records(job):
    from batchrun.planning.manifest import batch_to_records

    for batch in job.manifest.to_batches():
        yield from batch_to_records(batch)


def test_photos_by_url_are_planned_once_and_run_to_their_images(tmp_path, serve, photos):
    simulator = serve(profile="clean")
    urls = [f"{photos.url}/photo/{n}.png?sig=t{n}" for n in (1, 2)] + [f"{photos.url}/redirect/3"]
    spec = write_spec(tmp_path, url_job("byurl", simulator.url, tmp_path, urls))

    planned = batchrun(tmp_path, "plan", str(spec))
    assert planned.returncode == 0, planned.stderr
    assert "input images: 3 distinct" in planned.stdout
    ran = run_job(tmp_path, spec)

    assert ran.returncode == 0, ran.stderr
    assert sorted(e.path for e in photos.log) == ["/photo/1.png", "/photo/2.png", "/photo/3.png", "/redirect/3"]
    job = outputs(tmp_path, "byurl")
    assert [ref["path"] for ref in job.manifest["images"].to_pylist()[0]] == [urls[0]]
    rows = job.rows()
    assert sorted(r["request_id"] for r in rows) == sorted(job.ids) and len(rows) == 6
    assert all(r["status"] == "ok" and (job.folder / r["image_path"]).is_file() for r in rows)
    assert sends_by_id(simulator.requests(), sent_hashes(job)) == dict.fromkeys(job.ids, 1)
    assert "sig=t1" not in planned.stderr + ran.stderr


def test_a_batch_run_sends_photos_by_url_from_the_cache(tmp_path, photos):
    simulator = fast_batch_simulator(tmp_path)
    try:
        spec = write_spec(tmp_path, url_job("batchurl", simulator.url, tmp_path, [f"{photos.url}/photo/5.png"]))
        runs_until_done(tmp_path, spec)
    finally:
        simulator.stop()
    job = outputs(tmp_path, "batchurl")
    lines = [line for line in simulator.requests() if line["rpc"] == "batch.line"]
    assert sends_by_id(lines, sent_hashes(job)) == dict.fromkeys(job.ids, 1)
    assert {r["status"] for r in job.rows()} == {"ok"}


def test_bad_photos_stop_the_plan_in_one_block_or_are_skipped_and_listed(tmp_path, serve, photos):
    simulator = serve(profile="clean")
    (tmp_path / "jobs").mkdir()
    urls = [f"{photos.url}/photo/1.png", f"{photos.url}/missing.png?token=SECRET", f"{photos.url}/page.png",
            "photos/gone.png"]
    spec = write_spec(tmp_path, url_job("badphotos", simulator.url, tmp_path, urls))

    refused = batchrun(tmp_path, "plan", str(spec))
    assert refused.returncode == 2
    [error] = [line for line in refused.stderr.splitlines() if line.startswith("batchrun: error:")]
    assert "3 bad rows: row 2 (sku 'P2')" in error
    assert f"{photos.url}/missing.png?…: HTTP 404" in error and "SECRET" not in refused.stderr

    ran = run_job(tmp_path, spec, "--skip-bad-inputs")
    assert ran.returncode == 0, ran.stderr
    assert "skipped 3 input rows with a bad photo" in ran.stderr
    job = outputs(tmp_path, "badphotos")
    assert {r["sku"] for r in _variables(job)} == {"P1"}
    with open(job.folder / "skipped_inputs.csv", newline="") as file:
        listed = [row[:3] for row in csv.reader(file)]
    assert listed == [["row", "sku", "image"], ["2", "P2", f"{photos.url}/missing.png?…"],
                      ["3", "P3", f"{photos.url}/page.png"], ["4", "P4", "photos/gone.png"]]
    planned = batchrun(tmp_path, "plan", str(spec), "--skip-bad-inputs")
    assert "skipped: 3 input rows with a bad photo" in planned.stdout
    [ref] = job.manifest["images"].to_pylist()[0]
    assert ref["sha256"] == hashlib.sha256(photo_bytes(1)).hexdigest()


def _variables(job):
    import json

    return [json.loads(v) for v in job.manifest["variables"].to_pylist()]
