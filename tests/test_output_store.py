"""The object store seam, against moto's S3 server on 127.0.0.1 (see tests/s3_server.py)."""

from __future__ import annotations

import os

import pytest
from s3_server import CREDENTIALS, s3, s3_endpoint  # noqa: F401  (fixtures)

from batchrun.errors import StorageFailed, WriteFailed
from batchrun.output.store import open_store
from batchrun.planning.outputdir import is_remote, job_folder_name, remote_location


def test_s3_and_gs_uris_are_remote_and_paths_are_not():
    assert is_remote("s3://bucket/job") and is_remote("gs://bucket/job")
    assert not is_remote("outputs/job") and not is_remote(None) and not is_remote("/s3://x")


def test_output_dir_in_a_bucket_is_kept_as_a_uri():
    assert remote_location("s3://bucket/team/job/", "demo", None) == "s3://bucket/team/job"
    assert remote_location("outputs/demo", "demo", None) is None


def test_an_override_in_a_bucket_takes_the_place_of_outputs():
    assert remote_location(None, "demo", "s3://bucket/nightly") == "s3://bucket/nightly/demo"
    assert remote_location("s3://other/job", "demo", "gs://bucket") == "gs://bucket/job"
    assert remote_location("s3://other/job", "demo", "/data/outputs") is None
    assert job_folder_name("s3://other/team/job", "demo") == "job"


def test_an_upload_is_listed_with_its_size_and_downloads_the_same_bytes(s3, tmp_path):  # noqa: F811
    store = open_store(f"s3://{s3.bucket}/job", s3.env)
    local = tmp_path / "part.parquet"
    local.write_bytes(b"x" * 3000)
    store.upload(local, "results/part-000001.parquet")
    assert store.list_files() == {"results/part-000001.parquet": 3000}
    store.download("results/part-000001.parquet", tmp_path / "back" / "part.parquet")
    assert (tmp_path / "back" / "part.parquet").read_bytes() == b"x" * 3000


def test_a_location_with_nothing_yet_lists_nothing(s3):  # noqa: F811
    assert open_store(f"s3://{s3.bucket}/never-written", s3.env).list_files() == {}


def test_a_deleted_file_is_gone_and_deleting_it_again_is_no_error(s3, tmp_path):  # noqa: F811
    store = open_store(f"s3://{s3.bucket}/job", s3.env)
    (tmp_path / "a").write_bytes(b"a")
    store.upload(tmp_path / "a", "runs/a.json")
    store.delete("runs/a.json")
    store.delete("runs/a.json")
    assert store.list_files() == {}


def test_a_missing_bucket_is_a_write_failure_naming_the_location_and_no_secret(s3, tmp_path):  # noqa: F811
    store = open_store("s3://no-such-bucket/job", s3.env)
    (tmp_path / "a").write_bytes(b"a")
    with pytest.raises(StorageFailed) as raised:
        store.upload(tmp_path / "a", "manifest.parquet")
    assert isinstance(raised.value, WriteFailed)
    message = str(raised.value)
    assert message.startswith("s3://no-such-bucket/job: cannot upload manifest.parquet: ")
    assert "AWS_ENDPOINT_URL" in message
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in message and os.environ["AWS_SECRET_ACCESS_KEY"] not in message


def test_a_missing_bucket_lists_nothing_as_a_new_job_does_and_only_it_is_missing(s3):  # noqa: F811
    missing, new = open_store("s3://no-such-bucket/job", s3.env), open_store(f"s3://{s3.bucket}/job", s3.env)
    assert missing.list_files() == new.list_files() == {}
    assert (missing.bucket, missing.bucket_missing(), new.bucket_missing()) == ("no-such-bucket", True, False)


def test_pulling_a_job_from_a_missing_bucket_is_one_line_naming_the_bucket_and_the_fix(s3, tmp_path):  # noqa: F811
    from batchrun.output.mirror import Mirror

    with pytest.raises(StorageFailed) as raised:
        Mirror(tmp_path / "staging", open_store("s3://no-such-bucket/job", s3.env)).pull()
    assert str(raised.value) == (
        "s3://no-such-bucket/job: cannot read the job: the bucket no-such-bucket does not exist; fix output.dir (or "
        "--output-dir) if it is mistyped, or create the bucket, then run again (it is looked up with the standard "
        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, and AWS_ENDPOINT_URL for an S3-compatible server)")
    assert Mirror(tmp_path / "other", open_store(f"s3://{s3.bucket}/job", s3.env)).pull() == 0
