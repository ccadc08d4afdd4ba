"""Where a job's output folder is: beside the spec's project whatever the current folder, overridable, and a
one-line pointer when an earlier version's output is left behind in the current folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchrun.errors import EXIT_USAGE, UsageError
from batchrun.planning.outputdir import (
    check_moved_output,
    earlier_output,
    output_override,
    project_base,
    resolve_output_dir,
    shown_path,
)


def folders(root: Path, *paths: str) -> None:
    for path in paths:
        target = root / path
        if path.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("")


@pytest.mark.parametrize("layout, spec_folder, base", [
    (["proj/pyproject.toml", "proj/jobs/"], "proj/jobs", "proj"),
    (["proj/.git/", "proj/jobs/team/"], "proj/jobs/team", "proj"),
    (["proj/batchrun.toml", "proj/specs/"], "proj/specs", "proj"),
    (["proj/outputs/", "proj/specs/"], "proj/specs", "proj"),
    (["proj/jobs/"], "proj/jobs", "proj"),  # the README's layout, before any marker or outputs/ exists
    (["outputs/", "proj/jobs/"], "proj/jobs", "proj"),  # an outputs/ above a new project's jobs/ is not its own
    (["outputs/", "proj/jobs/team/"], "proj/jobs/team", "proj"),
    (["proj/specs/"], "proj/specs", "proj/specs"),  # nothing to go by: the spec's own folder
    (["proj/outputs/", "proj/specs/"], "proj", "proj"),
    (["top/pyproject.toml", "top/a/b/c/"], "top/a/b/c", "top/a/b/c"),  # three levels up is too far
])
def test_the_project_folder_is_the_nearest_above_the_spec_with_a_marker(tmp_path, layout, spec_folder, base):
    folders(tmp_path, *layout)
    assert project_base(tmp_path / spec_folder, home=tmp_path / "home") == tmp_path / base


def test_the_home_folder_is_never_the_project_though_it_holds_a_dotfiles_repository(tmp_path):
    folders(tmp_path, "home/.git/", "home/work/specs/")
    assert project_base(tmp_path / "home" / "work" / "specs", home=tmp_path / "home") == tmp_path / "home/work/specs"


def test_the_output_folder_does_not_depend_on_the_current_folder(tmp_path):
    folders(tmp_path, "proj/pyproject.toml", "proj/jobs/", "elsewhere/")
    found = {resolve_output_dir(tmp_path / "proj/jobs", None, "demo", None, tmp_path / cwd)
             for cwd in ("proj", "proj/jobs", "elsewhere")}
    assert found == {tmp_path / "proj/outputs/demo"}


def test_a_relative_output_dir_resolves_against_the_project_and_an_absolute_one_stays(tmp_path):
    folders(tmp_path, "proj/pyproject.toml", "proj/jobs/")
    spec_folder, cwd = tmp_path / "proj/jobs", tmp_path / "elsewhere"
    assert resolve_output_dir(spec_folder, "runs/mugs", "m", None, cwd) == tmp_path / "proj/runs/mugs"
    assert resolve_output_dir(spec_folder, "/srv/out/mugs", "m", None, cwd) == Path("/srv/out/mugs")


def test_an_override_takes_the_place_of_outputs_relative_to_the_current_folder(tmp_path):
    spec_folder = tmp_path / "proj/jobs"
    assert resolve_output_dir(spec_folder, None, "demo", "/data/br", tmp_path) == Path("/data/br/demo")
    assert resolve_output_dir(spec_folder, "outputs/mugs-x", "m", "store", tmp_path) == tmp_path / "store/mugs-x"


def test_the_flag_beats_the_environment_and_an_empty_variable_counts_as_unset():
    assert output_override("a", {"BATCHRUN_OUTPUT_DIR": "b"}) == "a"
    assert output_override(None, {"BATCHRUN_OUTPUT_DIR": "b"}) == "b"
    assert output_override(None, {"BATCHRUN_OUTPUT_DIR": ""}) is None
    assert output_override(None, {}) is None


def test_a_path_inside_the_current_folder_is_shown_relative_and_one_outside_absolute(tmp_path):
    assert shown_path(tmp_path / "outputs/demo", tmp_path) == Path("outputs/demo")
    assert shown_path(tmp_path / "outputs/demo", tmp_path / "jobs") == tmp_path / "outputs/demo"


def test_output_left_in_the_current_folder_by_0_5_is_pointed_at_in_one_line(tmp_path):
    folders(tmp_path, "old/outputs/demo/manifest.parquet")
    earlier = earlier_output(None, "demo", tmp_path / "old")
    with pytest.raises(UsageError) as moved:
        check_moved_output(tmp_path / "proj/outputs/demo", earlier)
    message = str(moved.value)
    assert moved.value.exit_code == EXIT_USAGE and "\n" not in message
    assert f"this job's output is in {tmp_path}/old/outputs/demo" in message
    assert f"batchrun now keeps it in {tmp_path}/proj/outputs/demo" in message
    assert f"mv {tmp_path}/old/outputs/demo {tmp_path}/proj/outputs/demo" in message
    assert message.endswith(f"--output-dir {tmp_path}/old/outputs (or BATCHRUN_OUTPUT_DIR={tmp_path}/old/outputs)")


def test_no_pointer_when_the_new_folder_has_a_manifest_or_the_old_one_has_none(tmp_path):
    folders(tmp_path, "old/outputs/demo/manifest.parquet", "proj/outputs/demo/manifest.parquet", "bare/outputs/demo/")
    check_moved_output(tmp_path / "proj/outputs/demo", tmp_path / "old/outputs/demo")
    check_moved_output(tmp_path / "new/outputs/demo", tmp_path / "bare/outputs/demo")
    check_moved_output(tmp_path / "old/outputs/demo", tmp_path / "old/outputs/demo")


def test_the_demo_job_writes_outputs_demo_at_the_projects_top_from_any_folder(tmp_path, monkeypatch):
    from batchrun.planning.spec import load_spec

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.delenv("BATCHRUN_OUTPUT_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert load_spec(repo / "jobs" / "demo.yaml").output_dir == repo / "outputs" / "demo"
    monkeypatch.chdir(repo)
    assert load_spec("jobs/demo.yaml").output_dir == Path("outputs/demo")
