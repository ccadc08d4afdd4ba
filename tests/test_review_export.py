"""`batchrun export`: the review table written whole, in each format, read back the same."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
import pytest
from review_jobs import ROWS, cards_job, cards_spec, write_spec  # noqa: F401  (cards_job: a fixture)

from batchrun.cli import main
from batchrun.errors import WriteFailed
from batchrun.review.export import ExportFormat, default_export_path, export_table
from batchrun.review.table import open_review_table


def read_back(path, export_format: ExportFormat) -> list[dict]:
    if export_format is ExportFormat.PARQUET:
        return pq.read_table(path).to_pylist()
    if export_format is ExportFormat.CSV:
        with open(path, newline="", encoding="utf-8") as stream:
            return list(csv.DictReader(stream))
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("export_format", list(ExportFormat))
def test_every_row_is_written_once_with_its_variables_and_json_fields(cards_job, export_format):
    table = open_review_table(cards_job)
    manifest_ids = pq.read_table(cards_job / "manifest.parquet", columns=["row_id"])["row_id"].to_pylist()

    exported = export_table(table, default_export_path(cards_job, export_format), export_format)

    rows = read_back(exported.path, export_format)
    assert exported.path == cards_job / f"export.{export_format.value}"
    assert exported.rows == len(rows) == 12
    assert [row["row_id"] for row in rows] == manifest_ids
    assert list(rows[0]) == table.schema.names
    for row in rows:
        reply = json.loads(row["text"])
        assert str(row["json.stars"]) == str(reply["stars"]) and row["json.headline"] == reply["headline"]
    assert sorted((r["sku"], r["tone"], str(r["variant"])) for r in rows) == sorted(
        (r["sku"], tone, str(v)) for r in ROWS for tone in ("warm", "crisp") for v in (0, 1))


def test_jsonl_keeps_types_and_writes_times_in_utc(cards_job):
    path = export_table(open_review_table(cards_job), cards_job / "x.jsonl", ExportFormat.JSONL).path

    row = read_back(path, ExportFormat.JSONL)[0]

    assert (row["price"], row["variant"], row["status"], row["error_kind"]) == (9.0, 0, "ok", None)
    assert row["finished_at"].endswith("+00:00")


def test_parquet_keeps_the_schema_with_each_field_s_role(cards_job):
    table = open_review_table(cards_job)
    path = export_table(table, cards_job / "x.parquet", ExportFormat.PARQUET).path

    assert pq.read_schema(path).equals(table.schema, check_metadata=True)


def test_a_file_that_cannot_be_written_is_a_write_error_and_leaves_nothing(cards_job, tmp_path):
    (tmp_path / "blocker").write_text("a file, not a folder")

    with pytest.raises(WriteFailed, match=r"^export not written: could not write .*blocker/x.csv: .*; or write it elsewhere with --out"):
        export_table(open_review_table(cards_job), tmp_path / "blocker" / "x.csv", ExportFormat.CSV)


def test_the_command_prints_the_path_and_row_count(cards_job, tmp_path, capsys):
    capsys.readouterr()

    code = main(["export", "job.yaml", "--format", "csv", "--out", "mine.csv", "--relative-paths"])

    assert code == 0
    assert capsys.readouterr().out == "mine.csv  (12 rows)\n"
    assert len(read_back(tmp_path / "mine.csv", ExportFormat.CSV)) == 12


def test_the_command_on_a_job_never_planned_exits_2_naming_the_fix(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_spec(tmp_path, cards_spec(ROWS))

    assert main(["export", "job.yaml"]) == 2
    assert capsys.readouterr().err == ("batchrun: error: out has no manifest.parquet: nothing was planned yet; "
                                       "run `batchrun plan` on the job first\n")
