import dataclasses
import hashlib
import io
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from PIL import Image

from batchrun.errors import UsageError
from batchrun.output import lock as lock_module
from batchrun.output.journal import RESULT_FIELDS
from batchrun.output.lock import folder_lock
from batchrun.output.sink import RESULT_SCHEMA, ImageFile, Recovery, Sink, list_parts, pending_ids, read_parts
from batchrun.records import ResultRecord

DEAD_PID = 4_194_304 + 17  # above Linux's largest pid_max: no process can have it


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def result(request_id: str, status: str = "ok", finished_at: float = 1_700_000_100.25, **extra) -> ResultRecord:
    return ResultRecord(request_id, status, 1, finished_at - 1.5, finished_at, **extra)


def open_sink(out: Path, run_id: str = "run-1", **options) -> Sink:
    sink = Sink(out, run_id=run_id, clock=FakeClock(), **options)
    sink.open()
    return sink


def kill(sink: Sink, out: Path) -> None:
    """What kill -9 leaves: lines handed to the OS stay, the buffer and the lock's owner vanish."""
    os.close(sink._journal._fd)
    lock_module.drop_lock_as_if_killed(out / ".lock")


def result_rows(out: Path) -> list[dict]:
    table = ds.dataset(str(out / "results"), format="parquet").to_table()
    return sorted(table.to_pylist(), key=lambda row: row["request_id"])


def statuses(out: Path) -> dict[str, str]:
    return {row["request_id"]: row["status"] for row in result_rows(out)}


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------- schema and round trip


def test_schema_has_every_result_field_with_its_arrow_type():
    assert RESULT_SCHEMA.names == list(RESULT_FIELDS)
    assert RESULT_SCHEMA.field("finished_at").type == pa.timestamp("us", tz="UTC")
    assert RESULT_SCHEMA.field("attempts").type == pa.int32()
    assert RESULT_SCHEMA.field("total_tokens").type == pa.int64()
    assert RESULT_SCHEMA.field("cost_usd").type == pa.float64()
    assert RESULT_SCHEMA.field("text").type == pa.string()


def test_results_round_trip_through_a_part(tmp_path):
    out = tmp_path / "out"
    sink = open_sink(out)
    sink.write_result(result("a", text="hello", prompt_tokens=10, total_tokens=30, cost_usd=0.5,
                             http_status=200, latency_ms=1500, model="gemini-2.5-flash"))
    sink.write_result(result("b", "failed", error_kind="http_503", error_message="unavailable"))
    sink.close()

    [a, b] = result_rows(out)
    assert a["finished_at"] == datetime(2023, 11, 14, 22, 15, 0, 250000, tzinfo=UTC)
    assert (a["text"], a["prompt_tokens"], a["cost_usd"], a["run_id"]) == ("hello", 10, 0.5, "run-1")
    assert (b["status"], b["error_kind"], b["text"]) == ("failed", "http_503", None)
    assert not list((out / "journal").glob("*.jsonl"))
    assert not (out / ".lock").exists()


def test_every_part_has_the_same_schema(tmp_path):
    out = tmp_path / "out"
    sink = open_sink(out, part_rows=2)
    for n in range(5):
        sink.write_result(result(f"id{n}", text=None if n % 2 else "x"))
    sink.close()

    parts = sorted((out / "results").glob("part-*.parquet"))
    assert [p.name for p in parts] == ["part-000001.parquet", "part-000002.parquet", "part-000003.parquet"]
    assert all(pq.read_schema(p) == RESULT_SCHEMA for p in parts)


def test_a_compacted_journal_segment_is_removed(tmp_path):
    out = tmp_path / "out"
    sink = open_sink(out, part_rows=2)
    sink.write_result(result("a"))
    sink.write_result(result("b"))

    segments = [p.name for p in (out / "journal").glob("*.jsonl")]
    assert segments == ["run-1-0001.jsonl"]
    assert statuses(out) == {"a": "ok", "b": "ok"}
    sink.close()


def test_a_lone_surrogate_in_text_does_not_stop_compaction(tmp_path):
    out = tmp_path / "out"
    sink = open_sink(out)
    sink.write_result(result("a", text="bad \ud800 text"))
    sink.close()
    assert result_rows(out)[0]["text"] == "bad ? text"


# ---------------------------------------------------------------- crash and recovery


def test_a_killed_run_loses_nothing_handed_to_the_os(tmp_path):
    out = tmp_path / "out"
    first = open_sink(out, flush_every=1000, part_rows=3)
    for n in range(4):  # three reach a part, the fourth stays in the journal
        first.record_sent(f"id{n}")
        first.write_result(result(f"id{n}"))
    first.record_sent("id4")
    first.record_sent("id5")
    first.flush()
    first.record_sent("id6")  # buffered only: lost with the process
    kill(first, out)

    second = Sink(out, run_id="run-2", clock=FakeClock())
    recovery = second.open()

    assert recovery == Recovery(recovered_rows=1, in_flight_at_crash=2, crashed_run_id="run-1")
    assert statuses(out) == {f"id{n}": "ok" for n in range(4)}
    assert sorted(second.final_ids().to_pylist()) == ["id0", "id1", "id2", "id3"]
    crash = json.loads((out / "runs" / "run-1.json").read_text())
    assert (crash["crashed"], crash["in_flight_at_crash"], crash["recovered_by"]) == (True, 2, "run-2")
    second.close()
    summary = json.loads((out / "runs" / "run-2.json").read_text())
    assert summary["recovered"] == {"recovered_rows": 1, "in_flight_at_crash": 2, "crashed_run_id": "run-1"}


def test_recovery_ignores_a_torn_last_line(tmp_path):
    out = tmp_path / "out"
    first = open_sink(out)
    first.write_result(result("a"))
    first.flush()
    [segment] = (out / "journal").glob("*.jsonl")
    with open(segment, "a") as f:
        f.write('["r","b","ok",1,17000')
    kill(first, out)

    recovery = open_sink(out, run_id="run-2")._recovery

    assert recovery.recovered_rows == 1
    assert statuses(out) == {"a": "ok"}


def test_rows_both_in_a_part_and_in_the_journal_are_kept_once(tmp_path):
    out = tmp_path / "out"
    first = open_sink(out)
    first.write_result(result("a"))
    first.write_result(result("b"))
    first.flush()
    [segment] = (out / "journal").glob("*.jsonl")
    journal_copy = segment.read_bytes()
    first.close()
    # a crash after a part was renamed into place, before its segment was deleted
    (out / "journal").mkdir(exist_ok=True)
    segment.write_bytes(journal_copy)

    recovery = open_sink(out, run_id="run-2")._recovery

    assert recovery.recovered_rows == 0
    assert [row["request_id"] for row in result_rows(out)] == ["a", "b"]


def test_a_second_crash_before_any_write_recovers_the_same_rows_once(tmp_path):
    out = tmp_path / "out"
    first = open_sink(out)
    first.write_result(result("a"))
    first.record_sent("b")
    first.flush()
    kill(first, out)
    second = open_sink(out, run_id="run-2")
    kill(second, out)

    third = open_sink(out, run_id="run-3")

    assert third._recovery == Recovery(0, 0, "run-2")
    assert [row["request_id"] for row in result_rows(out)] == ["a"]
    third.close()


def test_leftover_temp_files_are_removed(tmp_path):
    out = tmp_path / "out"
    first = open_sink(out)
    first.write_result(result("a"))
    first.flush()
    kill(first, out)
    (out / "results" / "part-000009.parquet.tmp").write_bytes(b"half a part")
    (out / "images").mkdir()
    (out / "images" / ".x.png.0123.tmp").write_bytes(b"half an image")

    open_sink(out, run_id="run-2").close()

    assert [p.name for p in (out / "results").iterdir()] == ["part-000001.parquet"]
    assert list((out / "images").iterdir()) == []


# ---------------------------------------------------------------- images


def test_the_image_is_on_disk_before_its_row_and_matches_it(tmp_path):
    out = tmp_path / "out"
    sink = open_sink(out)
    data = png(40, 30)

    image = sink.write_image(data, "image/png", "mug-01/kitchen-1-1", "req-a")
    sink.write_result(result("a", image_path=image.path, image_sha256=image.sha256, image_mime=image.mime,
                             image_width=image.width, image_height=image.height, image_bytes=image.bytes))
    sink.close()

    assert image == ImageFile("images/mug-01/kitchen-1-1.png", hashlib.sha256(data).hexdigest(),
                              "image/png", len(data), 40, 30)
    [row] = result_rows(out)
    assert hashlib.sha256((out / row["image_path"]).read_bytes()).hexdigest() == row["image_sha256"]
    assert [p.name for p in (out / "images" / "mug-01").iterdir()] == ["kitchen-1-1.png"]


def test_images_written_from_many_threads_each_match_their_row(tmp_path):
    out = tmp_path / "out"
    sink = open_sink(out)
    payloads = {n: png(3 + n, 2) for n in range(40)}
    with ThreadPoolExecutor(max_workers=8) as pool:
        images = list(pool.map(lambda n: sink.write_image(payloads[n], "image/png", f"sku-{n % 3}/v{n}", f"r{n}"),
                               range(40)))
    for n, image in enumerate(images):
        sink.write_result(result(f"r{n}", image_path=image.path, image_sha256=image.sha256, image_width=image.width))
    sink.close()

    rows = result_rows(out)
    assert len(rows) == 40
    for row in rows:
        data = (out / row["image_path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["image_sha256"]
        assert data == payloads[int(row["request_id"][1:])]


@pytest.mark.parametrize(("mime", "fmt", "extension"), [("image/jpeg", "JPEG", "jpg"), ("image/webp", "WEBP", "webp"),
                                                        ("application/octet-stream", "PNG", "png")])
def test_the_extension_follows_the_mime_type_or_the_header(tmp_path, mime, fmt, extension):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 4)).save(buffer, format=fmt)
    image = Sink(tmp_path, run_id="r").write_image(buffer.getvalue(), mime, None, "req-a")
    assert (image.path, image.width, image.height) == (f"images/req-a.{extension}", 8, 4)


def test_an_unreadable_image_is_kept_without_dimensions(tmp_path):
    image = Sink(tmp_path, run_id="r").write_image(b"not an image", "image/png", "x", "req-a")
    assert (image.path, image.width, image.height, image.bytes) == ("images/x.png", None, None, 12)


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "a/../../b"])
def test_image_names_that_leave_the_folder_are_refused(tmp_path, name):
    with pytest.raises(UsageError, match="leaves the images folder"):
        Sink(tmp_path, run_id="r").write_image(png(2, 2), "image/png", name, "req-a")


# ---------------------------------------------------------------- superseding failed rows


def test_a_failed_request_sent_again_leaves_one_row(tmp_path):
    out = tmp_path / "out"
    first = open_sink(out)
    first.write_result(result("a", "failed", finished_at=1_700_000_010.0, error_kind="http_503"))
    first.write_result(result("b"))
    first.close()

    second = open_sink(out, run_id="run-2")
    assert second.failed_ids().to_pylist() == ["a"]
    assert second.final_ids().to_pylist() == ["b"]
    second.write_result(result("a", finished_at=1_700_000_500.0, text="second try"))
    second.close()

    rows = result_rows(out)
    assert [(r["request_id"], r["status"], r["text"], r["run_id"]) for r in rows] == [
        ("a", "ok", "second try", "run-2"), ("b", "ok", None, "run-1")]


def test_only_parts_with_superseded_rows_are_rewritten(tmp_path):
    out = tmp_path / "out"
    first = open_sink(out, part_rows=2)
    for request_id, status in [("a", "ok"), ("b", "ok"), ("c", "failed"), ("d", "ok")]:
        first.write_result(result(request_id, status))
    first.close()
    untouched, holding_c = sorted((out / "results").glob("part-*.parquet"))
    untouched_inode = untouched.stat().st_ino

    second = open_sink(out, run_id="run-2")
    second.write_result(result("c", finished_at=1_700_000_900.0))
    second.close()

    assert untouched.stat().st_ino == untouched_inode
    assert pq.read_table(holding_c).column("request_id").to_pylist() == ["d"]
    assert statuses(out) == {"a": "ok", "b": "ok", "c": "ok", "d": "ok"}


def test_a_final_row_beats_a_later_failed_one(tmp_path):
    out = tmp_path / "out"
    first = open_sink(out)
    first.write_result(result("a", "blocked", finished_at=1_700_000_010.0))
    first.close()
    second = open_sink(out, run_id="run-2")
    second.write_result(result("a", "failed", finished_at=1_700_000_900.0))
    second.close()
    assert statuses(out) == {"a": "blocked"}


def test_a_newer_failed_row_replaces_an_older_one(tmp_path):
    out = tmp_path / "out"
    for n, kind in enumerate(["http_500", "timeout"]):
        sink = open_sink(out, run_id=f"run-{n}")
        sink.write_result(result("a", "failed", finished_at=1_700_000_000.0 + n, error_kind=kind))
        sink.close()
    assert [row["error_kind"] for row in result_rows(out)] == ["timeout"]


def test_recovery_supersedes_rows_of_the_crashed_run(tmp_path):
    out = tmp_path / "out"
    first = open_sink(out)
    first.write_result(result("a", "failed", finished_at=1_700_000_010.0))
    first.close()
    second = open_sink(out, run_id="run-2")
    second.write_result(result("a", finished_at=1_700_000_900.0))
    second.flush()
    kill(second, out)

    third = open_sink(out, run_id="run-3")

    assert [(row["request_id"], row["status"]) for row in result_rows(out)] == [("a", "ok")]
    third.close()


# ---------------------------------------------------------------- final and failed ids


def test_final_and_failed_ids_include_rows_not_yet_in_a_part(tmp_path):
    out = tmp_path / "out"
    sink = open_sink(out)
    for request_id, status in [("a", "ok"), ("b", "blocked"), ("c", "invalid"), ("d", "failed")]:
        sink.write_result(result(request_id, status))
    assert sorted(sink.final_ids().to_pylist()) == ["a", "b", "c"]
    assert sink.failed_ids().to_pylist() == ["d"]
    sink.write_result(result("d", finished_at=1_700_000_900.0))
    assert sorted(sink.final_ids().to_pylist()) == ["a", "b", "c", "d"]
    assert sink.failed_ids().to_pylist() == []
    sink.close()


def test_pending_ids_keep_manifest_order():
    manifest = pa.array(["c", "a", "d", "b"])
    assert pending_ids(manifest, pa.array(["a", "b"])).to_pylist() == ["c", "d"]


def test_a_run_id_left_empty_is_filled_in(tmp_path):
    out = tmp_path / "out"
    sink = open_sink(out, run_id="run-7")
    sink.write_result(dataclasses.replace(result("a"), run_id=None))
    sink.write_result(dataclasses.replace(result("b"), run_id="given"))
    sink.close()
    assert [row["run_id"] for row in result_rows(out)] == ["run-7", "given"]


# ---------------------------------------------------------------- the lock


def test_a_held_lock_is_refused_naming_its_holders_pid_and_start(tmp_path):
    out = tmp_path / "out"
    with folder_lock(out):
        with pytest.raises(UsageError, match=rf"another batchrun run is writing {out} \(pid {os.getpid()}, "
                                             r"started \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"):
            Sink(out, run_id="r").open()
        assert lock_module.lock_holder(out) == os.getpid()


def test_a_pid_file_left_by_batchrun_0_5_naming_a_live_pid_holds_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".lock").write_text(f"{os.getpid()}\n")  # after a reboot, a stale pid can be a live process's
    sink = open_sink(out)
    assert lock_module.parse_lock_record((out / ".lock").read_bytes()).pid == os.getpid()
    sink.close()
    assert not (out / ".lock").exists()


def test_the_record_a_killed_holder_left_is_replaced_and_removed_at_close(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".lock").write_text(f'{{"pid": {DEAD_PID}, "started_at": "2026-01-01T01:30:00+00:00"}}\n')
    sink = open_sink(out)
    assert lock_module.parse_lock_record((out / ".lock").read_bytes()).pid == os.getpid()
    sink.close()
    assert not (out / ".lock").exists()


def test_a_sink_opened_on_a_held_lock_leaves_it_to_its_holder(tmp_path):
    out = tmp_path / "out"
    with folder_lock(out) as lock:
        sink = Sink(out, run_id="r")
        sink.open(held_lock=lock)
        sink.close()
        assert lock_module.lock_holder(out) == os.getpid()  # still held, by the run around the sink
    assert not (out / ".lock").exists()


def test_an_unreadable_lock_is_taken_over(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".lock").write_text("")  # a run killed while writing its lock
    open_sink(out).close()


def test_a_killed_child_not_yet_reaped_holds_no_lock():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert lock_module.pid_alive(child.pid)
        child.kill()
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, left as a zombie
        assert not lock_module.pid_alive(child.pid)
    finally:
        child.kill()
        child.wait()


def test_a_second_sink_on_a_folder_in_use_is_refused(tmp_path):
    out = tmp_path / "out"
    first = open_sink(out)
    with pytest.raises(UsageError, match="another batchrun run is writing"):
        Sink(out, run_id="run-2").open()
    first.close()


def test_a_segment_killed_before_its_header_is_removed(tmp_path):
    out = tmp_path / "out"
    (out / "journal").mkdir(parents=True)
    (out / "journal" / "run-0-0000.jsonl").write_bytes(b"")
    sink = open_sink(out)
    assert sink._recovery == Recovery(0, 0, None)
    assert [p.name for p in (out / "journal").iterdir()] == ["run-1-0000.jsonl"]
    sink.close()


WRITER_PROCESS = """
import io, sys
from pathlib import Path
from PIL import Image
from batchrun.records import ResultRecord
from batchrun.output.sink import Sink

sink = Sink(Path(sys.argv[1]), run_id="child", part_rows=700, flush_every=1)
sink.open()
for n in range(100_000):
    request_id = f"id{n:06d}"
    sink.record_sent(request_id)
    image = None
    if n % 10 == 0:
        buffer = io.BytesIO()
        Image.new("RGB", (4 + n % 7, 3), (n % 256, 0, 0)).save(buffer, format="PNG")
        image = sink.write_image(buffer.getvalue(), "image/png", None, request_id)
    sink.write_result(ResultRecord(request_id, "ok", 1, 1.0 + n, 2.0 + n, image_path=image and image.path,
                                   image_sha256=image and image.sha256))
    print(request_id, flush=True)
"""


def test_kill_9_loses_no_row_the_killed_process_had_written(tmp_path):
    out = tmp_path / "out"
    child = subprocess.Popen([sys.executable, "-c", WRITER_PROCESS, str(out)], stdout=subprocess.PIPE, text=True)
    written = [child.stdout.readline().strip() for _ in range(2_500)]
    child.kill()
    child.wait()
    child.stdout.close()

    sink = Sink(out, run_id="resume")
    recovery = sink.open()

    final = set(sink.final_ids().to_pylist())
    assert set(written) <= final
    assert recovery.crashed_run_id == "child"
    assert recovery.in_flight_at_crash <= 1
    sink.close()
    rows = result_rows(out)
    assert len(rows) == len({row["request_id"] for row in rows}) == len(final)
    for row in rows:
        if row["image_path"]:
            assert hashlib.sha256((out / row["image_path"]).read_bytes()).hexdigest() == row["image_sha256"]


def test_a_part_written_before_the_service_tier_column_reads_with_it_null(tmp_path):
    out = tmp_path / "out"
    (out / "results").mkdir(parents=True)
    older = RESULT_SCHEMA.remove(RESULT_SCHEMA.get_field_index("service_tier"))
    row = {name: value for name, value in dataclasses.asdict(result("a")).items() if name != "service_tier"}
    row["started_at"] = row["finished_at"] = datetime.fromtimestamp(row["finished_at"], UTC)
    pq.write_table(pa.Table.from_pylist([row], schema=older), out / "results" / "part-000000.parquet")
    sink = open_sink(out)
    sink.write_result(result("b", service_tier="flex"))
    sink.close()
    table = read_parts(list_parts(out / "results"), ("request_id", "service_tier", "status"))
    assert table.to_pylist() == [{"request_id": "a", "service_tier": None, "status": "ok"},
                                 {"request_id": "b", "service_tier": "flex", "status": "ok"}]
