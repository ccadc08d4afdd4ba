"""`batchrun plan` as a user runs it: a subprocess, its exit code, stdout and stderr."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "jobs" / "demo.yaml"
BAD_SPECS = sorted((Path(__file__).parent / "specs" / "bad").glob("*.yaml"))
HEADER = re.compile(r"^# \[(?P<path>.+?)\] (?P<what>.+)\n# message: (?P<message>.+)\n")


def expected_error(spec: Path) -> tuple[str, str]:
    """(YAML path, message) from a bad spec's two opening comment lines."""
    found = HEADER.match(spec.read_text(encoding="utf-8"))
    assert found, f"{spec.name} must open with '# [yaml.path] what' and '# message: ...'"
    return found["path"], found["message"]


def batchrun_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "batchrun", *args]


def run_batchrun(cwd: Path, *args: str, hash_seed: str = "0") -> subprocess.CompletedProcess:
    # the repo's demo job writes beside the repo's pyproject.toml: keep its output under `cwd`, as before
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "BATCHRUN_OUTPUT_DIR": str(cwd / "outputs")}
    return subprocess.run(batchrun_command(*args), cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


# Forks one process per spec from a parent that imported batchrun once: each spec still gets its own
# process, exit code and stderr, without paying the interpreter's start-up forty times.
FORKING_DRIVER = """
import json, os, sys
from batchrun.cli import main
import batchrun.planning.plan, batchrun.cost.lifecycle

results = {}
for index, spec in enumerate(sys.argv[1:]):
    err_path, out_path = f"{index}.err", f"{index}.out"
    pid = os.fork()
    if pid == 0:
        out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(out, 1), os.dup2(err, 2)
        try:
            code = main(["plan", spec])
        except SystemExit as exc:
            code = exc.code
        sys.stdout.flush(), sys.stderr.flush()
        os._exit(code if isinstance(code, int) else 1)
    _, status = os.waitpid(pid, 0)
    results[spec] = [os.waitstatus_to_exitcode(status), open(out_path).read(), open(err_path).read()]
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def bad_spec_runs(tmp_path_factory) -> dict[str, list]:
    """Every bad spec planned by its own process: spec path -> [exit code, stdout, stderr]."""
    cwd = tmp_path_factory.mktemp("bad-specs")
    command = [sys.executable, "-c", FORKING_DRIVER, *map(str, BAD_SPECS)]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_there_are_at_least_twenty_bad_specs():
    assert len(BAD_SPECS) >= 20


@pytest.mark.parametrize("spec", BAD_SPECS, ids=lambda p: p.stem)
def test_bad_spec_exits_2_with_one_line_naming_file_path_and_fix(spec, bad_spec_runs):
    code, out, err = bad_spec_runs[str(spec)]
    where, message = expected_error(spec)
    assert (code, out) == (2, "")
    assert err == f"batchrun: error: {spec}: {where}: {message}\n"
    assert "Traceback" not in err


def test_verbose_shows_the_traceback(tmp_path):
    spec = Path(__file__).parent / "specs" / "bad" / "unknown_nested_key.yaml"
    done = run_batchrun(tmp_path, "plan", str(spec), "-v")
    assert done.returncode == 2
    assert "Traceback (most recent call last)" in done.stderr
    assert done.stderr.rstrip().endswith("limits.concurency: unknown key; did you mean 'concurrency'?")


def test_error_in_rows_writes_no_manifest(tmp_path):
    spec = Path(__file__).parent / "specs" / "bad" / "missing_template_variable.yaml"
    done = run_batchrun(tmp_path, "plan", str(spec))
    assert done.returncode == 2
    assert not list(tmp_path.rglob("manifest.parquet*"))


def test_unknown_model_is_allowed_with_a_warning(tmp_path):
    spec = tmp_path / "custom.yaml"
    spec.write_text(
        "name: custom\nmodel: acme-imagen-9\ninputs: {rows: [{sku: A1}]}\n"
        "request: {prompt: 'Draw {{ sku }}', generation_config: {imageConfig: {imageSize: 9K}}}\n",
        encoding="utf-8",
    )
    done = run_batchrun(tmp_path, "plan", str(spec))
    assert done.returncode == 0, done.stderr
    warning = [line for line in done.stderr.splitlines() if "WARNING" in line]
    assert len(warning) == 1
    assert warning[0].endswith(
        f"{spec}: model: 'acme-imagen-9' is not in batchrun's model table; "
        "its image sizes and thinking options are not checked"
    )
    assert "rows: 1  (input rows 1 x matrix combinations 1); each gets its own result" in done.stdout


def test_demo_plan_prints_what_will_be_sent(tmp_path):
    done = run_batchrun(tmp_path, "plan", str(DEMO))
    assert done.returncode == 0, done.stderr
    image_bytes = sum(p.stat().st_size for p in (REPO / "jobs" / "data" / "photos").glob("*.png"))
    assert done.stdout.splitlines() == [
        "manifest: outputs/demo/manifest.parquet",
        "rows: 48  (input rows 12 x matrix combinations 4); each gets its own result",
        "requests: 48  (sent and paid for)",
        "models: gemini-3.1-flash-image",
        f"input images: 12 distinct, {image_bytes:,} bytes",
    ]
    assert pq.read_table(tmp_path / "outputs" / "demo" / "manifest.parquet").num_rows == 48


def test_demo_plan_json_summary(tmp_path):
    done = run_batchrun(tmp_path, "plan", str(DEMO), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    image_bytes = sum(p.stat().st_size for p in (REPO / "jobs" / "data" / "photos").glob("*.png"))
    assert summary == {
        "manifest": "outputs/demo/manifest.parquet",
        "requests": 48,
        "rows": 48,
        "input_rows": 12,
        "matrix_combinations": 4,
        "variants": 1,
        "models": ["gemini-3.1-flash-image"],
        "input_images": 12,
        "input_image_bytes": image_bytes,
        "rows_sharing_a_request": 0,
    }


def test_show_prints_fully_rendered_requests(tmp_path):
    done = run_batchrun(tmp_path, "plan", str(DEMO), "--show", "2")
    assert done.returncode == 0, done.stderr
    decoder, text, shown = json.JSONDecoder(), done.stdout, []
    start = text.index("{")
    while start < len(text):
        value, end = decoder.raw_decode(text, start)
        shown.append(value)
        start = end + len(text[end:]) - len(text[end:].lstrip())
    assert [(r["seq"], r["output_name"]) for r in shown] == [
        (0, "MUG-001/kitchen-counter-1-1"),
        (1, "MUG-001/kitchen-counter-4-5"),
    ]
    first = shown[0]["body"]
    assert first["contents"][0]["parts"][0]["text"].startswith("Photograph the Stoneware Mug (stoneware, sage green)")
    assert first["contents"][0]["parts"][1]["inlineData"]["data"].startswith("sha256:")
    assert first["generationConfig"]["imageConfig"] == {"aspectRatio": "1:1", "imageSize": "1K"}
    assert shown[1]["body"]["generationConfig"]["imageConfig"]["aspectRatio"] == "4:5"


def test_two_processes_write_the_same_manifest(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    assert run_batchrun(first, "plan", str(DEMO), hash_seed="1").returncode == 0
    assert run_batchrun(second, "plan", str(DEMO), hash_seed="2").returncode == 0
    one = first / "outputs" / "demo" / "manifest.parquet"
    two = second / "outputs" / "demo" / "manifest.parquet"
    ids = pq.read_table(one).column("request_id").to_pylist()
    assert len(set(ids)) == 48
    assert ids == pq.read_table(two).column("request_id").to_pylist()
    assert one.read_bytes() == two.read_bytes()


def test_planning_again_in_the_same_folder_gives_the_same_manifest(tmp_path):
    assert run_batchrun(tmp_path, "plan", str(DEMO)).returncode == 0
    manifest = tmp_path / "outputs" / "demo" / "manifest.parquet"
    before = manifest.read_bytes()
    assert run_batchrun(tmp_path, "plan", str(DEMO)).returncode == 0
    assert manifest.read_bytes() == before
