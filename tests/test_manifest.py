"""The manifest: RequestRecords -> Parquet -> RequestRecords, with no image bytes inside."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchrun.planning.manifest import (
    MANIFEST_SCHEMA,
    ManifestWriter,
    batch_to_records,
    iter_records,
    read_fingerprint,
    records_to_batch,
    remove_stale_temps,
)
from batchrun.records import ImageRef, RequestRecord, TokenEstimate

IMAGE = ImageRef(path="photos/mug.png", sha256="ab" * 32, mime="image/png", bytes=123_456, width=1024, height=768)


def record(seq: int, **changes) -> RequestRecord:
    fields = dict(
        request_id=f"{seq:032x}",
        seq=seq,
        model="gemini-3.1-flash-image",
        body={
            "contents": [{"role": "user", "parts": [
                {"text": f"Mug nº{seq} ☕"},
                {"inlineData": {"mimeType": "image/png", "data": "sha256:" + "ab" * 32}},
            ]}],
            "generationConfig": {"temperature": 0.5, "imageConfig": {"aspectRatio": "4:5"}},
        },
        variables={"sku": "00123", "n": seq, "price": 9.5, "note": None, "flag": True},
        images=[IMAGE],
        output_name=f"mug/{seq}",
        estimate=TokenEstimate(input_text=12, input_image=1120, output_text_max=0, output_image=1120, images_out=1),
    )
    fields.update(changes)
    return RequestRecord(**fields)


def test_records_round_trip(tmp_path):
    records = [record(0), record(1, images=[], output_name=None, estimate=TokenEstimate()), record(2, images=[IMAGE, IMAGE])]
    writer = ManifestWriter(tmp_path / "out" / "manifest.parquet", "fp-1")
    writer.write(records[:2])
    writer.write([])
    writer.write(records[2:])
    writer.commit()
    assert writer.rows == 3
    assert list(iter_records(tmp_path / "out" / "manifest.parquet", batch_rows=2)) == records


def test_schema_and_fingerprint_are_stored(tmp_path):
    path = tmp_path / "manifest.parquet"
    writer = ManifestWriter(path, "abc123")
    writer.write([record(0)])
    writer.commit()
    assert pq.read_schema(path).remove_metadata() == MANIFEST_SCHEMA
    assert read_fingerprint(path) == "abc123"
    assert read_fingerprint(tmp_path / "missing.parquet") is None
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    assert read_fingerprint(tmp_path / "junk.parquet") is None


def test_manifest_holds_references_not_image_bytes(tmp_path):
    path = tmp_path / "manifest.parquet"
    writer = ManifestWriter(path, "fp")
    writer.write([record(i) for i in range(200)])
    writer.commit()
    data = path.read_bytes()
    assert len(data) < 40_000
    row = pq.read_table(path).slice(0, 1).to_pylist()[0]
    assert row["images"] == [
        {"path": "photos/mug.png", "sha256": "ab" * 32, "mime": "image/png", "bytes": 123_456, "width": 1024, "height": 768}
    ]
    assert '"data":"sha256:' in row["body"]


def test_iter_records_selects_by_row_id_in_manifest_order(tmp_path):
    path = tmp_path / "manifest.parquet"
    writer = ManifestWriter(path, "fp")
    writer.write([record(i) for i in range(10)])
    writer.commit()
    wanted = pa.array([f"{seq:032x}" for seq in (7, 2, 9)])
    assert [r.seq for r in iter_records(path, row_ids=wanted, batch_rows=3)] == [2, 7, 9]
    assert list(iter_records(path, row_ids=pa.array([], pa.string()))) == []


def test_abort_leaves_no_file(tmp_path):
    path = tmp_path / "manifest.parquet"
    writer = ManifestWriter(path, "fp")
    writer.write([record(0)])
    assert not path.exists()
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_two_writers_on_one_path_do_not_collide(tmp_path):
    path = tmp_path / "manifest.parquet"
    first, second = ManifestWriter(path, "fp-first"), ManifestWriter(path, "fp-second")
    first.write([record(i) for i in range(3)])
    second.write([record(i) for i in range(2)])

    first.commit()
    assert [r.seq for r in iter_records(path)] == [0, 1, 2]
    second.commit()

    assert [r.seq for r in iter_records(path)] == [0, 1]
    assert read_fingerprint(path) == "fp-second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.parquet"]


def test_an_aborted_writer_removes_only_its_own_temporary_file(tmp_path):
    path = tmp_path / "manifest.parquet"
    kept, aborted = ManifestWriter(path, "fp-kept"), ManifestWriter(path, "fp-aborted")
    kept.write([record(0)])
    aborted.abort()
    kept.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.parquet"]
    assert read_fingerprint(path) == "fp-kept"


def test_temporary_manifests_of_a_killed_plan_are_removed(tmp_path):
    path = tmp_path / "manifest.parquet"
    for name in ("manifest.parquet.tmp", "manifest.parquet.4242-0a1b2c3d.tmp"):
        (tmp_path / name).write_bytes(b"half a manifest")
    (tmp_path / "other.parquet.tmp").write_bytes(b"not ours")
    assert remove_stale_temps(path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.parquet.tmp"]


def test_commit_replaces_an_older_manifest(tmp_path):
    path = tmp_path / "manifest.parquet"
    for count in (3, 1):
        writer = ManifestWriter(path, f"fp-{count}")
        writer.write([record(i) for i in range(count)])
        writer.commit()
    assert [r.seq for r in iter_records(path)] == [0]
    assert read_fingerprint(path) == "fp-1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.parquet"]


def test_batch_conversion_is_lossless():
    records = [record(5), record(6, variables={"nested": {"k": [1, "2"]}})]
    assert list(batch_to_records(records_to_batch(records))) == records


def test_unusual_variable_values_survive(tmp_path):
    path = tmp_path / "manifest.parquet"
    writer = ManifestWriter(path, "fp")
    writer.write([record(0, variables={"big": 2**70, "text": "line\nbreak \"quoted\""})])
    writer.commit()
    (back,) = iter_records(path)
    assert back.variables == {"big": 2**70, "text": "line\nbreak \"quoted\""}


@pytest.mark.parametrize("rows", [1, 5000])
def test_rows_are_counted(tmp_path, rows):
    writer = ManifestWriter(tmp_path / "manifest.parquet", "fp")
    writer.write([record(i) for i in range(rows)])
    writer.commit()
    assert writer.rows == rows == pq.read_metadata(tmp_path / "manifest.parquet").num_rows
