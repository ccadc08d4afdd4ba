"""End to end: a manifest planned by batchrun 0.2 (Gemini bodies, request ids of those) is not run.

`batchrun run` and `batchrun estimate` stop with one line saying to plan again (exit 2) and send
nothing; after `batchrun plan` the job runs. The 0.2 manifest is made by dropping the request-format
key from a fresh manifest's metadata: it is what 0.2 wrote, bodies aside, and the check reads only it.
"""

from __future__ import annotations

import pyarrow.parquet as pq

from e2e_helpers import batchrun, run_job, text_job, write_spec
from batchrun.manifest import FORMAT_KEY

IN_PROCESS = {"kind": "simulator", "base_url": None, "api_key_env": None}


def make_it_a_0_2_manifest(path) -> None:
    table = pq.read_table(path)
    metadata = {k: v for k, v in (table.schema.metadata or {}).items() if k != FORMAT_KEY}
    pq.write_table(table.replace_schema_metadata(metadata), path)


def test_a_manifest_planned_by_0_2_is_refused_with_one_line_until_planned_again(tmp_path):
    spec = write_spec(tmp_path, text_job("upgraded", "", 3, provider=IN_PROCESS))
    assert batchrun(tmp_path, "plan", str(spec)).returncode == 0
    manifest = tmp_path / "outputs" / "upgraded" / "manifest.parquet"
    make_it_a_0_2_manifest(manifest)

    for command in (["run", str(spec), "--progress", "plain"], ["estimate", str(spec)]):
        refused = batchrun(tmp_path, *command, key=None)
        assert refused.returncode == 2, refused.stderr
        (line,) = refused.stderr.strip().splitlines()
        assert "was planned by batchrun 0.2" in line
        assert f"run `batchrun plan {spec}` again" in line
    assert not (tmp_path / "outputs" / "upgraded" / "results").exists()

    assert batchrun(tmp_path, "plan", str(spec)).returncode == 0
    done = run_job(tmp_path, spec, key=None)
    assert done.returncode == 0, done.stderr
    assert len(pq.read_table(tmp_path / "outputs" / "upgraded" / "results")) == 3
