"""Reconcile: a chunk caught between `creating` and `created` adopts its batch, or is safe to create again."""

from __future__ import annotations

from pathlib import Path

import anyio
from batch_fake import BASE, FakeBatchApi

from batchrun.batching.batches import BatchInfo, BatchState
from batchrun.batching.chunks import Chunk
from batchrun.batching.exchange import BatchApi
from batchrun.batching.ledger import ChunkState, Ledger, Phase
from batchrun.batching.reconcile import match_batches, reconcile


def state(chunk_id: str) -> ChunkState:
    return ChunkState(chunk_id, f"batchrun-job-{chunk_id}", "m", f"{chunk_id}.ids", 1, 10, Phase.CREATING)


def listed(name: str, display: str) -> BatchInfo:
    return BatchInfo(name, display, BatchState.RUNNING)


def test_a_listed_batch_under_the_display_name_is_adopted():
    result = match_batches([state("c1")], [listed("batches/9", "batchrun-job-c1")], set())
    assert {cid: b.name for cid, b in result.adopted.items()} == {"c1": "batches/9"}
    assert result.recreate == []


def test_no_batch_under_the_display_name_means_creating_again_is_safe():
    result = match_batches([state("c1")], [listed("batches/9", "batchrun-job-other")], set())
    assert (result.adopted, result.recreate) == ({}, ["c1"])


def test_a_batch_the_ledger_already_knows_is_never_adopted_again():
    result = match_batches([state("c1")], [listed("batches/old", "batchrun-job-c1")], {"batches/old"})
    assert result.recreate == ["c1"]


def test_two_batches_under_one_display_name_adopt_the_first_and_report_the_other():
    result = match_batches([state("c1")], [listed("batches/1", "batchrun-job-c1"), listed("batches/2", "batchrun-job-c1")],
                           set())
    assert (result.adopted["c1"].name, result.duplicates) == ("batches/1", {"c1": ["batches/2"]})


def test_reconcile_records_the_adopted_batch_as_created_and_lists_once(tmp_path):
    fake = FakeBatchApi(page_size_cap=1)
    fake.files["files/f1"] = b"{}\n"
    book = Ledger(tmp_path)
    for cid in ("c1", "c2", "c3"):
        book.planned(Chunk(cid, f"batchrun-job-{cid}", "m", Path(f"{cid}.jsonl"), Path(f"{cid}.ids"), 1, 3))
        book.uploaded(cid, "files/f1")
        book.creating(cid)

    async def main():
        async with fake.client() as client:
            api = BatchApi(client, BASE, "k")
            for display in ("unrelated", "batchrun-job-c2"):
                await api.send("create", "POST", api.url("/v1beta/models/m:batchGenerateContent"),
                               json_body={"batch": {"display_name": display, "input_config": {"file_name": "files/f1"}}})
            return await reconcile(api, book.read(), book)

    result = anyio.run(main)
    assert (list(result.adopted), result.recreate) == (["c2"], ["c1", "c3"])
    view = book.read()
    assert (view.chunks["c2"].phase, view.chunks["c2"].batch_name) == (Phase.CREATED, "batches/b2")
    assert view.chunks["c1"].phase is Phase.CREATING
    assert [r.url.params.get("pageToken") for r in fake.requests if r.url.path == "/v1beta/batches"] == [None, "1"]


def test_nothing_caught_mid_create_lists_nothing(tmp_path):
    fake = FakeBatchApi()

    async def main():
        async with fake.client() as client:
            return await reconcile(BatchApi(client, BASE, "k"), Ledger(tmp_path).read(), Ledger(tmp_path))

    assert anyio.run(main).recreate == []
    assert fake.requests == []
