"""What a run has to do: pending rows, rows that ride along with a shared request, rows filled from a saved reply."""

from __future__ import annotations

import pyarrow as pa

from batchrun.planning.manifest import ManifestWriter
from batchrun.records import RequestRecord, RowTarget
from batchrun.running.pending import iter_work, plan_work

ROWS = [  # row_id, request_id, output_name
    ("r1", "A", "one"), ("r2", "B", "two"), ("r3", "A", "three"), ("r4", "C", "four"), ("r5", "A", "five"),
]


def manifest(tmp_path):
    path = tmp_path / "manifest.parquet"
    writer = ManifestWriter(path, "fp")
    writer.write([RequestRecord(request_id=rid, row_id=row, seq=i, model="m", body={}, variables={}, output_name=name)
                  for i, (row, rid, name) in enumerate(ROWS)])
    writer.commit()
    return path


def latest(*rows: tuple[str, str, str]) -> pa.Table:
    ids, requests, statuses = zip(*rows) if rows else ((), (), ())
    return pa.table({"row_id": pa.array(ids, pa.string()), "request_id": pa.array(requests, pa.string()),
                     "status": pa.array(statuses, pa.string()), "finished_at": pa.array([0.0] * len(ids))})


def test_a_new_job_sends_each_request_once_with_the_rows_that_share_it(tmp_path):
    work = plan_work(manifest(tmp_path), latest())
    assert work.send.to_pylist() == ["r1", "r2", "r4"]
    assert {k: set(v) for k, v in work.shares.items()} == {"r1": {RowTarget("r3", "three"), RowTarget("r5", "five")}}
    assert (work.rows, work.reusable_rows) == (5, 0)
    records = list(iter_work(tmp_path / "manifest.parquet", work))
    assert [(r.row_id, len(r.shares)) for r in records] == [("r1", 2), ("r2", 0), ("r4", 0)]


def test_rows_whose_request_has_a_final_reply_take_a_copy_and_nothing_is_sent_for_them(tmp_path):
    work = plan_work(manifest(tmp_path), latest(("r3", "A", "ok"), ("r2", "B", "failed")))
    assert work.send.to_pylist() == ["r2", "r4"]
    assert work.shares == {}
    assert sorted(work.reusable.to_pylist(), key=lambda r: r["row_id"]) == [
        {"row_id": "r1", "output_name": "one", "source_row_id": "r3"},
        {"row_id": "r5", "output_name": "five", "source_row_id": "r3"},
    ]


def test_retry_makes_invalid_rows_pending_and_never_copies_their_reply(tmp_path):
    done = latest(("r1", "A", "invalid"), ("r3", "A", "invalid"), ("r5", "A", "invalid"), ("r2", "B", "blocked"))
    assert plan_work(manifest(tmp_path), done).send.to_pylist() == ["r4"]
    work = plan_work(manifest(tmp_path), done, retry=frozenset({"invalid"}))
    assert work.send.to_pylist() == ["r1", "r4"] and work.reusable_rows == 0
    assert {k: set(v) for k, v in work.shares.items()} == {"r1": {RowTarget("r3", "three"), RowTarget("r5", "five")}}


def test_no_retry_failed_keeps_failed_rows_out_and_counts_them(tmp_path):
    work = plan_work(manifest(tmp_path), latest(("r2", "B", "failed")), retry_failed=False)
    assert "r2" not in work.send.to_pylist() and work.kept_failed == 1
