"""Chunks: bounded by requests and bytes, one model each, deterministic names, images inlined at write time."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from batchrun.batching.chunks import ChunkLimits, chunk_digest, display_name, read_ids, write_chunks
from batchrun.providers.gemini import GeminiProvider, gemini_body
from batchrun.records import ImageRef, RequestRecord
from batchrun.rendered import image_part, rendered_request


def text_record(n: int, *, model: str = "gemini-3-flash-preview", text: str = "hello") -> RequestRecord:
    body = rendered_request(None, [{"text": f"{text} {n}"}], {"temperature": 0.5}, None, {})
    return RequestRecord(request_id=f"r{n:03d}", seq=n, model=model, body=body, variables={})


def encode(tmp_path: Path):
    return GeminiProvider("https://x.test", None, spec_dir=tmp_path).encode_body


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def test_each_line_holds_the_request_id_as_key_and_the_gemini_wire_body(tmp_path):
    records = [text_record(n) for n in range(3)]
    plan = write_chunks(records, encode(tmp_path), tmp_path, "cats")
    [chunk] = plan.chunks
    assert lines_of(chunk.jsonl_path) == [{"key": r.request_id, "request": gemini_body(r.body)} for r in records]
    assert read_ids(chunk.ids_path) == ["r000", "r001", "r002"]
    assert (chunk.count, chunk.bytes) == (3, chunk.jsonl_path.stat().st_size)
    assert chunk.jsonl_path == tmp_path / "batches" / f"{chunk.chunk_id}.jsonl"


def test_chunks_hold_at_most_max_requests(tmp_path):
    plan = write_chunks([text_record(n) for n in range(5)], encode(tmp_path), tmp_path, "cats",
                        ChunkLimits(max_requests=2))
    assert [read_ids(c.ids_path) for c in plan.chunks] == [["r000", "r001"], ["r002", "r003"], ["r004"]]


def test_chunks_hold_at_most_max_bytes_and_a_request_too_large_alone_gets_its_own(tmp_path):
    records = [text_record(0), text_record(1, text="x" * 500), text_record(2), text_record(3)]
    line = len(json.dumps({"key": "r000", "request": gemini_body(records[0].body)}, separators=(",", ":"))) + 1
    plan = write_chunks(records, encode(tmp_path), tmp_path, "cats", ChunkLimits(max_bytes=2 * line))
    assert [read_ids(c.ids_path) for c in plan.chunks] == [["r000"], ["r001"], ["r002", "r003"]]
    assert all(c.bytes <= 2 * line for c in plan.chunks if c.count > 1)


def test_a_chunk_holds_one_model_only(tmp_path):
    records = [text_record(0, model="m-b"), text_record(1, model="m-a"), text_record(2, model="m-b")]
    plan = write_chunks(records, encode(tmp_path), tmp_path, "cats")
    assert [(c.model, read_ids(c.ids_path)) for c in plan.chunks] == [("m-a", ["r001"]), ("m-b", ["r000", "r002"])]


def test_the_same_pending_set_in_any_order_gives_the_same_chunks_and_names(tmp_path):
    records = [text_record(n) for n in range(7)]
    first = write_chunks(records, encode(tmp_path), tmp_path / "a", "cats", ChunkLimits(max_requests=3))
    again = write_chunks(records[::-1], encode(tmp_path), tmp_path / "b", "cats", ChunkLimits(max_requests=3))
    assert [(c.chunk_id, c.display_name) for c in first.chunks] == [(c.chunk_id, c.display_name) for c in again.chunks]
    assert [c.jsonl_path.read_bytes() for c in first.chunks] == [c.jsonl_path.read_bytes() for c in again.chunks]


def test_the_display_name_is_the_job_name_and_16_hex_of_the_sorted_ids(tmp_path):
    plan = write_chunks([text_record(1), text_record(0)], encode(tmp_path), tmp_path, "cats")
    digest = hashlib.sha256(b"r000\nr001").hexdigest()[:16]
    assert plan.chunks[0].chunk_id == digest == chunk_digest(["r001", "r000"])
    assert plan.chunks[0].display_name == f"batchrun-cats-{digest}"
    assert display_name("my job/v2", digest) == f"batchrun-my-job-v2-{digest}"


def test_input_images_are_inlined_as_base64_when_the_file_is_written(tmp_path):
    data = b"\x89PNG fake image bytes"
    (tmp_path / "cat.png").write_bytes(data)
    ref = ImageRef("cat.png", hashlib.sha256(data).hexdigest(), "image/png", len(data), 1, 1)
    body = rendered_request(None, [{"text": "draw"}, image_part(ref)], {}, None, {})
    record = RequestRecord(request_id="img", seq=0, model="m", body=body, variables={}, images=[ref])
    [chunk] = write_chunks([record], encode(tmp_path), tmp_path, "cats").chunks
    [line] = lines_of(chunk.jsonl_path)
    assert line["request"]["contents"][0]["parts"][1] == {"inlineData": {"mimeType": "image/png",
                                                                         "data": base64.b64encode(data).decode()}}


def test_a_record_whose_input_image_changed_is_left_out_and_reported(tmp_path):
    (tmp_path / "cat.png").write_bytes(b"now different")
    ref = ImageRef("cat.png", "0" * 64, "image/png", 3, 1, 1)
    body = rendered_request(None, [image_part(ref)], {}, None, {})
    changed = RequestRecord(request_id="img", seq=0, model="m", body=body, variables={}, images=[ref])
    plan = write_chunks([changed, text_record(1, model="m")], encode(tmp_path), tmp_path, "cats")
    assert [read_ids(c.ids_path) for c in plan.chunks] == [["r001"]]
    assert [rid for rid, _ in plan.unreadable] == ["img"]
    assert "batchrun plan" in plan.unreadable[0][1]


def test_no_temp_file_is_left_behind(tmp_path):
    write_chunks([text_record(n) for n in range(4)], encode(tmp_path), tmp_path, "cats", ChunkLimits(max_requests=3))
    assert not [p.name for p in (tmp_path / "batches").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("limits", [{"max_requests": 0}, {"max_bytes": 0}])
def test_limits_below_one_are_refused(limits):
    with pytest.raises(ValueError, match="at least 1"):
        ChunkLimits(**limits)
