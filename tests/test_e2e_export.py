"""End to end: `batchrun export` after real CLI runs against `batchrun simulate` over HTTP.

An image job (photos x scenes x 2 variants) exports one row per expanded row whose image path names
the very file the run saved (absolute by default, relative to the output folder with --relative-paths);
a JSON job exports its replies' fields as columns; a job stopped part way exports its unsent rows as
pending; a job never planned exits 2 with the fix.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
from e2e_helpers import batchrun, image_job, outputs, run_job, serve, text_job, write_spec  # noqa: F401

SCHEMA = {"type": "OBJECT", "properties": {"headline": {"type": "STRING"}, "price_usd": {"type": "NUMBER"},
                                           "bullets": {"type": "ARRAY", "items": {"type": "STRING"}}},
          "required": ["headline", "price_usd", "bullets"]}


def manifest_ids(folder, name: str) -> list[str]:
    return pq.read_table(folder / "outputs" / name / "manifest.parquet", columns=["row_id"])["row_id"].to_pylist()


def test_an_image_job_exports_each_row_once_with_the_path_of_its_own_image(tmp_path, serve):
    simulator = serve(profile="clean")
    spec = write_spec(tmp_path, image_job("shots", simulator.url, tmp_path, photos=2, scenes=2,
                                          request={"variants": 2},
                                          output={"image_name": "{{ sku }}/{{ scene | slug }}-{{ variant }}"}))
    assert run_job(tmp_path, spec).returncode == 0

    absolute = batchrun(tmp_path, "export", str(spec))
    relative = batchrun(tmp_path, "export", str(spec), "--format", "csv", "--relative-paths")

    out = tmp_path / "outputs" / "shots"
    assert (absolute.returncode, absolute.stdout) == (0, f"{out.relative_to(tmp_path)}/export.parquet  (8 rows)\n")
    assert relative.returncode == 0
    rows = pq.read_table(out / "export.parquet").to_pylist()
    assert [row["row_id"] for row in rows] == manifest_ids(tmp_path, "shots")
    skus = sorted({row["sku"] for row in rows})
    assert len(skus) == 2 and sorted((r["sku"], r["scene"], r["variant"]) for r in rows) == sorted(
        (sku, scene, v) for sku in skus for scene in ("kitchen counter", "picnic table") for v in (0, 1))
    for row in rows:
        assert hashlib.sha256(Path(row["image_path"]).read_bytes()).hexdigest() == row["image_sha256"]
        assert (row["status"], row["aspect_ratio_requested"], row["image_size_requested"]) == ("ok", "1:1", "512")
    with open(out / "export.csv", newline="") as stream:
        paths = [row["image_path"] for row in csv.DictReader(stream)]
    assert [str(out / path) for path in paths] == [row["image_path"] for row in rows]
    assert all(path.startswith("images/") for path in paths)


def test_a_json_job_exports_its_reply_fields_and_a_stopped_one_its_pending_rows(tmp_path, serve):
    simulator = serve(profile="clean")
    job = text_job("cards", simulator.url, 6, matrix={"tone": ["warm", "crisp"]},
                   request={"generation_config": {"responseMimeType": "application/json", "responseSchema": SCHEMA}})
    spec = write_spec(tmp_path, job)
    assert run_job(tmp_path, spec).returncode == 0
    job["inputs"]["rows"].append({"n": 6, "topic": "topic 6"})  # planned, never sent
    write_spec(tmp_path, job)
    assert batchrun(tmp_path, "plan", str(spec)).returncode == 0

    done = batchrun(tmp_path, "export", str(spec), "--format", "jsonl", "--out", "cards.jsonl")

    assert (done.returncode, done.stdout) == (0, "cards.jsonl  (14 rows)\n")
    rows = [json.loads(line) for line in (tmp_path / "cards.jsonl").read_text().splitlines()]
    assert [row["row_id"] for row in rows] == manifest_ids(tmp_path, "cards")
    assert [(r["n"], r["status"]) for r in rows if r["status"] != "ok"] == [(6, "pending"), (6, "pending")]
    for row in rows[:12]:
        reply = json.loads(row["text"])
        assert (row["json.headline"], row["json.price_usd"]) == (reply["headline"], reply["price_usd"])
        assert json.loads(row["json.bullets"]) == reply["bullets"]


def test_a_job_never_planned_exits_2_naming_the_fix(tmp_path):
    spec = write_spec(tmp_path, text_job("never", "http://127.0.0.1:9", 1))

    done = batchrun(tmp_path, "export", str(spec))

    assert done.returncode == 2
    assert done.stderr == ("batchrun: error: outputs/never has no manifest.parquet: nothing was planned yet; "
                           "run `batchrun plan` on the job first\n")
