"""Move batchrun's modules into a folder per stage of the data flow, and rewrite every reference to them.

Run once from the repository root on a clean work tree, after the merge, then delete this script:

    python tools/restructure.py            # moves with `git mv`, rewrites, prints what it did
    python tools/restructure.py --dry-run  # prints the plan only

Input: the MOVES table below (old dotted module -> new dotted module; a package name stands for its
`__init__.py`). Output: the moved files (`git mv`), a new `__init__.py` for each new stage folder, and
rewritten references in batchrun/, tests/, bench/, tools/, .ci/, pyproject.toml and every *.md file.

Invariants:
- An entry whose source doesn't exist is skipped and said so (other branches rename modules too);
  an entry whose destination already exists is refused and said so, never overwritten.
- Every module under batchrun/ that the table doesn't place (nor KEEP, nor a package kept as a whole)
  is printed, so a module added meanwhile is not left behind silently.
- A relative import inside batchrun/ becomes absolute (resolved against where the file was) when the
  importing module or the imported one moves; one between two modules that stay is left alone. Then
  every dotted name `batchrun.a.b[.attr]` is rewritten by its longest moved prefix: imports, string
  references (monkeypatch targets, logger names, `-m batchrun.simulator`) and prose alike.
- `from batchrun.pkg import a, b` is split when `a` and `b` moved to different packages.
- Paths `batchrun/a/b.py` and `batchrun/pkg/` in text are rewritten the same way; import blocks are
  re-sorted with `ruff check --select I --fix` when ruff is installed.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

# old dotted module -> new dotted module
MOVES: dict[str, str] = {
    # planning: from the spec on disk to the manifest of requests
    "batchrun.spec": "batchrun.planning.spec",
    "batchrun.checks": "batchrun.planning.checks",
    "batchrun.yamlload": "batchrun.planning.yamlload",
    "batchrun.templates": "batchrun.planning.templates",
    "batchrun.inputs": "batchrun.planning.inputs",
    "batchrun.inputimages": "batchrun.planning.inputimages",
    "batchrun.expand": "batchrun.planning.expand",
    "batchrun.expansion": "batchrun.planning.expansion",
    "batchrun.render": "batchrun.planning.render",
    "batchrun.rendering": "batchrun.planning.rendering",
    "batchrun.dedupe": "batchrun.planning.dedupe",
    "batchrun.imageproblems": "batchrun.planning.imageproblems",
    "batchrun.manifest": "batchrun.planning.manifest",
    "batchrun.plan": "batchrun.planning.plan",
    "batchrun.identity": "batchrun.planning.identity",
    "batchrun.sharing": "batchrun.planning.sharing",
    "batchrun.templatesyntax": "batchrun.planning.templatesyntax",
    "batchrun.imagenames": "batchrun.planning.imagenames",
    # running: the pool and what paces it, and the HTTP client it sends through
    "batchrun.runner": "batchrun.running",
    "batchrun.runner.pool": "batchrun.running.pool",
    "batchrun.runner.limiter": "batchrun.running.limiter",
    "batchrun.runner.adaptive": "batchrun.running.adaptive",
    "batchrun.runner.retry": "batchrun.running.retry",
    "batchrun.runner.clock": "batchrun.running.clock",
    "batchrun.runner.pending": "batchrun.running.pending",
    "batchrun.runner.inputbytes": "batchrun.running.inputbytes",
    "batchrun.runner.saving": "batchrun.running.saving",
    "batchrun.runner.writeerrors": "batchrun.running.writeerrors",
    "batchrun.runner.hooks": "batchrun.running.hooks",
    "batchrun.runner.options": "batchrun.running.options",
    "batchrun.runner.account": "batchrun.running.account",
    "batchrun.runner.probe": "batchrun.running.probe",
    "batchrun.http": "batchrun.running.http",
    # the command-level code that wires one run stays at the top, next to cli
    # output: what a run leaves on disk, and reading it back
    "batchrun.sink": "batchrun.output.sink",
    "batchrun.results": "batchrun.output.results",
    "batchrun.journal": "batchrun.output.journal",
    "batchrun.outputimages": "batchrun.output.images",
    "batchrun.lock": "batchrun.output.lock",
    "batchrun.status": "batchrun.output.status",
    "batchrun.live": "batchrun.output.live",
    "batchrun.progress": "batchrun.output.progress",
    "batchrun.spend": "batchrun.output.spend",
    # cost: prices, token estimates, the model table and its lifecycle
    "batchrun.pricing": "batchrun.cost.pricing",
    "batchrun.tokens": "batchrun.cost.tokens",
    "batchrun.estimate": "batchrun.cost.estimate",
    "batchrun.models": "batchrun.cost.modeltable",
    "batchrun.modeltable": "batchrun.cost.modeltable",
    "batchrun.lifecycle": "batchrun.cost.lifecycle",
}

# modules that stay where they are (not reported as unplaced): the CLI, the module wiring a run, and the
# vocabulary every stage shares (records and outcomes flow between the stages, errors are raised by all)
KEEP: set[str] = {"batchrun", "batchrun.__main__", "batchrun.cli", "batchrun.jobrun", "batchrun.errors",
                  "batchrun.records", "batchrun.outcomes",
                  "batchrun.options", "batchrun.rendered"}

# packages kept as a whole, with everything under them
KEEP_PACKAGES: set[str] = {"batchrun.providers", "batchrun.simulator"}

# the one-line docstring of each new stage folder's __init__.py
STAGE_DOCS: dict[str, str] = {
    "batchrun.planning": "Planning: the spec loaded and checked, inputs and templates expanded into the manifest.",
    "batchrun.running": "Running: worker pool, rate limiter, retry policy, the clock they share, and HTTP.",
    "batchrun.output": "Output: what a run writes (sink, journal, image files, lock) and reads back (results, status).",
    "batchrun.cost": "Cost: prices, token estimates, the estimate of a job, the model table and its lifecycle.",
}

REWRITE_GLOBS = ("batchrun/**/*.py", "tests/**/*.py", "bench/**/*.py", "tools/**/*.py", "**/*.md",
                 "pyproject.toml", ".ci/*")
DOTTED = re.compile(r"(?<![\w.])batchrun(?:\.\w+)+")
PATH = re.compile(r"(?<![\w./])batchrun(?:/\w+)+(?:\.py|/)")
RELATIVE = re.compile(r"^([ \t]*from\s+)(\.+)(\w+(?:\.\w+)*)?(\s+import\b)", re.MULTILINE)
FROM_IMPORT = re.compile(r"^([ \t]*)from[ \t]+(batchrun(?:\.\w+)*)[ \t]+import[ \t]+"
                         r"(?:([\w ,]+?)[ \t]*$|\(([\w\s,#]+?)\))", re.MULTILINE)
MAX_LINE = 120
ROOT = Path(__file__).resolve().parents[1]


def module_path(module: str, root: Path = ROOT) -> Path | None:
    """The file of a dotted module (a package stands for its __init__.py), if it exists."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def target_path(module: str, is_package: bool, root: Path = ROOT) -> Path:
    base = root.joinpath(*module.split("."))
    return base / "__init__.py" if is_package else base.with_suffix(".py")


def module_of(path: Path, root: Path = ROOT) -> str:
    """The dotted module of a file under root."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def plan_moves(root: Path = ROOT) -> tuple[dict[str, str], list[tuple[Path, Path]]]:
    """The entries that apply (source exists, destination free) and their file moves; the others said."""
    applied: dict[str, str] = {}
    files: list[tuple[Path, Path]] = []
    for old, new in MOVES.items():
        source = module_path(old, root)
        if source is None:
            print(f"skip {old}: no such module")
            continue
        target = target_path(new, source.name == "__init__.py", root)
        if target.exists() or any(t == target for _, t in files):
            print(f"refuse {old} -> {new}: {target.relative_to(root)} already exists; place it by hand")
            continue
        applied[old] = new
        files.append((source, target))
    return applied, files


def unplaced(applied: dict[str, str], root: Path = ROOT) -> list[str]:
    """Modules under batchrun/ that no applied entry moves and that aren't kept on purpose."""
    out = []
    for path in sorted((root / "batchrun").rglob("*.py")):
        module = module_of(path, root)
        kept = module in KEEP or any(module == p or module.startswith(p + ".") for p in KEEP_PACKAGES)
        if module not in applied and not kept:
            out.append(module)
    return out


def absolute_imports(text: str, module: str, is_package: bool, mapping: dict[str, str]) -> str:
    """`from .x import y` in `module` as `from batchrun.pkg.x import y`, where `module` or `x` moves
    (a relative import between modules that both stay is left alone)."""
    package = module.split(".") if is_package else module.split(".")[:-1]

    def absolute(match: re.Match[str]) -> str:
        up = len(match[2]) - 1
        base = package[: len(package) - up] if up else package
        target = ".".join(base + ([match[3]] if match[3] else []))
        if match[3] is None:
            moves = _imports_moved_module(match, target, mapping)
        else:
            moves = renamed(target, mapping) != target
        return f"{match[1]}{target}{match[4]}" if moves or module in mapping else match[0]

    return RELATIVE.sub(absolute, text)


def _imports_moved_module(match: re.Match[str], package: str, mapping: dict[str, str]) -> bool:
    """Whether `from . import a, b` names a module that moves."""
    rest = match.string[match.end():].split("\n", 1)[0]
    names = re.findall(r"\w+", rest.split(" as ")[0])
    return any(f"{package}.{name}" in mapping for name in names)


def renamed(dotted: str, mapping: dict[str, str]) -> str:
    """`dotted` with its longest moved prefix replaced."""
    parts = dotted.split(".")
    for end in range(len(parts), 1, -1):
        prefix = ".".join(parts[:end])
        if prefix in mapping:
            return ".".join([mapping[prefix], *parts[end:]])
    return dotted


def split_from_imports(text: str, mapping: dict[str, str]) -> str:
    """`from batchrun.pkg import a, b`: each name that is a moved module imported from its new package."""

    def rewrite(match: re.Match[str]) -> str:
        indent, package = match[1], match[2]
        names = [n.strip() for n in (match[3] or match[4]).split(",") if n.strip()]
        groups: dict[str, list[str]] = {}
        for name in names:
            bare, _, alias = (part.strip() for part in name.partition(" as "))
            if f"{package}.{bare}" in mapping:
                new_package, new_name = mapping[f"{package}.{bare}"].rsplit(".", 1)
                shown = new_name if new_name == bare and not alias else f"{new_name} as {alias or bare}"
                groups.setdefault(new_package, []).append(shown)
            else:
                groups.setdefault(renamed(package, mapping), []).append(name)
        if match[4] is not None and len(groups) == 1:  # keep a parenthesized list's layout
            (new_package,) = groups
            return match[0].replace(package, new_package, 1) if new_package != package else match[0]
        lines = [f"{indent}from {pkg} import {', '.join(group)}" for pkg, group in groups.items()]
        if lines == [match[0]]:
            return match[0]
        return "\n".join(_wrapped(line, indent) for line in lines)

    return FROM_IMPORT.sub(rewrite, text)


def _wrapped(line: str, indent: str) -> str:
    """A from-import longer than MAX_LINE as a parenthesized list, one continuation line per fit."""
    if len(line) <= MAX_LINE:
        return line
    head, names = line.split(" import ", 1)
    out, current = [f"{head} import ("], f"{indent}    "
    for name in names.split(", "):
        if len(current) + len(name) + 2 > MAX_LINE and current.strip():
            out.append(current.rstrip())
            current = f"{indent}    "
        current += f"{name}, "
    out.append(current.rstrip())
    return "\n".join(out) + f"\n{indent})"


def path_mapping(mapping: dict[str, str]) -> dict[str, str]:
    """File and folder paths of each move: batchrun/a.py -> batchrun/b/a.py, batchrun/pkg/ -> batchrun/new/."""
    out = {}
    for old, new in mapping.items():
        out[old.replace(".", "/") + ".py"] = new.replace(".", "/") + ".py"
        out[old.replace(".", "/") + "/"] = new.replace(".", "/") + "/"
    return out


def rewrite_text(text: str, mapping: dict[str, str]) -> str:
    """Every reference to a moved module in `text`, rewritten."""
    text = split_from_imports(text, mapping)
    text = DOTTED.sub(lambda m: renamed(m[0], mapping), text)
    paths = path_mapping(mapping)

    def path(match: re.Match[str]) -> str:
        found = match[0]
        for old in sorted(paths, key=len, reverse=True):
            if found == old or (old.endswith("/") and found.startswith(old)):
                return paths[old] + found[len(old):]
        return found

    return PATH.sub(path, text)


def files_to_rewrite(root: Path = ROOT) -> list[Path]:
    seen: set[Path] = set()
    for pattern in REWRITE_GLOBS:
        for path in root.glob(pattern):
            if path.is_file() and ".git" not in path.parts and "__pycache__" not in path.parts:
                seen.add(path)
    return sorted(seen)


def git(*args: str, root: Path = ROOT) -> None:
    subprocess.run(["git", *args], cwd=root, check=True)


def new_stage_packages(mapping: dict[str, str], root: Path = ROOT) -> list[Path]:
    """The __init__.py each new folder needs (one that no move brings), with its docstring."""
    created = []
    moved_in = {target_path(new, True, root) for old, new in mapping.items() if module_path(old, root)
                and module_path(old, root).name == "__init__.py"}
    for new in sorted(set(mapping.values())):
        package = new.rsplit(".", 1)[0]
        init = target_path(package, True, root)
        if package != "batchrun" and init not in moved_in and not init.exists() and init not in created:
            doc = STAGE_DOCS.get(package, f"{package.rsplit('.', 1)[1].capitalize()}.")
            init.parent.mkdir(parents=True, exist_ok=True)
            init.write_text(f'"""{doc}"""\n')
            created.append(init)
    return created


def remove_emptied_folders(root: Path = ROOT) -> None:
    """Folders under batchrun/ left with nothing but __pycache__ (a stale namespace package otherwise)."""
    for folder in sorted((root / "batchrun").rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if folder.is_dir() and folder.name != "__pycache__" and not any(folder.rglob("*.py")) \
                and not any(p.is_file() and "__pycache__" not in p.parts for p in folder.rglob("*")):
            shutil.rmtree(folder)


def sort_imports(root: Path = ROOT) -> None:
    """Re-sort import blocks whose module names changed, when ruff is at hand (its isort rule only)."""
    ruff = shutil.which("ruff")
    if ruff is None:
        print("ruff not found: import blocks keep their old order (run `ruff check --select I --fix`)")
        return
    subprocess.run([ruff, "check", "--select", "I", "--fix", "--quiet", "batchrun", "tests", "bench"], cwd=root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    args = parser.parse_args(argv)
    mapping, moves = plan_moves()
    for module in unplaced(mapping):
        print(f"unplaced: {module} (add it to MOVES or KEEP)")
    for source, target in moves:
        print(f"move {source.relative_to(ROOT)} -> {target.relative_to(ROOT)}")
    if args.dry_run:
        return 0
    for path in (ROOT / "batchrun").rglob("*.py"):
        text = path.read_text()
        fixed = absolute_imports(text, module_of(path), path.name == "__init__.py", mapping)
        if fixed != text:
            path.write_text(fixed)
    created = new_stage_packages(mapping)
    for source, target in moves:
        target.parent.mkdir(parents=True, exist_ok=True)
        git("mv", str(source.relative_to(ROOT)), str(target.relative_to(ROOT)))
    if created:
        git("add", *(str(p.relative_to(ROOT)) for p in created))
    remove_emptied_folders()
    changed = 0
    for path in files_to_rewrite():
        if path.resolve() == Path(__file__).resolve():
            continue
        text = path.read_text()
        fixed = rewrite_text(text, mapping)
        if fixed != text:
            path.write_text(fixed)
            changed += 1
    print(f"moved {len(moves)} modules, created {len(created)} packages, rewrote {changed} files")
    sort_imports()
    return 0


if __name__ == "__main__":
    sys.exit(main())
