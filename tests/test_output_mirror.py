"""A staging folder mirrored to a bucket: what goes up, in which order, and what comes down (moto on 127.0.0.1)."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from s3_server import s3, s3_endpoint  # noqa: F401  (fixtures)

from batchrun.errors import UsageError
from batchrun.output.mirror import (
    SYNC_FILE,
    Mirror,
    UploadSchedule,
    is_synced_file,
    push_order,
    shown_output,
    stage_location,
    staging_folder,
    upload_every,
    upload_groups,
)
from batchrun.output.sink import Sink, list_parts, read_parts
from batchrun.output.store import RemoteStamp, open_store
from batchrun.records import ResultRecord


def location(s3) -> str:  # noqa: F811
    return f"s3://{s3.bucket}/job"


class RecordingStore:
    """A real store that remembers the order of its uploads."""

    def __init__(self, store) -> None:
        self._store = store
        self.location = store.location
        self.uploaded: list[str] = []

    def upload(self, local, relative):
        self.uploaded.append(relative)
        self._store.upload(local, relative)

    def __getattr__(self, name):
        return getattr(self._store, name)


def folder_with(tmp_path, files: dict[str, bytes]):
    folder = tmp_path / "staging"
    for relative, data in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(data)
    return folder


A_RUN = {"manifest.parquet": b"m", "images/sku1/kitchen.png": b"png1", "results/part-000001.parquet": b"p1",
         "runs/r1.json": b"{}", "journal/r1-000001.jsonl": b"j", ".lock": b"123", "results/part-000002.parquet.tmp": b"t"}


def test_the_lock_the_sync_record_and_temp_files_stay_local():
    assert not is_synced_file(".batchrun-store.json")
    assert not is_synced_file(".lock")
    assert not is_synced_file("results/part-000002.parquet.tmp")
    assert is_synced_file("images/a/b.png") and is_synced_file("journal/r1-000001.jsonl")


def test_images_and_manifest_go_up_before_parts_then_run_records_then_the_journal():
    order = push_order(["journal/r1-000001.jsonl", "runs/r1.json", "results/part-000001.parquet", "images/z.png",
                        "manifest.parquet"])
    assert order == ["images/z.png", "manifest.parquet", "results/part-000001.parquet", "runs/r1.json",
                     "journal/r1-000001.jsonl"]


def test_uploads_go_in_groups_each_whole_before_the_next():
    assert upload_groups(["runs/r1.json", "images/b.png", "results/part-000001.parquet", "images/a.png",
                          "journal/r1-000001.jsonl"]) == [["images/a.png", "images/b.png"],
                                                         ["results/part-000001.parquet"], ["runs/r1.json"],
                                                         ["journal/r1-000001.jsonl"]]


def test_the_staging_folder_is_under_the_cache_and_one_per_location(tmp_path):
    env = {"BATCHRUN_CACHE_DIR": str(tmp_path)}
    first = staging_folder("s3://bucket/a", env)
    assert first.parent == tmp_path / "staging"
    assert first == staging_folder("s3://bucket/a/", env) != staging_folder("s3://bucket/b", env)


def test_upload_interval_comes_from_the_environment_or_is_a_minute():
    assert upload_every({}) == 60.0
    assert upload_every({"BATCHRUN_UPLOAD_EVERY_S": "0.5"}) == 0.5
    with pytest.raises(UsageError, match="BATCHRUN_UPLOAD_EVERY_S='soon' is not a number of seconds"):
        upload_every({"BATCHRUN_UPLOAD_EVERY_S": "soon"})


def test_an_upload_is_due_every_interval_of_the_given_clock():
    now = [100.0]
    schedule = UploadSchedule(mirror=None, clock=lambda: now[0], every_s=10)
    now[0] = 109.9
    assert not schedule.due()
    now[0] = 110.0
    assert schedule.due()
    assert not schedule.due()
    now[0] = 120.0
    assert schedule.due()


def test_a_push_uploads_every_synced_file_in_order_then_nothing_unchanged(s3, tmp_path):  # noqa: F811
    store = RecordingStore(open_store(location(s3), s3.env))
    mirror = Mirror(folder_with(tmp_path, A_RUN), store)
    assert mirror.push() == 5
    assert set(store.uploaded[:2]) == {"images/sku1/kitchen.png", "manifest.parquet"}  # side by side
    assert store.uploaded[2:] == ["results/part-000001.parquet", "runs/r1.json"]
    assert set(s3.files("job")) == {*store.uploaded, "journal/r1-000001.jsonl"}
    assert mirror.push() == 0


def test_a_part_or_journal_segment_removed_locally_is_removed_from_the_bucket(s3, tmp_path):  # noqa: F811
    folder = folder_with(tmp_path, A_RUN)
    mirror = Mirror(folder, open_store(location(s3), s3.env))
    mirror.push()
    (folder / "results/part-000001.parquet").unlink()
    (folder / "journal/r1-000001.jsonl").unlink()
    mirror.push()
    assert set(s3.files("job")) == {"images/sku1/kitchen.png", "manifest.parquet", "runs/r1.json"}


def test_a_journal_segment_still_growing_goes_up_again_at_the_next_push(s3, tmp_path):  # noqa: F811
    folder = folder_with(tmp_path, A_RUN)
    mirror = Mirror(folder, open_store(location(s3), s3.env))
    mirror.push()
    with open(folder / "journal/r1-000001.jsonl", "ab") as segment:
        segment.write(b"more")
    assert mirror.push() == 1
    assert s3.files("job")["journal/r1-000001.jsonl"] == 5


def test_a_fresh_staging_folder_pulls_everything_the_bucket_holds(s3, tmp_path):  # noqa: F811
    Mirror(folder_with(tmp_path, A_RUN), open_store(location(s3), s3.env)).push()
    other = tmp_path / "other-machine"
    assert Mirror(other, open_store(location(s3), s3.env)).pull() == 5
    assert (other / "images/sku1/kitchen.png").read_bytes() == b"png1"
    assert (other / "journal/r1-000001.jsonl").read_bytes() == b"j"
    assert not (other / ".lock").exists()


def test_a_pull_keeps_a_file_changed_here_since_the_last_sync(s3, tmp_path):  # noqa: F811
    folder = folder_with(tmp_path, A_RUN)
    mirror = Mirror(folder, open_store(location(s3), s3.env))
    mirror.push()
    (folder / "runs/r1.json").write_bytes(b'{"not": "uploaded yet"}')
    assert mirror.pull() == 0
    assert (folder / "runs/r1.json").read_bytes() == b'{"not": "uploaded yet"}'


def test_a_pull_replaces_an_unchanged_file_the_bucket_changed(s3, tmp_path):  # noqa: F811
    folder = folder_with(tmp_path, A_RUN)
    Mirror(folder, open_store(location(s3), s3.env)).push()
    other = folder_with(tmp_path / "b", {"runs/r1.json": b'{"rewritten": true}'})
    Mirror(other, open_store(location(s3), s3.env)).push()
    assert Mirror(folder, open_store(location(s3), s3.env)).pull() == 1
    assert (folder / "runs/r1.json").read_bytes() == b'{"rewritten": true}'


def test_a_pull_removes_what_the_bucket_no_longer_holds_unless_changed_here(s3, tmp_path):  # noqa: F811
    folder = folder_with(tmp_path, A_RUN)
    Mirror(folder, open_store(location(s3), s3.env)).push()
    other = tmp_path / "other-machine"
    Mirror(other, open_store(location(s3), s3.env)).pull()
    store = open_store(location(s3), s3.env)
    store.delete("journal/r1-000001.jsonl")
    store.delete("runs/r1.json")
    (other / "runs/r1.json").write_bytes(b'{"changed": "here"}')
    Mirror(other, open_store(location(s3), s3.env)).pull()
    assert not (other / "journal/r1-000001.jsonl").exists()
    assert (other / "runs/r1.json").read_bytes() == b'{"changed": "here"}'


def result(request_id: str, finished_at: float) -> ResultRecord:
    return ResultRecord(request_id=request_id, status="ok", attempts=1, started_at=finished_at - 1,
                        finished_at=finished_at, text="hi")


def test_the_sink_compacts_and_pushes_once_the_interval_has_passed(s3, tmp_path):  # noqa: F811
    now = [1000.0]
    mirror = Mirror(tmp_path / "staging", open_store(location(s3), s3.env), upload_every_s=30)
    sink = Sink(mirror.folder, run_id="r1", clock=lambda: now[0], mirror=mirror)
    sink.open()
    sink.write_result(result("a", 1000.0))
    mirror.wait()
    assert not [name for name in s3.files("job") if name.startswith("results/")]
    now[0] = 1030.0
    sink.write_result(result("b", 1030.0))
    mirror.wait()
    parts = [name for name in s3.files("job") if name.startswith("results/")]
    assert parts == ["results/part-000001.parquet"]
    assert sorted(row["request_id"] for row in s3.result_rows("job")) == ["a", "b"]
    sink.close()
    index = read_parts(list_parts(mirror.folder / "results"))
    assert isinstance(index, pa.Table) and len(index) == 2


def test_a_spec_whose_output_override_is_a_bucket_gets_its_staging_folder(s3, tmp_path, monkeypatch):  # noqa: F811
    from pathlib import Path

    from batchrun.planning.spec import load_spec

    monkeypatch.setenv("BATCHRUN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("BATCHRUN_OUTPUT_DIR", f"s3://{s3.bucket}/nightly")
    demo = Path(__file__).resolve().parents[1] / "jobs" / "demo.yaml"
    assert load_spec(demo).output_dir == staging_folder(f"s3://{s3.bucket}/nightly/demo", {"BATCHRUN_CACHE_DIR":
                                                                                            str(tmp_path / "cache")})
    assert load_spec(demo, f"s3://{s3.bucket}/other").output_dir.parent == tmp_path / "cache" / "staging"


def test_a_path_in_a_staging_folder_is_shown_as_its_place_in_the_bucket(s3, tmp_path):  # noqa: F811
    folder = stage_location(location(s3), {**s3.env, "BATCHRUN_CACHE_DIR": str(tmp_path / "cache")})
    assert shown_output(folder) == location(s3)
    assert shown_output(folder / "report" / "index.html") == f"{location(s3)}/report/index.html"
    assert shown_output(tmp_path / "elsewhere.parquet") == str(tmp_path / "elsewhere.parquet")


class InMemoryStore:
    """A store in a dict whose objects' last-modified times are whole seconds of a clock the test moves."""

    location = "s3://memory/job"

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, int]] = {}
        self.now_s = 1_700_000_000
        self.downloads: list[str] = []

    def list_stamps(self) -> dict[str, RemoteStamp]:
        return {rel: RemoteStamp(len(data), at * 10**9) for rel, (data, at) in self.objects.items()}

    def upload(self, local, relative) -> None:
        self.upload_bytes(local.read_bytes(), relative)

    def upload_bytes(self, data: bytes, relative: str) -> None:
        self.objects[relative] = (data, self.now_s)

    def download(self, relative, local) -> None:
        self.downloads.append(relative)
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(self.objects[relative][0])

    def delete(self, relative: str) -> None:
        self.objects.pop(relative, None)


def test_a_pull_replaces_a_file_the_bucket_replaced_with_one_of_the_same_size(tmp_path):
    store = InMemoryStore()
    folder = folder_with(tmp_path, {"runs/r1.json": b'{"ok": 1}'})
    Mirror(folder, store).push()
    store.now_s += 5  # another machine rewrites it later, to the same size
    store.upload_bytes(b'{"ok": 2}', "runs/r1.json")
    assert Mirror(folder, store).pull() == 1
    assert (folder / "runs/r1.json").read_bytes() == b'{"ok": 2}'


def test_a_pull_downloads_nothing_the_bucket_holds_unchanged(tmp_path):
    store = InMemoryStore()
    folder = folder_with(tmp_path, A_RUN)
    Mirror(folder, store).push()
    store.now_s += 5
    assert Mirror(folder, store).pull() == 0
    other = tmp_path / "other-machine"
    assert Mirror(other, store).pull() == 5
    store.now_s += 5
    assert Mirror(other, store).pull() == 0
    assert len(store.downloads) == 5


def test_a_sync_record_without_the_buckets_times_falls_back_to_sizes_then_records_them(tmp_path):
    store = InMemoryStore()
    folder = folder_with(tmp_path, {"runs/r1.json": b'{"ok": 1}'})
    Mirror(folder, store).push()
    record = json.loads((folder / SYNC_FILE).read_text())
    (folder / SYNC_FILE).write_text(json.dumps({"location": record["location"], "synced": record["synced"]}))
    assert Mirror(folder, store).pull() == 0  # batchrun 0.6.0's record: same size, kept
    store.now_s += 5
    store.upload_bytes(b'{"ok": 2}', "runs/r1.json")
    assert Mirror(folder, store).pull() == 1
