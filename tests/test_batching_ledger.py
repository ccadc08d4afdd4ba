"""The ledger: every phase durable and folded into each chunk's latest state; a torn last line ignored."""

from __future__ import annotations

import json
from pathlib import Path

from batchrun.batching.chunks import Chunk
from batchrun.batching.ledger import Ledger, Phase, read_ledger


def chunk(chunk_id: str = "c1") -> Chunk:
    return Chunk(chunk_id, f"batchrun-job-{chunk_id}", "m", Path(f"{chunk_id}.jsonl"), Path(f"{chunk_id}.ids"), 3, 300)


def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path, now=lambda: 1000.0)


def test_an_empty_folder_is_an_empty_ledger(tmp_path):
    assert ledger(tmp_path).read().chunks == {}


def test_each_call_appends_one_line_in_order(tmp_path):
    book = ledger(tmp_path)
    book.planned(chunk())
    book.uploading("c1")
    book.uploaded("c1", "files/f1")
    book.creating("c1")
    lines = [json.loads(line) for line in book.path.read_text().splitlines()]
    assert [line["event"] for line in lines] == ["planned", "uploading", "uploaded", "creating"]
    assert lines[0] == {"event": "planned", "chunk_id": "c1", "at": 1000.0, "display_name": "batchrun-job-c1",
                        "model": "m", "ids_file": "c1.ids", "count": 3, "bytes": 300}
    assert book.path == tmp_path / "batches" / "ledger.jsonl"


def test_reading_gives_each_chunks_latest_state(tmp_path):
    book = ledger(tmp_path)
    book.planned(chunk("c1"))
    book.planned(chunk("c2"))
    book.uploaded("c1", "files/f1")
    book.creating("c1")
    book.created("c1", "batches/b1")
    book.state("c1", "BATCH_STATE_SUCCEEDED", {"requestCount": "3"}, "files/r1")
    book.collected("c1", 3, 0, 0)
    view = book.read()
    first, second = view.chunks["c1"], view.chunks["c2"]
    assert (first.phase, first.file_name, first.batch_name, first.batch_state, first.results_file) == (
        Phase.COLLECTED, "files/f1", "batches/b1", "BATCH_STATE_SUCCEEDED", "files/r1")
    assert first.summary == {"lines": 3, "missing": 0, "unknown": 0}
    assert second.phase is Phase.PLANNED
    assert view.in_phase(Phase.PLANNED) == [second]


def test_creating_without_created_reads_as_creating(tmp_path):
    book = ledger(tmp_path)
    book.planned(chunk())
    book.uploaded("c1", "files/f1")
    book.creating("c1")
    assert book.read().chunks["c1"].phase is Phase.CREATING


def test_a_torn_last_line_is_ignored_and_cut_before_the_next_append(tmp_path):
    book = ledger(tmp_path)
    book.planned(chunk())
    book.creating("c1")
    whole = book.path.read_bytes()
    book.path.write_bytes(whole + b'{"event":"created","chunk_id":"c1","batch_na')
    assert read_ledger(book.path).chunks["c1"].phase is Phase.CREATING
    again = ledger(tmp_path)
    again.created("c1", "batches/b9")
    assert book.path.read_bytes().startswith(whole)
    assert read_ledger(book.path).chunks["c1"].batch_name == "batches/b9"


def test_planned_again_after_a_return_starts_afresh_but_keeps_the_old_batch_known(tmp_path):
    book = ledger(tmp_path)
    book.planned(chunk())
    book.created("c1", "batches/b1")
    book.returned_to_pending("c1", "batch ended EXPIRED")
    assert book.read().chunks["c1"].reason == "batch ended EXPIRED"
    book.planned(chunk())
    view = book.read()
    assert (view.chunks["c1"].phase, view.chunks["c1"].batch_name) == (Phase.PLANNED, None)
    assert view.known_batches == {"batches/b1"}


def test_a_line_for_an_unplanned_chunk_is_ignored(tmp_path):
    book = ledger(tmp_path)
    book.created("ghost", "batches/b1")
    assert book.read().chunks == {}
