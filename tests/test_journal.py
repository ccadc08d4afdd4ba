import json
from pathlib import Path

import pytest

from batchrun.output import journal
from batchrun.output.journal import (
    RESULT_FIELDS,
    JournalWriter,
    read_journal,
    result_values,
)
from batchrun.records import ResultRecord


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def values(request_id: str, status: str = "ok", finished_at: float = 2.0, **extra) -> tuple:
    return result_values(ResultRecord(request_id, status, 1, 1.0, finished_at, **extra))


def writer(tmp_path: Path, *, flush_every: int = 1, clock=None, run_id: str = "run-a") -> JournalWriter:
    w = JournalWriter(tmp_path / "journal", run_id, flush_every=flush_every, fsync_interval_s=5.0,
                      clock=clock or FakeClock())
    w.open_segment()
    return w


def test_rows_and_sent_markers_read_back(tmp_path):
    w = writer(tmp_path)
    w.append_sent("a")
    w.append_sent("b")
    w.append_result(values("a", text="caption ünïcode \u2603", cost_usd=0.25))
    w.close()

    runs = read_journal(tmp_path / "journal")

    assert list(runs) == ["run-a"]
    run = runs["run-a"]
    assert run.results == [values("a", text="caption ünïcode \u2603", cost_usd=0.25)]
    assert run.sent == {"a", "b"}
    assert run.in_flight == {"b"}
    assert run.skipped_lines == 0


def test_lines_reach_the_file_only_in_batches(tmp_path):
    w = writer(tmp_path, flush_every=3)
    w.append_sent("a")
    w.append_result(values("a"))
    assert read_journal(tmp_path / "journal")["run-a"].results == []

    w.append_sent("b")  # the third buffered line hands all three to the OS

    assert read_journal(tmp_path / "journal")["run-a"].results == [values("a")]


def test_flush_hands_a_partial_batch_to_the_os(tmp_path):
    w = writer(tmp_path, flush_every=100)
    w.append_result(values("a"))
    w.flush()
    assert read_journal(tmp_path / "journal")["run-a"].results == [values("a")]


def test_a_torn_last_line_is_skipped(tmp_path):
    w = writer(tmp_path)
    w.append_result(values("a"))
    w.close()
    segment = w.segments[0]
    whole_line = json.dumps(["r", *values("b")])
    with open(segment, "a") as f:
        f.write(whole_line[: len(whole_line) // 2])

    run = read_journal(tmp_path / "journal")["run-a"]

    assert run.results == [values("a")]
    assert run.skipped_lines == 1


@pytest.mark.parametrize("junk", ["12\n", "[]\n", '["x", 1]\n', '["r", "too", "short"]\n'])
def test_lines_of_an_unknown_shape_are_skipped(tmp_path, junk):
    w = writer(tmp_path)
    w.close()
    with open(w.segments[0], "a") as f:
        f.write(junk)
    assert read_journal(tmp_path / "journal")["run-a"].skipped_lines == 1


def test_a_segment_without_header_is_ignored(tmp_path):
    (tmp_path / "journal").mkdir()
    (tmp_path / "journal" / "broken-0000.jsonl").write_text('{"run_i')
    assert read_journal(tmp_path / "journal") == {}


def test_a_missing_folder_reads_as_empty(tmp_path):
    assert read_journal(tmp_path / "nothing") == {}


def test_a_new_segment_repeats_in_flight_markers(tmp_path):
    w = writer(tmp_path)
    w.append_sent("a")
    w.append_sent("b")
    w.append_result(values("a"))

    previous = w.open_segment()
    journal.remove_segments(previous)
    w.close()

    run = read_journal(tmp_path / "journal")["run-a"]
    assert [p.name for p in previous] == ["run-a-0000.jsonl"]
    assert [p.name for p in run.segments] == ["run-a-0001.jsonl"]
    assert run.results == []
    assert run.in_flight == {"b"}


def test_fsync_waits_for_the_interval(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(journal.os, "fsync", lambda fd: synced.append(fd))
    clock = FakeClock()
    w = writer(tmp_path, clock=clock)

    w.append_sent("a")
    assert synced == []
    clock.now += 5.0
    w.append_sent("b")
    assert len(synced) == 1
    w.append_sent("c")
    assert len(synced) == 1
    w.close()


def test_rows_written_under_another_field_order_are_mapped(tmp_path):
    (tmp_path / "journal").mkdir()
    written = ["finished_at", "status", "request_id", "attempts", "started_at", "retired_field"]
    header = {"batchrun_journal": 1, "run_id": "old", "fields": written}
    line = ["r", 9.0, "ok", "a", 2, 8.0, "x"]
    (tmp_path / "journal" / "old-0000.jsonl").write_text(json.dumps(header) + "\n" + json.dumps(line) + "\n")

    [row] = read_journal(tmp_path / "journal")["old"].results

    record = dict(zip(RESULT_FIELDS, row))
    assert (record["request_id"], record["status"], record["attempts"]) == ("a", "ok", 2)
    assert (record["started_at"], record["finished_at"], record["text"]) == (8.0, 9.0, None)


def test_runs_are_kept_apart(tmp_path):
    first = writer(tmp_path, run_id="run-a")
    first.append_result(values("a"))
    first.close()
    second = writer(tmp_path, run_id="run-b")
    second.append_sent("b")
    second.close()

    runs = read_journal(tmp_path / "journal")

    assert runs["run-a"].results == [values("a")]
    assert runs["run-b"].in_flight == {"b"}


def test_a_write_torn_by_a_full_disk_is_completed_by_the_next_flush_not_glued_to_a_new_line(tmp_path, monkeypatch):
    w = writer(tmp_path)
    real_write = journal.os.write
    calls = {"n": 0}

    def torn_write(fd, data):  # as the kernel does: a short write of what fits, then ENOSPC
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(journal.os, "write", torn_write)
    with pytest.raises(OSError):
        w.append_result(values("a", text="x" * 200))
    w.append_result(values("b"))
    w.close()

    run = read_journal(tmp_path / "journal")["run-a"]
    assert [row[0] for row in run.results] == ["a", "b"]
    assert run.skipped_lines == 0
