"""End to end: no paid result lost, overwritten or stranded, against the simulator as a real HTTP server.

Each test drives the CLI as a subprocess: image names that would collide are refused at plan time;
rows that share a request get one paid request and a file each; `variants` gives distinct requests;
a wrong endpoint stops the run instead of marking the catalog invalid; rows final but not ok exit 8
and can be sent again; a templated model is checked and priced per model.
"""

from __future__ import annotations

import hashlib
import json
import re

import pyarrow.parquet as pq
from e2e_helpers import (  # noqa: F401 (serve is a fixture)
    assert_no_key,
    batchrun,
    image_job,
    outputs,
    run_job,
    sends_by_id,
    serve,
    text_job,
    write_spec,
)


def latest_rows(job) -> dict[str, dict]:
    """The one row kept per row_id, by row_id."""
    return {row["row_id"]: row for row in job.rows()}


def test_image_names_that_collide_are_refused_at_plan_time_naming_both_rows(tmp_path, serve):
    simulator = serve(profile="clean")
    spec = write_spec(tmp_path, image_job("collide", simulator.url, tmp_path, photos=2,
                                          output={"image_name": "{{ sku }}"}))

    done = run_job(tmp_path, spec)

    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    first = sorted(p.stem for p in (tmp_path / "jobs" / "photos").glob("*.png"))[0]
    assert done.stderr == (
        f"batchrun: error: {spec}: output.image_name: row 1 (sku '{first}', scene 'kitchen counter') and "
        f"row 1 (sku '{first}', scene 'picnic table') both write images/{first}: two different requests would "
        "overwrite one file; add a variable that tells them apart to output.image_name (it does not use scene)\n")
    assert simulator.requests() == []
    assert not (tmp_path / "outputs" / "collide" / "manifest.parquet").exists()


def test_three_skus_sharing_one_request_are_sent_once_and_each_gets_its_own_file(tmp_path, serve):
    simulator = serve(profile="clean")
    base = image_job("tshirts", simulator.url, tmp_path, photos=1, scenes=1)
    photo = base["inputs"]["rows"][0]["photo"]
    rows = [{"sku": f"TSHIRT-{size}", "title": "Plain T-shirt", "photo": photo} for size in "SML"]
    spec = write_spec(tmp_path, {**base, "inputs": {"rows": rows}, "matrix": {},
                                 "request": {**base["request"], "prompt": "Photograph the {{ title }}."},
                                 "output": {"image_name": "{{ sku }}"}})

    plan = batchrun(tmp_path, "plan", str(spec))
    assert plan.returncode == 0, plan.stderr
    assert "rows: 3  (input rows 3 x matrix combinations 1); each gets its own result" in plan.stdout
    assert "requests: 1  (sent and paid for)" in plan.stdout
    assert "shared: 2 rows make the same request as another row" in plan.stdout

    done = run_job(tmp_path, spec)

    assert done.returncode == 0, done.stderr
    assert len(simulator.requests()) == 1
    job = outputs(tmp_path, "tshirts")
    rows_by_id = latest_rows(job)
    assert len(rows_by_id) == 3 and {r["status"] for r in rows_by_id.values()} == {"ok"}
    by_path = {r["image_path"]: r for r in rows_by_id.values()}
    assert sorted(by_path) == [f"images/TSHIRT-{size}.png" for size in "LMS"]
    hashes = {hashlib.sha256((job.folder / path).read_bytes()).hexdigest() for path in by_path}
    assert hashes == {r["image_sha256"] for r in rows_by_id.values()} and len(hashes) == 1
    paid = [r for r in rows_by_id.values() if r["shared_from"] is None]
    copies = [r for r in rows_by_id.values() if r["shared_from"] is not None]
    assert len(paid) == 1 and paid[0]["cost_usd"] > 0 and paid[0]["total_tokens"] > 0
    assert {(r["shared_from"], r["cost_usd"], r["total_tokens"]) for r in copies} == {(paid[0]["row_id"], 0.0, None)}
    estimate = json.loads(batchrun(tmp_path, "estimate", str(spec), "--json").stdout)
    assert [m["requests"] for m in estimate["models"]] == [1]
    status = json.loads(batchrun(tmp_path, "status", str(spec), "--json").stdout)
    assert (status["total"], status["done"]["ok"], status["pending"]) == (3, 3, 0)
    assert abs(status["spend_usd"] - paid[0]["cost_usd"]) < 1e-9

    # a fourth SKU with the same request, added later, takes a copy: nothing is sent
    rows.append({"sku": "TSHIRT-XL", "title": "Plain T-shirt", "photo": photo})
    spec = write_spec(tmp_path, {**base, "inputs": {"rows": rows}, "matrix": {},
                                 "request": {**base["request"], "prompt": "Photograph the {{ title }}."},
                                 "output": {"image_name": "{{ sku }}"}})
    again = run_job(tmp_path, spec)

    assert again.returncode == 0, again.stderr
    assert len(simulator.requests()) == 1
    rows_by_id = latest_rows(outputs(tmp_path, "tshirts"))
    assert len(rows_by_id) == 4
    assert (job.folder / "images" / "TSHIRT-XL.png").read_bytes() == (job.folder / "images" / "TSHIRT-S.png").read_bytes()


def test_variants_make_four_distinct_requests_and_images_per_sku(tmp_path, serve):
    simulator = serve(profile="clean")
    base = image_job("variants", simulator.url, tmp_path, photos=2, scenes=1)
    spec = write_spec(tmp_path, {**base, "request": {**base["request"], "variants": 4},
                                 "output": {"image_name": "{{ sku }}/v{{ variant }}"}})

    done = run_job(tmp_path, spec)

    assert done.returncode == 0, done.stderr
    job = outputs(tmp_path, "variants")
    assert len(set(job.ids)) == 8 and len(simulator.requests()) == 8
    seeds = [json.loads(body)["options"]["seed"] for body in job.manifest["body"].to_pylist()]
    assert seeds == [0, 1, 2, 3, 0, 1, 2, 3]
    rows = latest_rows(job)
    assert len(rows) == 8
    for sku in {json.loads(v)["sku"] for v in job.manifest["variables"].to_pylist()}:
        files = [job.folder / "images" / sku / f"v{k}.png" for k in range(4)]
        assert len({hashlib.sha256(f.read_bytes()).hexdigest() for f in files}) == 4


def test_variants_without_the_variant_in_the_image_name_are_refused(tmp_path, serve):
    simulator = serve(profile="clean")
    base = image_job("novariant", simulator.url, tmp_path, photos=1, scenes=1)
    spec = write_spec(tmp_path, {**base, "request": {**base["request"], "variants": 2}})

    done = batchrun(tmp_path, "plan", str(spec))

    assert done.returncode == 2
    assert done.stderr.endswith("add a variable that tells them apart to output.image_name "
                                "(it does not use variant)\n"), done.stderr


def test_a_wrong_endpoint_stops_the_run_records_nothing_and_the_fixed_spec_completes(tmp_path, serve):
    simulator = serve(profile="clean")
    wrong = text_job("endpoint", simulator.url + "/wrong/path", 12)
    spec = write_spec(tmp_path, wrong)

    first = run_job(tmp_path, spec)

    assert first.returncode == 11, first.stderr
    last = first.stderr.strip().splitlines()[-1]
    assert re.match(r"batchrun: error: run stopped: configuration error: the first \d+ replies were all "
                    r"HTTP 404 \(not_found\) from " + re.escape(simulator.url) + "/wrong/path/v1beta/models/"
                    r"gemini-3-flash-preview:generateContent for model gemini-3-flash-preview", last), last
    assert "nothing was recorded" in last and "Traceback" not in first.stderr
    assert outputs(tmp_path, "endpoint").rows() == []

    spec = write_spec(tmp_path, text_job("endpoint", simulator.url, 12))
    second = run_job(tmp_path, spec)

    assert second.returncode == 0, second.stderr
    job = outputs(tmp_path, "endpoint")
    assert {r["status"] for r in job.rows()} == {"ok"} and len(job.rows()) == 12
    assert_no_key(tmp_path, first.stderr, second.stderr)


def test_a_base_url_changed_since_rows_were_recorded_invalid_is_reported_and_retry_sends_them(tmp_path, serve):
    simulator = serve(profile="clean")
    spec = write_spec(tmp_path, text_job("moved", simulator.url + "/old", 4))
    assert run_job(tmp_path, spec, "--no-config-check").returncode == 8
    job = outputs(tmp_path, "moved")
    assert {r["status"] for r in job.rows()} == {"invalid"}

    spec = write_spec(tmp_path, text_job("moved", simulator.url, 4))
    unchanged = run_job(tmp_path, spec)

    assert unchanged.returncode == 8, unchanged.stderr
    assert "the provider endpoint changed since the last run" in unchanged.stderr
    assert "`batchrun run --retry invalid` sends them again" in unchanged.stderr

    retried = run_job(tmp_path, spec, "--retry", "invalid")

    assert retried.returncode == 0, retried.stderr
    assert {r["status"] for r in outputs(tmp_path, "moved").rows()} == {"ok"}


def test_blocked_rows_end_with_exit_8_and_retry_blocked_sends_only_them_again(tmp_path, serve):
    simulator = serve(faults="mixed.yaml")
    spec = write_spec(tmp_path, text_job("blocky", simulator.url, 40, retry={"max_attempts": 20}))

    first = run_job(tmp_path, spec)

    assert first.returncode == 8, first.stderr
    job = outputs(tmp_path, "blocky")
    blocked = {r["request_id"] for r in job.rows() if r["status"] == "blocked"}
    assert blocked and {r["status"] for r in job.rows()} == {"ok", "blocked"}
    assert "rows final but not ok: blocked" in first.stderr
    sent_before = len(simulator.requests())

    retried = run_job(tmp_path, spec, "--retry", "blocked")

    assert retried.returncode in (0, 8), retried.stderr
    resent = sends_by_id(simulator.requests()[sent_before:], job.body_hashes())
    assert set(resent) == blocked


def test_a_templated_model_plans_a_request_per_model_each_priced_with_its_own_prices(tmp_path, serve):
    simulator = serve(profile="clean")
    spec = write_spec(tmp_path, text_job("models", simulator.url, 3, model="{{ m }}",
                                         matrix={"m": ["gemini-3-flash-preview", "gemini-2.5-flash"]}))

    plan = batchrun(tmp_path, "plan", str(spec))
    assert plan.returncode == 0, plan.stderr
    assert "models: gemini-2.5-flash, gemini-3-flash-preview" in plan.stdout
    assert "not in batchrun's model table" not in plan.stderr
    done = run_job(tmp_path, spec)

    assert done.returncode == 0, done.stderr
    job = outputs(tmp_path, "models")
    assert len(set(job.ids)) == 6 and len(simulator.requests()) == 6
    rows = job.rows()
    assert sorted({r["model"] for r in rows}) == ["gemini-2.5-flash", "gemini-3-flash-preview"]
    estimate = json.loads(batchrun(tmp_path, "estimate", str(spec), "--json").stdout)
    assert sorted(m["model"] for m in estimate["models"]) == ["gemini-2.5-flash", "gemini-3-flash-preview"]
    manifest = pq.read_table(job.folder / "manifest.parquet", columns=["model"])["model"].to_pylist()
    assert manifest == ["gemini-3-flash-preview", "gemini-2.5-flash"] * 3


def test_a_templated_model_is_checked_against_each_models_capabilities(tmp_path):
    spec = write_spec(tmp_path, text_job("checked", "http://127.0.0.1:9", 1, model="{{ m }}",
                                         matrix={"m": ["gemini-3-flash-preview", "gemini-3.1-flash-image"]},
                                         request={"generation_config": {"thinkingConfig": {"thinkingLevel": "medium"}}}))

    done = batchrun(tmp_path, "plan", str(spec))

    assert done.returncode == 2
    assert done.stderr.startswith(f"batchrun: error: {spec}: request.generation_config.thinkingConfig")
    assert "row 1" in done.stderr and "gemini-3.1-flash-image" in done.stderr
