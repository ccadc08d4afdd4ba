"""`gs://` locations: the endpoint and errors alone, then the store and a mirror against gcp-storage-emulator.

The server is a real GCS-compatible HTTP server on 127.0.0.1 (see tests/gcs_server.py), which pyarrow's GCS
client talks to as to Google: listing, resumable uploads, reads and deletes.
"""

from __future__ import annotations

import pytest
from gcs_server import gcs, gcs_host  # noqa: F401  (fixtures)

from batchrun.errors import StorageFailed, WriteFailed
from batchrun.output.gcs import emulator_endpoint, failure_detail, short_status
from batchrun.output.mirror import Mirror
from batchrun.output.store import open_store

# pyarrow's wording of two google-cloud-cpp failures, as seen against the emulator and without credentials
NOT_FOUND = ("google::cloud::Status(NOT_FOUND: Permanent error, with a last message of Received HTTP status code: 404 "
             "error_info={reason=, domain=, metadata={gcloud-cpp.retry.function=CreateResumableUpload, "
             "gcloud-cpp.retry.reason=permanent-error}}). Detail: [errno 2] No such file or directory")
NO_TOKEN = ("google::cloud::Status(UNAVAILABLE: Retry policy exhausted, with a last message of Could not create a "
            "OAuth2 access token to authenticate the request. The request was not sent, as such an access token is "
            "required to complete the request successfully. Learn more about Google Cloud authentication at "
            "https://cloud.google.com/docs/authentication. The underlying error message was: PerformWork() - CURL "
            "error [6]=Could not resolve hostname error_info={reason=, domain=, metadata={gcloud-cpp.retry.on-entry="
            "false, gcloud-cpp.retry.function=ListObjects}})")


def test_the_emulator_host_may_carry_its_scheme_or_be_a_bare_host_and_port():
    assert emulator_endpoint("http://127.0.0.1:9023") == ("http", "127.0.0.1:9023")
    assert emulator_endpoint("https://gcs.test:443/") == ("https", "gcs.test:443")
    assert emulator_endpoint("localhost:9023") == ("http", "localhost:9023")


def test_a_google_cloud_status_is_cut_to_its_code_and_last_message():
    assert short_status(NOT_FOUND) == "NOT_FOUND: Received HTTP status code: 404"
    assert short_status(NO_TOKEN) == ("UNAVAILABLE: Could not create a OAuth2 access token to authenticate the "
                                      "request: PerformWork() - CURL error [6]=Could not resolve hostname")
    assert short_status("IOError: something else") == "IOError: something else"


def test_a_write_that_finds_nothing_names_the_missing_bucket_and_a_read_does_not():
    missing = FileNotFoundError(NOT_FOUND)
    assert failure_detail(missing, "upload manifest.parquet", "photos") == (
        "the bucket photos does not exist (NOT_FOUND: Received HTTP status code: 404)")
    assert failure_detail(missing, "download manifest.parquet", "photos") == "NOT_FOUND: Received HTTP status code: 404"


def test_an_upload_is_listed_with_its_size_and_downloads_the_same_bytes(gcs, tmp_path):  # noqa: F811
    store = open_store(f"gs://{gcs.bucket}/job", gcs.env)
    local = tmp_path / "part.parquet"
    local.write_bytes(b"x" * 3000)
    store.upload(local, "results/part-000001.parquet")
    assert store.list_files() == {"results/part-000001.parquet": 3000}
    store.download("results/part-000001.parquet", tmp_path / "back" / "part.parquet")
    assert (tmp_path / "back" / "part.parquet").read_bytes() == b"x" * 3000


def test_a_file_larger_than_one_upload_chunk_goes_up_and_comes_back_whole(gcs, tmp_path):  # noqa: F811
    data = bytes(range(256)) * (40 * 1024 + 7)  # 10 MB and a bit: more than one chunk of a resumable upload
    (tmp_path / "big.png").write_bytes(data)
    store = open_store(f"gs://{gcs.bucket}/job", gcs.env)
    store.upload(tmp_path / "big.png", "images/big.png")
    assert store.list_files() == {"images/big.png": len(data)}
    store.download("images/big.png", tmp_path / "back.png")
    assert (tmp_path / "back.png").read_bytes() == data


def test_a_snapshot_of_bytes_replaces_the_file_whole(gcs, tmp_path):  # noqa: F811
    store = open_store(f"gs://{gcs.bucket}/job", gcs.env)
    store.upload_bytes(b"line 1\n", "journal/r1-000001.jsonl")
    store.upload_bytes(b"line 1\nline 2\n", "journal/r1-000001.jsonl")
    store.download("journal/r1-000001.jsonl", tmp_path / "segment")
    assert (tmp_path / "segment").read_bytes() == b"line 1\nline 2\n"


def test_a_location_with_nothing_yet_lists_nothing(gcs):  # noqa: F811
    assert open_store(f"gs://{gcs.bucket}/never-written", gcs.env).list_files() == {}


def test_a_deleted_file_is_gone_and_deleting_it_again_is_no_error(gcs, tmp_path):  # noqa: F811
    store = open_store(f"gs://{gcs.bucket}/job", gcs.env)
    (tmp_path / "a").write_bytes(b"a")
    store.upload(tmp_path / "a", "runs/a.json")
    store.delete("runs/a.json")
    store.delete("runs/a.json")
    assert store.list_files() == {}


def test_a_missing_bucket_is_one_line_naming_the_location_the_bucket_and_the_fix(gcs, tmp_path):  # noqa: F811
    store = open_store("gs://no-such-bucket/job", gcs.env)
    (tmp_path / "a").write_bytes(b"a")
    with pytest.raises(StorageFailed) as raised:
        store.upload(tmp_path / "a", "manifest.parquet")
    assert isinstance(raised.value, WriteFailed)
    message = str(raised.value)
    assert message.startswith("gs://no-such-bucket/job: cannot upload manifest.parquet: the bucket no-such-bucket "
                              "does not exist (NOT_FOUND: ")
    assert "GOOGLE_APPLICATION_CREDENTIALS" in message and "STORAGE_EMULATOR_HOST" in message
    assert "AWS_" not in message and "error_info" not in message and "\n" not in message


def test_missing_credentials_are_one_line_naming_the_location_and_the_fix(tmp_path, monkeypatch):
    # Google's endpoint, and a key file that isn't there: the client can't make a token, so nothing is sent
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.delenv("CLOUD_STORAGE_EMULATOR_ENDPOINT", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing-key.json"))
    with pytest.raises(StorageFailed) as raised:
        open_store("gs://photos/job", {}).list_files()
    message = str(raised.value)
    assert message.startswith("gs://photos/job: cannot list: ")
    assert f"Cannot open credentials file {tmp_path / 'missing-key.json'}" in message
    assert "GOOGLE_APPLICATION_CREDENTIALS naming a key file" in message and "\n" not in message


def test_a_staging_folder_pushed_to_gs_is_pulled_whole_into_another(gcs, tmp_path):  # noqa: F811
    files = {"manifest.parquet": b"m", "images/sku1/kitchen.png": b"png1", "results/part-000001.parquet": b"p1",
             "runs/r1.json": b"{}", "journal/r1-000001.jsonl": b"j", ".lock": b"123"}
    folder = tmp_path / "staging"
    for relative, data in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(data)
    location = f"gs://{gcs.bucket}/job"
    assert Mirror(folder, open_store(location, gcs.env)).push() == 5
    assert set(gcs.files("job")) == set(files) - {".lock"}
    other = tmp_path / "other-machine"
    assert Mirror(other, open_store(location, gcs.env)).pull() == 5
    assert (other / "images/sku1/kitchen.png").read_bytes() == b"png1"
    assert not (other / ".lock").exists()


def test_a_key_file_that_cant_be_parsed_is_named_and_nothing_of_it_is_shown(tmp_path, monkeypatch):
    key = tmp_path / "key.json"
    key.write_text('{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\nKEYSECRET\\n'
                   '-----END PRIVATE KEY-----\\n", "client_email": "a@b.iam.gserviceaccount.com"}')
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.delenv("CLOUD_STORAGE_EMULATOR_ENDPOINT", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    with pytest.raises(StorageFailed) as raised:
        open_store("gs://photos/job", {}).list_files()
    message = str(raised.value)
    assert message.startswith("gs://photos/job: cannot list: INVALID_ARGUMENT: Could not create a OAuth2 access token")
    assert "KEYSECRET" not in message and "\n" not in message


def test_a_missing_bucket_lists_nothing_as_a_new_job_does_and_only_it_is_missing(gcs):  # noqa: F811
    missing, new = open_store("gs://no-such-bucket/job", gcs.env), open_store(f"gs://{gcs.bucket}/job", gcs.env)
    assert missing.list_files() == new.list_files() == {}
    assert (missing.bucket, missing.bucket_missing(), new.bucket_missing()) == ("no-such-bucket", True, False)


def test_pulling_a_job_from_a_missing_bucket_is_one_line_naming_the_bucket_and_the_fix(gcs, tmp_path):  # noqa: F811
    with pytest.raises(StorageFailed) as raised:
        Mirror(tmp_path / "staging", open_store("gs://no-such-bucket/job", gcs.env)).pull()
    message = str(raised.value)
    assert message.startswith("gs://no-such-bucket/job: cannot read the job: the bucket no-such-bucket does not "
                              "exist; fix output.dir (or --output-dir) if it is mistyped, or create the bucket")
    assert "GOOGLE_APPLICATION_CREDENTIALS" in message and "\n" not in message
    assert Mirror(tmp_path / "other", open_store(f"gs://{gcs.bucket}/job", gcs.env)).pull() == 0
