"""The simulator's Files API through SimulatorCore: the resumable upload protocol, get, list, delete,
download of generated files only, and the folder the files live in removed on close."""

from __future__ import annotations

import base64
import hashlib
import json

import httpx
import pytest

from batchrun.simulator.core import SimulatorCore
from batchrun.simulator.faults import FaultConfig
from batchrun.simulator.requestlog import RequestLog, read_request_log

HOST = "sim.test"


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_core(tmp_path=None, **config) -> SimulatorCore:
    log = RequestLog(tmp_path / "requests.jsonl") if tmp_path is not None else None
    return SimulatorCore(FaultConfig.model_validate(config), 0, clock=FakeClock(), request_log=log)


def send(core: SimulatorCore, method: str, url: str, body: bytes = b"", **headers: str):
    """One request as a client sends it: the URL's path and query split, headers case-insensitive."""
    parsed = httpx.URL(url)
    all_headers = httpx.Headers({"host": HOST, **{k.replace("_", "-"): v for k, v in headers.items()}})
    return core.handle(method, parsed.path, dict(parsed.params), all_headers, body)


def start(core: SimulatorCore, size: int, name: str = "chunk-0", mime: str = "application/jsonl"):
    body = json.dumps({"file": {"display_name": name}}).encode()
    return send(core, "POST", "/upload/v1beta/files", body, x_goog_upload_protocol="resumable",
                x_goog_upload_command="start", x_goog_upload_header_content_length=str(size),
                x_goog_upload_header_content_type=mime)


def chunk(core: SimulatorCore, url: str, offset: int, data: bytes, command: str = "upload, finalize"):
    return send(core, "POST", url, data, x_goog_upload_offset=str(offset), x_goog_upload_command=command)


def upload(core: SimulatorCore, data: bytes, name: str = "chunk-0") -> dict:
    url = start(core, len(data), name).headers["x-goog-upload-url"]
    return json.loads(chunk(core, url, 0, data).body)["file"]


def test_start_answers_with_an_upload_url_on_the_host_the_client_used():
    reply = start(make_core(), 10)
    assert reply.status == 200
    assert reply.headers["x-goog-upload-status"] == "active"
    assert reply.headers["x-goog-upload-url"].startswith(f"http://{HOST}/upload/v1beta/files?upload_id=")


def test_a_start_without_the_resumable_headers_is_refused_with_the_headers_to_send():
    reply = send(make_core(), "POST", "/upload/v1beta/files", b"{}")
    assert reply.status == 400
    assert "X-Goog-Upload-Protocol: resumable" in json.loads(reply.body)["error"]["message"]


def test_one_chunk_with_upload_finalize_makes_an_active_file_resource():
    data = b'{"key":"a","request":{}}\n'
    reply = chunk(core := make_core(), start(core, len(data)).headers["x-goog-upload-url"], 0, data)
    assert reply.headers["x-goog-upload-status"] == "final"
    file = json.loads(reply.body)["file"]
    assert file["name"].startswith("files/")
    assert (file["displayName"], file["mimeType"], file["sizeBytes"]) == ("chunk-0", "application/jsonl", str(len(data)))
    assert (file["state"], file["source"]) == ("ACTIVE", "UPLOADED")
    assert base64.b64decode(file["sha256Hash"]).decode() == hashlib.sha256(data).hexdigest()
    assert file["uri"] == f"http://{HOST}/v1beta/files/{file['name'][6:]}"
    assert "downloadUri" not in file


def test_chunks_upload_in_order_stay_active_until_the_finalizing_one():
    core, data = make_core(), b"0123456789" * 3
    url = start(core, len(data)).headers["x-goog-upload-url"]
    first = chunk(core, url, 0, data[:10], "upload")
    second = chunk(core, url, 10, data[10:20], "upload")
    last = chunk(core, url, 20, data[20:])
    assert [r.headers["x-goog-upload-status"] for r in (first, second, last)] == ["active", "active", "final"]
    assert (first.body, second.body) == (b"", b"")
    name = json.loads(last.body)["file"]["name"]
    assert core.batches.files.get(name[6:]).path.read_bytes() == data


def test_a_chunk_sent_twice_is_refused_so_the_client_sees_the_offset_it_must_resume_from():
    core, data = make_core(), b"0123456789" * 2
    url = start(core, len(data)).headers["x-goog-upload-url"]
    chunk(core, url, 0, data[:10], "upload")
    again = chunk(core, url, 0, data[:10], "upload")
    assert again.status == 400
    assert "does not match the 10 bytes received" in json.loads(again.body)["error"]["message"]
    query = send(core, "POST", url, x_goog_upload_command="query")
    assert query.headers["x-goog-upload-size-received"] == "10"


def test_finalizing_short_of_the_declared_size_is_refused():
    core = make_core()
    url = start(core, 100).headers["x-goog-upload-url"]
    reply = chunk(core, url, 0, b"too short")
    assert reply.status == 400
    assert "declared 100 bytes but 9 arrived" in json.loads(reply.body)["error"]["message"]


@pytest.mark.parametrize("body,headers,message", [
    (b"not json", {}, "JSON"),
    (b"{}", {"x_goog_upload_header_content_length": "ten"}, "whole number of bytes"),
])
def test_a_start_with_a_bad_body_or_size_is_400(body, headers, message):
    reply = send(make_core(), "POST", "/upload/v1beta/files", body, x_goog_upload_protocol="resumable",
                 x_goog_upload_command="start", **headers)
    assert reply.status == 400
    assert message in json.loads(reply.body)["error"]["message"]


def test_an_unknown_upload_id_is_404():
    reply = chunk(make_core(), "/upload/v1beta/files?upload_id=nope&upload_protocol=resumable", 0, b"x")
    assert reply.status == 404


def test_get_list_and_delete_a_file():
    core = make_core()
    first, second = upload(core, b"a\n", "one"), upload(core, b"b\n", "two")
    got = json.loads(send(core, "GET", f"/v1beta/{first['name']}").body)
    assert got == first
    listing = json.loads(send(core, "GET", "/v1beta/files").body)
    assert [f["displayName"] for f in listing["files"]] == ["two", "one"]
    assert json.loads(send(core, "DELETE", f"/v1beta/{first['name']}").body) == {}
    assert send(core, "GET", f"/v1beta/{first['name']}").status == 404
    assert [f["name"] for f in json.loads(send(core, "GET", "/v1beta/files").body)["files"]] == [second["name"]]


def test_the_file_list_pages_by_page_size_and_token():
    core = make_core()
    for i in range(3):
        upload(core, b"x\n", f"f{i}")
    page = json.loads(send(core, "GET", "/v1beta/files?pageSize=2").body)
    assert [f["displayName"] for f in page["files"]] == ["f2", "f1"]
    rest = json.loads(send(core, "GET", f"/v1beta/files?pageSize=2&pageToken={page['nextPageToken']}").body)
    assert [f["displayName"] for f in rest["files"]] == ["f0"]
    assert "nextPageToken" not in rest


def test_an_uploaded_file_cannot_be_downloaded():
    core = make_core()
    name = upload(core, b"a\n")["name"]
    reply = send(core, "GET", f"/download/v1beta/{name}:download?alt=media")
    assert reply.status == 400
    assert "only generated files" in json.loads(reply.body)["error"]["message"]


def test_a_bad_key_is_refused_on_the_files_routes():
    core = make_core(bad_keys=["bad"])
    reply = send(core, "GET", "/v1beta/files", x_goog_api_key="bad")
    assert reply.status == 400
    assert json.loads(reply.body)["error"]["details"][0]["reason"] == "API_KEY_INVALID"


@pytest.mark.parametrize("method,path", [("GET", "/v1beta/files/abc:cancel"), ("PUT", "/v1beta/files/abc"),
                                         ("GET", "/download/v1beta/files/abc")])
def test_paths_the_files_api_does_not_have_are_404(method, path):
    assert send(make_core(), method, path).status == 404


def test_every_files_call_is_logged_with_its_rpc_and_body_sha256(tmp_path):
    core = make_core(tmp_path)
    data = b"a\n"
    name = upload(core, data)["name"]
    send(core, "GET", f"/v1beta/{name}")
    send(core, "GET", "/v1beta/files")
    send(core, "DELETE", f"/v1beta/{name}")
    core.close()
    lines = read_request_log(tmp_path / "requests.jsonl")
    assert [line["rpc"] for line in lines] == [
        "files.upload.start", "files.upload", "files.get", "files.list", "files.delete"]
    assert lines[1]["body_sha256"] == hashlib.sha256(data).hexdigest()


def test_close_removes_the_folder_the_files_were_stored_in():
    core = make_core()
    name = upload(core, b"a\n")["name"]
    path = core.batches.files.get(name[6:]).path
    assert path.exists()
    core.close()
    assert not path.parent.exists()
