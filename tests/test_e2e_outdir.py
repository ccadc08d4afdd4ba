"""End to end: one output folder for a job from any current folder, its overrides, the pointer to output an
earlier version left in the current folder, and overlapping runs (the real CLI, the in-process simulator).

The project is `proj/` with the spec in `proj/jobs/` and no marker at all: the README's layout on a first
run. Commands run from the project, from `proj/jobs/` and from a folder outside it.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

from e2e_helpers import (
    RUN_TIMEOUT_S,
    LineReader,
    batchrun,
    cli_env,
    outputs,
    start_batchrun,
    text_job,
    write_faults,
    write_spec,
)

IN_PROCESS = {"kind": "simulator", "base_url": None, "api_key_env": None}
ROWS = 6
PROGRESS = re.compile(r"done [1-9][\d,]*/")


def project(tmp_path: Path, name: str = "night", rows: int = ROWS, **overrides) -> tuple[Path, Path]:
    """`proj/jobs/NAME.yaml` in tmp_path and a folder outside the project: (absolute spec, elsewhere)."""
    proj, elsewhere = tmp_path / "proj", tmp_path / "elsewhere"
    proj.mkdir(exist_ok=True)
    elsewhere.mkdir()
    overrides.setdefault("provider", IN_PROCESS)
    spec = proj / write_spec(proj, text_job(name, "", rows, **overrides))
    return spec, elsewhere


def test_plan_run_status_and_estimate_from_three_folders_use_one_output_folder(tmp_path):
    spec, elsewhere = project(tmp_path)
    proj = spec.parents[1]

    planned = batchrun(elsewhere, "plan", str(spec), key=None)
    ran = batchrun(spec.parent, "run", str(spec), "--progress", "none", key=None)
    status = batchrun(proj, "status", str(spec), "--json", key=None)
    estimate = batchrun(elsewhere, "estimate", str(spec), key=None)

    for result in (planned, ran, status, estimate):
        assert result.returncode == 0, result.stderr
    assert json.loads(status.stdout)["out_dir"] == "outputs/night"  # shown from the project folder
    assert json.loads(status.stdout)["done"]["ok"] == ROWS
    assert f"Estimate for {proj}/outputs/night/manifest.parquet" in estimate.stdout
    assert len(outputs(proj, "night").rows()) == ROWS
    assert [p for p in (elsewhere, spec.parent) if (p / "outputs").exists()] == []


def test_the_flag_and_the_environment_variable_move_the_output_folder_and_the_flag_wins(tmp_path):
    spec, elsewhere = project(tmp_path)
    env = cli_env(None, BATCHRUN_OUTPUT_DIR=str(tmp_path / "from-env"))

    by_env = batchrun(elsewhere, "plan", str(spec), env=env)
    by_flag = batchrun(elsewhere, "plan", str(spec), "--output-dir", "by-flag", env=env)

    assert by_env.returncode == 0 and by_flag.returncode == 0, by_env.stderr + by_flag.stderr
    assert (tmp_path / "from-env" / "night" / "manifest.parquet").is_file()
    assert (elsewhere / "by-flag" / "night" / "manifest.parquet").is_file()  # relative to the current folder
    assert not (spec.parents[1] / "outputs").exists()


def test_output_an_earlier_version_left_in_the_current_folder_is_pointed_at_in_one_line(tmp_path):
    spec, elsewhere = project(tmp_path)
    # What 0.5 did from `elsewhere`: the output folder under the current folder.
    assert batchrun(elsewhere, "run", str(spec), "--output-dir", "outputs", "--progress", "none",
                    key=None).returncode == 0
    old, new = elsewhere / "outputs" / "night", spec.parents[1] / "outputs" / "night"

    refused = batchrun(elsewhere, "run", str(spec), "--progress", "none", key=None)

    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        f"batchrun: error: this job's output is in {old} (found from the current folder, as batchrun 0.5 did), "
        f"but batchrun now keeps it in {new} (from the spec's project folder, whatever the current folder); "
        f"move it there (mkdir -p {new.parent} && mv {old} {new}) or point at its folder with --output-dir "
        f"{old.parent} (or BATCHRUN_OUTPUT_DIR={old.parent})"]
    assert not new.exists()
    new.parent.mkdir()
    old.rename(new)  # the move the line asks for: the job is done, nothing left to send
    after = batchrun(elsewhere, "status", str(spec), "--json", key=None)
    assert after.returncode == 0 and json.loads(after.stdout)["done"]["ok"] == ROWS, after.stderr


def test_a_second_run_while_one_runs_exits_9_naming_its_pid_and_a_killed_holder_blocks_nothing(tmp_path):
    (tmp_path / "proj" / "jobs").mkdir(parents=True)
    # ~30 s of replies: the first run is still sending when it is killed, however slow the machine
    write_faults(tmp_path / "proj" / "jobs", "slow", {"latency": {"distribution": "fixed", "ms": 1000}})
    spec, elsewhere = project(tmp_path, "overlap", rows=60, limits={"concurrency": 2},
                              provider={**IN_PROCESS, "faults": "slow.yaml"})
    first = start_batchrun(spec.parents[1], "run", str(spec), "--progress", "plain", "--status-every", "0.1",
                           key=None)
    try:
        LineReader(first.stderr).wait_for(PROGRESS, RUN_TIMEOUT_S)  # held mid-way: sending, some done

        second = batchrun(elsewhere, "run", str(spec), "--progress", "none", key=None)

        assert second.returncode == 9, second.stderr
        [line] = second.stderr.splitlines()
        assert re.fullmatch(rf"batchrun: error: another batchrun run is writing {spec.parents[1]}/outputs/overlap "
                            rf"\(pid {first.pid}, started \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d\); "
                            r"wait for it to end or stop it, then run again", line), line
        first.send_signal(signal.SIGKILL)  # no cleanup: its lock file stays behind, naming a dead pid
        assert first.wait(timeout=RUN_TIMEOUT_S) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=RUN_TIMEOUT_S)
    assert (spec.parents[1] / "outputs" / "overlap" / ".lock").exists()
    write_faults(tmp_path / "proj" / "jobs", "slow", {})  # the third run's in-process simulator answers at once

    third = batchrun(elsewhere, "run", str(spec), "--progress", "none", key=None)

    assert third.returncode == 0, third.stderr
    job = outputs(spec.parents[1], "overlap")
    assert sorted({row["request_id"] for row in job.rows()}) == sorted(job.ids)
    assert not (job.folder / ".lock").exists()
