"""End to end: a manifest planned by batchrun 0.2 (Gemini bodies) is planned again, and nothing sent twice.

Request ids are the same as 0.2's (tests/test_request_ids_stable.py), so the rows 0.2 answered keep
their results. The 0.2 manifest is made by dropping the request-format key from a fresh manifest's
metadata: it is what 0.2 wrote, bodies aside, and the check reads only it.
"""

from __future__ import annotations

import pyarrow.parquet as pq
from e2e_helpers import batchrun, run_job, text_job, write_spec

from batchrun.planning.manifest import FORMAT_KEY

IN_PROCESS = {"kind": "simulator", "base_url": None, "api_key_env": None}


def make_it_a_0_2_manifest(path) -> None:
    table = pq.read_table(path)
    metadata = {k: v for k, v in (table.schema.metadata or {}).items() if k != FORMAT_KEY}
    pq.write_table(table.replace_schema_metadata(metadata), path)


def test_a_manifest_planned_by_0_2_is_planned_again_and_answered_rows_are_not_sent_again(tmp_path):
    spec = write_spec(tmp_path, text_job("upgraded", "", 3, provider=IN_PROCESS))
    first = run_job(tmp_path, spec, key=None)
    assert first.returncode == 0, first.stderr
    folder = tmp_path / "outputs" / "upgraded"
    make_it_a_0_2_manifest(folder / "manifest.parquet")

    again = run_job(tmp_path, spec, key=None)
    assert again.returncode == 0, again.stderr
    assert "nothing to send" in again.stderr + again.stdout, again.stderr
    assert FORMAT_KEY in pq.read_schema(folder / "manifest.parquet").metadata, again.stderr  # planned again
    assert len(pq.read_table(folder / "results")) == 3  # no row sent twice

    estimate = batchrun(tmp_path, "estimate", str(spec), key=None)
    assert estimate.returncode == 0, estimate.stderr
