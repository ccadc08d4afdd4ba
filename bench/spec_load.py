"""Spec load: a generated spec with 20,000 inline rows, read by the old loader and the new one.

    python bench/spec_load.py               # 20,000 rows (about 1 MB), 3 runs
    python bench/spec_load.py --rows 200    # a smoke run

In one process, interleaved run by run: the loader batchrun had before (PyYAML's pure-Python parser,
the document parsed twice, a duplicate-key walk that built a path string for every node) and
`batchrun.planning.yamlload.load_yaml` on each parser this machine has (libyaml's, and the pure-Python
fallback). Then, as child processes: `batchrun plan` and `batchrun status` on the same spec, and
`batchrun --help` for the interpreter's and the CLI's own start. Prints the medians, wall and CPU
seconds (CPU: less disturbed by other work on a shared machine), and the old loader's time over the
new one's, as one JSON line.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import harness
import yaml

from batchrun.planning.spec import load_spec
from batchrun.planning.yamlload import LOADERS, load_yaml


def write_spec(path: Path, rows: int) -> None:
    lines = ["name: bench-spec-load", "provider: {kind: simulator}", "model: gemini-3-flash-preview",
             f"output: {{dir: {path.parent.as_posix()}/out-{rows}}}", "inputs:", "  rows:"]
    # an "&" in every title: the alias check then walks the document, as for any spec with one
    lines += [f"    - {{sku: S{i:05d}, title: Mug & lid {i}, color: red}}" for i in range(rows)]
    lines += ["request:", "  prompt: 'Describe the {{ title }} in {{ color }}.'"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# --------------------------------------------------------------------- the loader before this change

_OLD_INT = re.compile(r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+)$""", re.X)


class OldSpecLoader(yaml.SafeLoader):
    pass


OldSpecLoader.yaml_implicit_resolvers = {
    first: [(tag, _OLD_INT if tag == "tag:yaml.org,2002:int" else pattern) for tag, pattern in resolvers]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _old_find_duplicate(node: yaml.Node, path: str) -> tuple[str, str, int] | None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = f"{path}.{key}" if path else key
            if key in seen:
                return path, key, key_node.start_mark.line + 1
            seen.add(key)
            found = _old_find_duplicate(value_node, child)
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found = _old_find_duplicate(item, f"{path}[{index}]")
            if found:
                return found
    return None


def old_load_yaml(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    root = yaml.compose(text, Loader=OldSpecLoader)
    if root is not None and _old_find_duplicate(root, ""):
        raise ValueError("duplicate key")
    return yaml.load(text, Loader=OldSpecLoader)  # noqa: S506 - a SafeLoader


# ------------------------------------------------------------------------------------------ timing


def timed(load: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall and CPU seconds of one call, after a full collection so that each starts alike."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    value = load()
    return time.perf_counter() - wall, time.process_time() - cpu, value


def cli_seconds(*args: str) -> tuple[float, float]:
    """Wall seconds from spawn to exit of `batchrun ARGS`, and its CPU seconds (user + system)."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "batchrun", "-q", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"batchrun {' '.join(args)} failed: {stderr.strip()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def loaders(spec: Path) -> dict[str, Callable[[], Any]]:
    found = {"old": lambda: old_load_yaml(spec)}
    for name, loader in LOADERS.items():
        found[f"new_{name}"] = lambda loader=loader: load_yaml(spec, loader=loader)
    found["load_spec"] = lambda: load_spec(spec)
    return found


def measure_loads(spec: Path, runs: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    walls: dict[str, list[float]] = {}
    cpus: dict[str, list[float]] = {}
    expected = None
    for _ in range(runs):
        for name, load in loaders(spec).items():
            wall, cpu, value = timed(load)
            walls.setdefault(name, []).append(wall)
            cpus.setdefault(name, []).append(cpu)
            if name != "load_spec":
                expected = value if expected is None else expected
                if value != expected:
                    raise RuntimeError(f"{name} read the spec differently from the old loader")
    return walls, cpus


def measure_cli(spec: Path, runs: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    walls: dict[str, list[float]] = {}
    cpus: dict[str, list[float]] = {}
    for _ in range(runs):
        for name, args in (("plan", ["plan", str(spec)]), ("status", ["status", str(spec)]), ("help", ["--help"])):
            wall, cpu = cli_seconds(*args)
            walls.setdefault(name, []).append(wall)
            cpus.setdefault(name, []).append(cpu)
    return walls, cpus


def medians(samples: dict[str, list[float]]) -> dict[str, float]:
    return {name: round(harness.median(values), 3) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    work = harness.work_dir(args.work)
    work.mkdir(parents=True, exist_ok=True)
    spec = work / f"spec-load-{args.rows}.yaml"
    write_spec(spec, args.rows)
    walls, cpus = measure_loads(spec, args.runs)
    wall, cpu = medians(walls), medians(cpus)
    new = "new_c" if "new_c" in wall else "new_pure"
    cli_walls, cli_cpus = measure_cli(spec, args.runs)
    harness.report("spec_load", {
        "rows": args.rows, "spec_bytes": spec.stat().st_size, "runs": args.runs, "libyaml": "c" in LOADERS,
        "load_s": wall, "load_cpu_s": cpu,
        "old_over_new": round(wall["old"] / wall[new], 2), "old_over_new_cpu": round(cpu["old"] / cpu[new], 2),
        "cli_s": medians(cli_walls), "cli_cpu_s": medians(cli_cpus),
    })


if __name__ == "__main__":
    main()
