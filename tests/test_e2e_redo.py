"""End to end: `batchrun redo SPEC MARKS` against the simulator as a real HTTP server.

An image job runs; a reviewer rejects two images; the redo sends exactly those two requests again (the
simulator's request log says so), as new versions with new files, keeping the rejected files and their
result rows; a second redo of one of them makes version 3. Marks that can't be redone exit 2 and send
nothing; `--dry-run` sends and writes nothing; a redo killed with SIGKILL is finished by `batchrun run`.
"""

from __future__ import annotations

import hashlib
import json
import signal
from pathlib import Path

from e2e_helpers import (  # noqa: F401 (serve is a fixture)
    batchrun,
    image_job,
    outputs,
    run_job,
    sends_by_id,
    serve,
    start_batchrun,
    wait_until,
    write_spec,
)

NAME = "redo"


def current(folder: Path) -> dict[str, dict]:
    """The latest result of each current manifest row, by its image name."""
    job = outputs(folder, NAME)
    names = dict(zip(job.manifest["row_id"].to_pylist(), job.manifest["output_name"].to_pylist()))
    rows = sorted(job.rows(), key=lambda r: r["finished_at"])
    return {names[r["row_id"]]: r for r in rows if r["row_id"] in names}


def write_marks(folder: Path, rows: list[dict], notes: list[str]) -> Path:
    path = folder / "marks.json"
    rejected = [{"row_id": r["row_id"], "image_sha256": r["image_sha256"], "note": n} for r, n in zip(rows, notes)]
    path.write_text(json.dumps({"version": 1, "job": NAME, "rejected": rejected}))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_rejected_images_come_back_as_new_versions_and_nothing_else_is_sent(tmp_path, serve):
    simulator = serve(profile="clean")
    spec = write_spec(tmp_path, image_job(NAME, simulator.url, tmp_path, photos=3, scenes=2))
    assert run_job(tmp_path, spec).returncode == 0
    first = current(tmp_path)
    assert len(first) == 6 and len(simulator.requests()) == 6
    rejected = [first["BTL-001/kitchen-counter"], first["BWL-001/picnic-table"]]
    marks = write_marks(tmp_path, rejected, ["logo cut off", "wrong colour"])
    before = outputs(tmp_path, NAME).body_hashes()

    redo = batchrun(tmp_path, "redo", str(spec), str(marks), "--progress", "plain")

    assert redo.returncode == 0, redo.stderr
    assert "redo: 2 rejected rows recorded as new versions" in redo.stdout
    log = simulator.requests()
    assert len(log) == 8
    job = outputs(tmp_path, NAME)
    after = current(tmp_path)
    old_names = {name for name, row in first.items() if row in rejected}
    assert set(after) == (set(first) - old_names) | {f"{name}.v2" for name in old_names}
    new_ids = {after[f"{name}.v2"]["request_id"] for name in old_names}
    assert sends_by_id(log[6:], job.body_hashes()) == dict.fromkeys(new_ids, 1)
    assert sends_by_id(log[:6], before) == dict.fromkeys(before.values(), 1)
    for name in old_names:
        old, new = first[name], after[f"{name}.v2"]
        assert new["status"] == "ok" and new["image_path"] == f"images/{name}.v2.png"
        assert sha256(job.folder / old["image_path"]) == old["image_sha256"]  # the rejected file is kept
        assert sha256(job.folder / new["image_path"]) == new["image_sha256"] != old["image_sha256"]
    for name in set(first) - old_names:
        assert after[name] == first[name]  # nothing else sent again, nothing else rewritten
    assert {r["row_id"] for r in job.rows()} >= {r["row_id"] for r in rejected}  # old result rows kept
    status = json.loads(batchrun(tmp_path, "status", str(spec), "--json").stdout)
    assert (status["total"], status["done"]["ok"], status["pending"], status["earlier_versions"]) == (6, 6, 0, 2)

    again = write_marks(tmp_path, [after[f"{sorted(old_names)[0]}.v2"]], ["still cut off"])
    second = batchrun(tmp_path, "redo", str(spec), str(again), "--progress", "plain")

    assert second.returncode == 0, second.stderr
    assert len(simulator.requests()) == 9
    third = current(tmp_path)
    name = sorted(old_names)[0]
    assert third[f"{name}.v3"]["status"] == "ok" and f"{name}.v2" not in third
    assert (job.folder / "images" / f"{name}.v2.png").exists() and (job.folder / "images" / f"{name}.png").exists()
    assert [json.loads(line)["version"] for line in (job.folder / "versions.jsonl").read_text().splitlines()] == [2, 2, 3]


def test_a_dry_run_and_marks_that_cant_be_redone_send_nothing(tmp_path, serve):
    simulator = serve(profile="clean")
    spec = write_spec(tmp_path, image_job(NAME, simulator.url, tmp_path, photos=2, scenes=2))
    assert run_job(tmp_path, spec).returncode == 0
    rows = sorted(current(tmp_path).values(), key=lambda r: r["row_id"])
    marks = write_marks(tmp_path, rows[:2], ["", "too dark"])

    dry = batchrun(tmp_path, "redo", str(spec), str(marks), "--dry-run")

    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("would send 2 requests for 2 rejected rows as new versions (--dry-run: nothing "
                                 "sent, nothing written); estimated cost at the standard tier: $")
    assert not (tmp_path / "outputs" / NAME / "versions.jsonl").exists()

    stale = write_marks(tmp_path, [{**rows[0], "image_sha256": "0" * 64}], [""])
    refused = batchrun(tmp_path, "redo", str(spec), str(stale))

    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"batchrun: error: marks file {stale}: rejected[0] (row {rows[0]['row_id']}): the marked image (sha256 "
        f"000000000000…) is not the row's image now ({rows[0]['image_path']}): the marks are stale; review the job "
        "again and save new marks; nothing was sent"]
    assert len(simulator.requests()) == 4
    assert not (tmp_path / "outputs" / NAME / "versions.jsonl").exists()


def test_a_redo_killed_mid_run_is_finished_by_batchrun_run(tmp_path, serve):
    simulator = serve(faults="slow.yaml")
    spec = write_spec(tmp_path, image_job(NAME, simulator.url, tmp_path, photos=4, scenes=2,
                                          limits={"concurrency": 1}))
    assert run_job(tmp_path, spec).returncode == 0
    first = current(tmp_path)
    rejected = [first[name] for name in sorted(first)[:4]]
    marks = write_marks(tmp_path, rejected, ["", "", "", ""])

    process = start_batchrun(tmp_path, "redo", str(spec), str(marks), "--progress", "plain",
                             stderr=tmp_path / "redo.err")
    wait_until(lambda: len(simulator.requests()) >= 8 + 2, process, "two requests of the redo received")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    resumed = run_job(tmp_path, spec)

    assert resumed.returncode == 0, resumed.stderr
    after = current(tmp_path)
    assert sorted(after) == sorted({*first} - {*sorted(first)[:4]} | {f"{n}.v2" for n in sorted(first)[:4]})
    assert all(after[f"{n}.v2"]["status"] == "ok" for n in sorted(first)[:4])
    sent = sends_by_id(simulator.requests()[8:], outputs(tmp_path, NAME).body_hashes())
    assert set(sent) == {after[f"{n}.v2"]["request_id"] for n in sorted(first)[:4]}
    assert sum(sent.values()) <= 4 + 1  # only a request in flight at the kill is sent twice
