"""Request ids don't change from 0.2: an id hashes the provider's wire body, which for Gemini is the body
0.2 hashed. The expected ids below are what batchrun 0.2.0 planned for these two specs (an image job
with an input image, a matrix and variants; a text job with a response schema and safety settings), so
a job planned and partly run by 0.2 is planned again by this version without sending anything twice.
"""

from __future__ import annotations

import base64

import pyarrow.parquet as pq

from batchrun.planning.plan import plan_job
from batchrun.planning.spec import load_spec

# a 1x1 PNG, fixed bytes
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")

PLANNED_BY_0_2 = {
    "job.yaml": ["55b9d9f8626020d5cda04aacb78f631e", "b8185c71fb2c7a8b1e1b11b42cc997f5",
                 "e04d4a8cce87d9d73c31a173f075b2bf", "45fdaefc57e78e865daf04bbcf77f526",
                 "79ede06324acc9141cd0feb35e72f5cb", "38226a0e7d6dacf04f168eb2a9a9413e",
                 "c0e164c9e7641dbbaf6cd4909fda7bbb", "99cf363fd3e58fd41c9b7831f8cf290b"],
    "text.yaml": ["c10b0c2ce2ef723c86a90483051f2b57", "2ac17d2a6bb23716470cf49c2b2de3ce"],
}


def write_jobs(root) -> None:
    (root / "photo.png").write_bytes(PNG)
    (root / "rows.jsonl").write_text('{"sku": "CUP-1", "name": "cup"}\n{"sku": "MUG-2", "name": "mug"}\n')
    (root / "job.yaml").write_text("""
    name: ids
    provider: {kind: gemini, base_url: https://generativelanguage.googleapis.com, api_key_env: GEMINI_API_KEY}
    model: gemini-3.1-flash-image
    inputs: {path: rows.jsonl}
    matrix:
      ratio: ["1:1", "4:5"]
    request:
      system: "Photographer for {{ sku }}."
      prompt: "A {{ name }} on a table, {{ ratio }}"
      images: ["photo.png"]
      variants: 2
      generation_config:
        responseModalities: [IMAGE]
        imageConfig: {aspectRatio: "{{ ratio }}", imageSize: 1K}
    output:
      image_name: "{{ sku }}/{{ ratio | replace(':', '-') }}-{{ variant }}"
    """)
    (root / "text.yaml").write_text("""
    name: idstext
    provider: {kind: gemini, base_url: https://generativelanguage.googleapis.com, api_key_env: GEMINI_API_KEY}
    model: gemini-3.1-flash-lite
    inputs: {path: rows.jsonl}
    request:
      prompt: "Describe the {{ name }}"
      generation_config:
        temperature: 0.2
        maxOutputTokens: 300
        responseMimeType: application/json
        responseSchema: {type: OBJECT, properties: {title: {type: STRING}}, required: [title]}
      safety_settings: [{category: HARM_CATEGORY_HARASSMENT, threshold: BLOCK_NONE}]
    """)


def planned_ids(spec) -> list[str]:
    summary = plan_job(load_spec(spec))
    return pq.read_table(summary.manifest, columns=["request_id"]).column("request_id").to_pylist()


def test_request_ids_are_those_0_2_planned(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_jobs(tmp_path)
    for name, expected in PLANNED_BY_0_2.items():
        assert planned_ids(tmp_path / name) == expected, name


def test_a_batch_section_and_a_tier_are_run_settings_the_request_ids_stay_the_same(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_jobs(tmp_path)
    spec = tmp_path / "text.yaml"
    spec.write_text(spec.read_text().rstrip() + "\n    tier: batch\n"
                    "    batch: {fallback: flex, timeout: 4h, max_requests: 1, max_mb: 1}\n")
    assert planned_ids(spec) == PLANNED_BY_0_2["text.yaml"]
