"""The simulator's keys as projects: with keys counted apart, a file or batch is seen only with the key
that made it (403 otherwise), listings show a key's own; without, every key sees everything."""

from __future__ import annotations

import json

from test_simulator_batches import MODEL, jsonl, make_core
from test_simulator_files import send

from batchrun.simulator.projects import Projects
from batchrun.simulator.requestlog import read_request_log

PER_KEY = {"limits": {"requests_per_minute": 600, "per_key": True}}


def upload(core, key: str, n: int = 2) -> str:
    data = jsonl(n)
    body = json.dumps({"file": {"display_name": "chunk"}}).encode()
    url = send(core, "POST", "/upload/v1beta/files", body, x_goog_api_key=key, x_goog_upload_protocol="resumable",
               x_goog_upload_command="start", x_goog_upload_header_content_length=str(len(data)),
               x_goog_upload_header_content_type="application/jsonl").headers["x-goog-upload-url"]
    reply = send(core, "POST", url, data, x_goog_api_key=key, x_goog_upload_command="upload, finalize",
                 x_goog_upload_offset="0")
    return json.loads(reply.body)["file"]["name"]


def create(core, key: str, file_name: str):
    body = {"batch": {"displayName": "chunk", "inputConfig": {"fileName": file_name}}}
    return send(core, "POST", f"/v1beta/models/{MODEL}:batchGenerateContent", json.dumps(body).encode(),
                x_goog_api_key=key)


def test_projects_own_what_a_counted_key_made_and_nobody_owns_what_an_uncounted_one_made():
    projects = Projects()
    projects.claim("files/a", 1)
    projects.claim("files/b", None)
    assert (projects.sees("files/a", 1), projects.sees("files/a", 2), projects.sees("files/b", 2)) == (True, False, True)


def test_a_batch_is_got_and_its_results_downloaded_only_with_the_key_that_made_it(tmp_path):
    core = make_core(tmp_path, **PER_KEY)
    name = json.loads(create(core, "key-1", upload(core, "key-1")).body)["name"]
    core.clock.now += 60
    assert send(core, "GET", f"/v1beta/{name}", x_goog_api_key="key-2").status == 403
    operation = json.loads(send(core, "GET", f"/v1beta/{name}", x_goog_api_key="key-1").body)
    results = f"/download/v1beta/{operation['response']['responsesFile']}:download?alt=media"
    assert send(core, "GET", results, x_goog_api_key="key-2").status == 403
    assert send(core, "GET", results, x_goog_api_key="key-1").status == 200
    assert send(core, "POST", f"/v1beta/{name}:cancel", x_goog_api_key="key-2").status == 403
    core.close()
    logged = [(line["rpc"], line["key"], line["status"]) for line in read_request_log(tmp_path / "requests.jsonl")
              if line["rpc"] in ("batches.create", "batches.get", "files.download")]
    assert logged == [("batches.create", 1, 200), ("batches.get", 2, 403), ("batches.get", 1, 200),
                      ("files.download", 2, 403), ("files.download", 1, 200)]


def test_a_batch_cannot_be_made_from_another_keys_file_and_listings_show_a_keys_own():
    core = make_core(**PER_KEY)
    reply = create(core, "key-2", upload(core, "key-1"))
    assert reply.status == 403 and json.loads(reply.body)["error"]["status"] == "PERMISSION_DENIED"
    create(core, "key-1", upload(core, "key-1"))
    create(core, "key-2", upload(core, "key-2"))
    listed = {key: len(json.loads(send(core, "GET", "/v1beta/batches", x_goog_api_key=key).body)["operations"])
              for key in ("key-1", "key-2", "key-3")}
    assert listed == {"key-1": 1, "key-2": 1, "key-3": 0}
    files = json.loads(send(core, "GET", "/v1beta/files", x_goog_api_key="key-2").body)["files"]
    assert len(files) == 1


def test_without_keys_counted_apart_every_key_sees_every_batch():
    core = make_core()
    name = json.loads(create(core, "key-1", upload(core, "key-1")).body)["name"]
    assert send(core, "GET", f"/v1beta/{name}", x_goog_api_key="key-2").status == 200
