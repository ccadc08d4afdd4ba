"""The review table: every manifest row once, with its variables, its latest result and its reply's JSON fields."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from review_jobs import ROWS, cards_job, cards_spec, write_spec  # noqa: F401  (cards_job: a fixture)

from batchrun.cli import main
from batchrun.output.sink import Sink
from batchrun.planning.manifest import ManifestWriter
from batchrun.records import RequestRecord, ResultRecord
from batchrun.review.columns import role_of
from batchrun.review.table import open_review_table


def all_rows(out_dir: Path, **kwargs) -> list[dict]:
    table = open_review_table(out_dir, **kwargs)
    return [row for batch in table.batches() for row in batch.to_pylist()]


def test_every_manifest_row_appears_once_with_its_input_columns_and_matrix_values(cards_job):
    manifest = pq.read_table(cards_job / "manifest.parquet", columns=["row_id", "variables"]).to_pylist()

    rows = all_rows(cards_job, batch_rows=5)  # batches smaller than the job: rows cross batch ends

    assert [row["row_id"] for row in rows] == [m["row_id"] for m in manifest]
    for row, planned in zip(rows, manifest, strict=True):
        variables = json.loads(planned["variables"])
        assert {key: row[key] for key in variables} == variables
    assert sorted({(r["sku"], r["tone"], r["variant"]) for r in rows}) == sorted(
        (r["sku"], tone, v) for r in ROWS for tone in ("warm", "crisp") for v in (0, 1))


def test_the_parsed_json_fields_match_the_reply_text(cards_job):
    rows = all_rows(cards_job)

    assert {row["status"] for row in rows} == {"ok"}
    for row in rows:
        reply = json.loads(row["text"])
        assert row["json.headline"] == reply["headline"]
        assert row["json.stars"] == reply["stars"]
        assert json.loads(row["json.tags"]) == reply["tags"]


def test_columns_say_their_role_and_take_the_type_their_values_share(cards_job):
    table = open_review_table(cards_job)

    assert (table.input_columns, table.matrix_columns, table.variant_column) == (("sku", "title", "price"),
                                                                                 ("tone",), "variant")
    assert table.json_columns == ("json.headline", "json.stars", "json.tags")
    assert table.rows == 12
    roles = {field.name: role_of(field) for field in table.schema}
    assert [roles[name] for name in ("row_id", "sku", "tone", "variant", "status", "prompt", "json.stars")] == [
        "id", "input", "matrix", "variant", "result", "request", "json"]
    types = {field.name: str(field.type) for field in table.schema}
    assert (types["price"], types["variant"], types["json.stars"], types["json.tags"]) == (
        "double", "int64", "int64", "string")


def test_each_row_carries_its_prompt_tokens_cost_and_attempts(cards_job):
    row = all_rows(cards_job)[0]

    assert row["prompt"] == "Write a warm product card for the Mug"
    assert row["model"] == "gemini-3-flash-preview"
    assert row["cost_usd"] > 0 and row["input_tokens"] > 0 and row["output_tokens"] > 0
    assert row["attempts"] == 1 and row["finish_reason"] == "STOP"


def test_rows_planned_after_the_run_are_pending(cards_job, tmp_path):
    spec = write_spec(tmp_path, cards_spec([*ROWS, {"sku": "D4", "title": "Cup", "price": 3}]))
    assert main(["plan", str(spec), "-q"]) == 0

    rows = all_rows(cards_job)

    assert len(rows) == 16
    pending = [row for row in rows if row["status"] == "pending"]
    assert {row["sku"] for row in pending} == {"D4"} and len(pending) == 4
    assert all(row["text"] is None and row["json.stars"] is None and row["cost_usd"] is None for row in pending)
    assert pending[0]["prompt"] == "Write a warm product card for the Cup"


def test_a_folder_with_nothing_planned_names_the_fix(tmp_path):
    from batchrun.errors import UsageError

    with pytest.raises(UsageError, match=r"has no manifest.parquet: nothing was planned yet; run `batchrun plan`"):
        open_review_table(tmp_path / "out")


# ---------------------------------------------------------------- a folder made by hand


def record(n: int, *, schema: bool = True) -> RequestRecord:
    body = {"system": None, "parts": [{"text": f"prompt {n}"}], "tools": None, "extras": {},
            "options": {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "4:5", "imageSize": "1K"}},
            "response_schema": {"dialect": "json_schema", "schema": {
                "type": "object", "properties": {"title": {"type": "string"}, "size": {"type": ["number", "null"]}}}}
            if schema else None}
    return RequestRecord(request_id=f"req{n}", seq=n, model="m", body=body, variables={"n": n, "tag": ["x"]},
                         input_row=n + 1, output_name=f"row{n}")


def result(n: int, status: str, at: float, **fields) -> ResultRecord:
    return ResultRecord(request_id=f"req{n}", status=status, attempts=1, started_at=at - 1, finished_at=at,
                        model="m", **fields)


@pytest.fixture
def hand_made(tmp_path):
    """Three rows: req0 failed then ok with an image, req1 an unparseable reply, req2 never sent."""
    out = tmp_path / "out"
    writer = ManifestWriter(out / "manifest.parquet", "fp")
    writer.write([record(0), record(1), record(2)])
    writer.commit()
    sink = Sink(out, run_id="r1")
    sink.open()
    sink.write_result(result(0, "failed", 10.0, error_kind="timeout"))
    sink.write_result(result(0, "ok", 20.0, image_path="images/row0.png", image_sha256="ab",
                             text='{"title": "T", "size": 3}'))
    sink.write_result(result(1, "ok", 21.0, text="not json {"))
    sink.close()
    return out


def test_the_latest_result_counts_and_an_unparseable_reply_keeps_its_text(hand_made):
    rows = all_rows(hand_made, relative_paths=True)

    assert [(r["row_id"], r["status"], r["error_kind"]) for r in rows] == [
        ("req0", "ok", None), ("req1", "ok", None), ("req2", "pending", None)]
    assert (rows[0]["json.title"], rows[0]["json.size"]) == ("T", 3.0)
    assert (rows[1]["json.title"], rows[1]["json.size"], rows[1]["text"]) == (None, None, "not json {")
    assert rows[0]["image_path"] == "images/row0.png"
    assert (rows[0]["aspect_ratio_requested"], rows[0]["image_size_requested"]) == ("4:5", "1K")
    assert rows[0]["tag"] == '["x"]'  # a list-valued variable as JSON text


def test_image_paths_are_absolute_unless_asked_relative(hand_made):
    rows = all_rows(hand_made)

    assert rows[0]["image_path"] == str(hand_made.resolve() / "images" / "row0.png")
    assert rows[2]["image_path"] is None


def test_a_live_run_s_journal_rows_are_read_too(hand_made):
    sink = Sink(hand_made, run_id="r2")
    sink.open()
    sink.write_result(result(2, "blocked", 30.0, finish_reason="SAFETY"))
    sink.flush()
    try:
        rows = all_rows(hand_made)
    finally:
        sink.close()

    assert [r["status"] for r in rows] == ["ok", "ok", "blocked"]


def test_a_job_without_a_response_schema_has_no_json_columns(tmp_path):
    writer = ManifestWriter(tmp_path / "manifest.parquet", "fp")
    writer.write([record(0, schema=False)])
    writer.commit()

    table = open_review_table(tmp_path)

    assert table.json_columns == ()
    assert not [name for name in table.schema.names if name.startswith("json.")]


def test_results_spread_over_many_parts_in_any_order_come_back_in_manifest_order(tmp_path):
    writer = ManifestWriter(tmp_path / "manifest.parquet", "fp")
    writer.write([record(n, schema=False) for n in range(7)])
    writer.commit()
    sink = Sink(tmp_path, run_id="r1", part_rows=1)  # a part per result: more parts than the cache holds
    sink.open()
    for n in (6, 0, 3, 5, 1):
        sink.write_result(result(n, "ok", 10.0 + n, text=f"reply {n}"))
    sink.close()

    rows = all_rows(tmp_path, batch_rows=3)

    assert [(r["row_id"], r["text"]) for r in rows] == [
        ("req0", "reply 0"), ("req1", "reply 1"), ("req2", None), ("req3", "reply 3"), ("req4", None),
        ("req5", "reply 5"), ("req6", "reply 6")]
