"""Where a job's output folder is: one answer from any current folder, so cron and a shell agree.

Input: the spec's folder, its `output.dir` (or none), its name, an override (`--output-dir` or
`BATCHRUN_OUTPUT_DIR`) and the current folder. Output: the output folder, relative to the current folder
when it lies inside it (messages stay short), else absolute.

Invariants: the current folder never decides where the output goes, only how its path is shown.
The base a relative `output.dir` (default `outputs/NAME`) resolves against is the project folder: the
first of the spec's folder, its parent and its grandparent holding an `outputs/` folder or a project
marker (`batchrun.toml`, `pyproject.toml`, `.git`), stopping at a folder named `jobs`, whose parent is
then the project (a new project's `jobs/` has no marker yet, and an `outputs/` folder above it belongs to
someone else); else the spec's own folder. The walk goes no higher, and never takes the file system's
root or the home folder: an `outputs/` folder far above the spec, or a dotfiles repository in the home
folder, never captures a job.
An override takes the place of the `outputs/` folder: the job's folder is OVERRIDE/NAME.
A location in a bucket (`s3://bucket/prefix`, `gs://…`, as `output.dir` or as the override) is kept as a
URI: `batchrun.output.mirror` gives it a local staging folder, which is then the output folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from batchrun.errors import UsageError

OUTPUT_ENV = "BATCHRUN_OUTPUT_DIR"
MARKERS = ("batchrun.toml", "pyproject.toml", ".git")
LEVELS_UP = 2  # the spec's folder, its parent and its grandparent: jobs/NAME.yaml and jobs/TEAM/NAME.yaml
MANIFEST = "manifest.parquet"
REMOTE_SCHEMES = ("s3://", "gs://")
JOBS_FOLDER = "jobs"  # the layout the README shows: PROJECT/jobs/NAME.yaml writes PROJECT/outputs/NAME


def project_base(spec_folder: Path, home: Path | None = None) -> Path:
    """The folder a relative `output.dir` resolves against (see the module docstring)."""
    home = Path.home() if home is None else home
    for folder in [spec_folder, *spec_folder.parents][: LEVELS_UP + 1]:
        if folder.parent == folder or folder == home:  # the root or the home folder is nobody's project
            break
        if (folder / "outputs").is_dir() or any((folder / marker).exists() for marker in MARKERS):
            return folder
        if folder.name == JOBS_FOLDER:  # PROJECT/jobs/...: the project, though it has no marker yet
            return folder.parent
    return spec_folder


def is_remote(location: str | os.PathLike[str] | None) -> bool:
    """Whether `location` names object storage (`s3://…`, `gs://…`) rather than a local folder."""
    return isinstance(location, str) and location.startswith(REMOTE_SCHEMES)


def join_location(base: str, name: str) -> str:
    """`base`/`name` for a URI (a Path would fold `s3://` into `s3:/`)."""
    return f"{base.rstrip('/')}/{name}"


def location_name(location: str) -> str:
    """The last part of a URI: `s3://bucket/team/job` → `job`."""
    return location.rstrip("/").rsplit("/", 1)[-1]


def remote_location(configured: str | None, name: str, override: str | None) -> str | None:
    """The job's location in a bucket, if `output.dir` or the override names one; else None (a local folder)."""
    if override:
        return join_location(override, job_folder_name(configured, name)) if is_remote(override) else None
    return configured.rstrip("/") if configured and is_remote(configured) else None


def job_folder_name(configured: str | None, name: str) -> str:
    """The last part of `output.dir`, else the spec's name: the job's folder under an override."""
    if configured and is_remote(configured):
        return location_name(configured)
    return Path(configured).name if configured else name


def resolve_output_dir(spec_folder: Path, configured: str | None, name: str, override: str | None,
                       cwd: Path) -> Path:
    """The job's output folder, absolute (see the module docstring)."""
    if override:
        return (cwd / Path(override).expanduser() / job_folder_name(configured, name)).resolve()
    relative = Path(configured).expanduser() if configured else Path("outputs") / name
    return (project_base(spec_folder) / relative).resolve()


def shown_path(path: Path, cwd: Path) -> Path:
    """`path` relative to `cwd` when inside it (`outputs/demo`), else as is."""
    try:
        return path.relative_to(cwd)
    except ValueError:
        return path


def earlier_output(configured: str | None, name: str, cwd: Path) -> Path:
    """Where batchrun 0.5 put the output: `output.dir` (default `outputs/NAME`) from the current folder."""
    return (cwd / (configured or f"outputs/{name}")).resolve()


def check_moved_output(resolved: Path, earlier: Path) -> None:
    """UsageError when the output of an earlier version's run from this folder is not where it now goes."""
    if earlier == resolved or not (earlier / MANIFEST).is_file() or (resolved / MANIFEST).exists():
        return
    raise UsageError(moved_output_message(earlier, resolved))


def moved_output_message(earlier: Path, resolved: Path) -> str:
    return (f"this job's output is in {earlier} (found from the current folder, as batchrun 0.5 did), but "
            f"batchrun now keeps it in {resolved} (from the spec's project folder, whatever the current folder); "
            f"move it there (mkdir -p {resolved.parent} && mv {earlier} {resolved}) "
            f"or point at its folder with --output-dir {earlier.parent} "
            f"(or {OUTPUT_ENV}={earlier.parent})")


def output_override(flag: str | Path | None, environ: os._Environ[str] | dict[str, str]) -> str | None:
    """`--output-dir` if given, else `BATCHRUN_OUTPUT_DIR` if set and not empty."""
    return str(flag) if flag else (environ.get(OUTPUT_ENV) or None)
