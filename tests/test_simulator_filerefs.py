"""fileData parts in generateContent: a stored image counts as the same image sent inline; an unknown
or expired file is 403, a URI that names no file 400; a body over max_request_bytes is 400."""

from __future__ import annotations

import base64
import io
import json
import random

import pytest
from PIL import Image
from test_simulator_files import make_core, send, upload

from batchrun.simulator.filerefs import file_id
from batchrun.simulator.files import FILE_LIFETIME_S

MODEL = "gemini-2.5-flash"
URL = f"/v1beta/models/{MODEL}:generateContent"


def png(size=(64, 48)) -> bytes:
    """A noisy PNG: its bytes grow with its size (a flat one compresses to almost nothing)."""
    out = io.BytesIO()
    Image.frombytes("RGB", size, random.Random(0).randbytes(size[0] * size[1] * 3)).save(out, format="PNG")
    return out.getvalue()


def generate(core, image_part: dict) -> tuple[int, dict]:
    body = {"contents": [{"role": "user", "parts": [{"text": "describe the photo"}, image_part]}]}
    reply = send(core, "POST", URL, json.dumps(body).encode())
    return reply.status, json.loads(reply.body)


def file_part(uri: str) -> dict:
    return {"fileData": {"mimeType": "image/png", "fileUri": uri}}


def test_a_stored_image_is_counted_as_the_same_image_inline():
    core = make_core()
    data = png()
    stored = upload(core, data, "photo")
    inline_status, inline = generate(core, {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(data).decode()}})
    file_status, by_file = generate(core, file_part(stored["uri"]))
    assert (inline_status, file_status) == (200, 200)
    assert by_file["usageMetadata"]["promptTokenCount"] == inline["usageMetadata"]["promptTokenCount"]
    assert by_file["usageMetadata"]["promptTokensDetails"] == inline["usageMetadata"]["promptTokensDetails"]


def test_a_file_named_files_slash_id_is_found_too():
    core = make_core()
    stored = upload(core, png(), "photo")
    assert generate(core, file_part(stored["name"]))[0] == 200


def test_an_unknown_file_is_403_permission_denied():
    status, body = generate(make_core(), file_part("http://sim.test/v1beta/files/nosuchfile"))
    assert status == 403
    assert body["error"]["status"] == "PERMISSION_DENIED"
    assert body["error"]["message"] == (
        "You do not have permission to access the File nosuchfile or it may not exist.")


def test_a_file_48_hours_old_is_403_as_an_unknown_one():
    core = make_core()
    stored = upload(core, png(), "photo")
    core.clock.now += FILE_LIFETIME_S - 1
    assert generate(core, file_part(stored["uri"]))[0] == 200
    core.clock.now += 1
    status, body = generate(core, file_part(stored["uri"]))
    assert (status, body["error"]["status"]) == (403, "PERMISSION_DENIED")


def test_a_stored_file_that_is_no_image_is_400():
    core = make_core()
    stored = upload(core, b'{"key":"a"}\n', "chunk")
    status, body = generate(core, file_part(stored["uri"]))
    assert (status, body["error"]["status"]) == (400, "INVALID_ARGUMENT")


@pytest.mark.parametrize("uri", ["https://example.com/photo.png", "gs://bucket/photo.png", ""])
def test_a_uri_that_names_no_file_of_the_files_api_is_400(uri):
    status, body = generate(make_core(), file_part(uri))
    assert (status, body["error"]["status"]) == (400, "INVALID_ARGUMENT")


def test_file_ids_are_read_from_a_full_uri_or_a_name():
    assert file_id("https://generativelanguage.googleapis.com/v1beta/files/abc123") == "abc123"
    assert file_id("files/abc123") == "abc123"


def test_a_body_over_max_request_bytes_is_400_payload_size():
    core = make_core(max_request_bytes=2000)
    data = png((40, 40))
    assert len(base64.b64encode(data)) > 2000
    status, body = generate(core, {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(data).decode()}})
    assert status == 400
    assert body["error"] == {"code": 400, "status": "INVALID_ARGUMENT",
                             "message": "Request payload size exceeds the limit: 2000 bytes."}


def test_the_same_image_by_file_fits_under_the_limit():
    core = make_core(max_request_bytes=2000)
    stored = upload(core, png((40, 40)), "photo")
    assert generate(core, file_part(stored["uri"]))[0] == 200


def test_max_request_bytes_defaults_to_100_mib():
    assert make_core().config.max_request_bytes == 100 * 1024 * 1024
