"""Output identity over a written manifest: own row ids for rows that share a request, no name twice."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from batchrun.errors import SpecError
from batchrun.planning.identity import settle_identity, shared_row_id
from batchrun.planning.manifest import ManifestWriter
from batchrun.records import RequestRecord


def write(tmp_path, rows: list[tuple[str, str | None, dict]]) -> str:
    """A manifest of (request_id, output_name, variables) rows, input row = position + 1."""
    path = tmp_path / "manifest.parquet"
    writer = ManifestWriter(path, "fp")
    writer.write([RequestRecord(request_id=rid, seq=i, model="m", body={}, variables=v, output_name=name,
                                input_row=i + 1) for i, (rid, name, v) in enumerate(rows)])
    writer.commit()
    return path


def row_ids(path) -> list[str]:
    return pq.read_table(path, columns=["row_id"])["row_id"].to_pylist()


def test_a_manifest_without_sharing_keeps_request_ids_as_row_ids_and_is_not_rewritten(tmp_path):
    path = write(tmp_path, [("a" * 32, "A", {"sku": "A"}), ("b" * 32, "B", {"sku": "B"})])
    before = path.stat().st_mtime_ns
    settle_identity(path, "spec.yaml", ["sku"], named=True, shared=False)
    assert row_ids(path) == ["a" * 32, "b" * 32]
    assert path.stat().st_mtime_ns == before


def test_rows_sharing_a_request_get_ids_that_do_not_depend_on_their_order(tmp_path):
    rows = [("r" * 32, "S", {"sku": "S"}), ("q" * 32, "Q", {"sku": "Q"}), ("r" * 32, "M", {"sku": "M"})]
    path = write(tmp_path, rows)
    settle_identity(path, "spec.yaml", ["sku"], named=True, shared=True)
    ids = row_ids(path)
    assert ids == [shared_row_id("r" * 32, "S", "", 0), "q" * 32, shared_row_id("r" * 32, "M", "", 0)]
    reordered = write(tmp_path, [rows[2], rows[0]])
    settle_identity(reordered, "spec.yaml", ["sku"], named=True, shared=True)
    assert row_ids(reordered) == [ids[2], ids[0]]


def test_text_rows_sharing_a_request_are_told_apart_by_variables_then_by_occurrence(tmp_path):
    path = write(tmp_path, [("r" * 32, None, {"sku": "A"}), ("r" * 32, None, {"sku": "B"}), ("r" * 32, None, {"sku": "A"})])
    settle_identity(path, "spec.yaml", ["sku"], named=False, shared=True)
    ids = row_ids(path)
    assert len(set(ids)) == 3
    assert ids[0] == shared_row_id("r" * 32, None, '{"sku":"A"}', 0)
    assert ids[2] == shared_row_id("r" * 32, None, '{"sku":"A"}', 1)


def test_two_requests_writing_one_name_are_refused_naming_both_rows(tmp_path):
    path = write(tmp_path, [("a" * 32, "MUG", {"sku": "MUG", "scene": "kitchen", "price": 3}),
                            ("c" * 32, "OTHER", {"sku": "OTHER", "scene": "x", "price": 3}),
                            ("b" * 32, "mug", {"sku": "mug", "scene": "garden", "price": 3})])
    with pytest.raises(SpecError) as caught:
        settle_identity(path, "spec.yaml", ["sku", "scene"], named=True, shared=False, hint=" (it does not use scene)")
    assert str(caught.value) == (
        "spec.yaml: output.image_name: row 1 (sku 'MUG', scene 'kitchen') and row 3 (sku 'mug', scene 'garden') "
        "both write images/MUG and images/mug: two different requests would overwrite one file; add a variable "
        "that tells them apart to output.image_name (it does not use scene)")


def test_two_rows_of_one_request_writing_one_name_are_refused_with_the_variants_hint(tmp_path):
    path = write(tmp_path, [("a" * 32, "MUG", {"sku": "MUG", "n": 1}), ("a" * 32, "MUG", {"sku": "MUG", "n": 2})])
    with pytest.raises(SpecError) as caught:
        settle_identity(path, "spec.yaml", ["sku"], named=True, shared=True)
    assert "they make the same request" in caught.value.message
    assert "use request.variants for several images of one request" in caught.value.message
