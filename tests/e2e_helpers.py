"""Helpers of the end-to-end tests: the simulator as a real server, job specs, the CLI as a subprocess.

Every wait is bounded and waits on something observable: the simulator's listening line, a CLI run,
a line of its progress output, a number of durable results or of logged requests. None waits on the
wall clock alone, so a loaded machine makes a test slower, never wrong.
Specs are written into the test's tmp_path (the CLI runs with that folder as its working directory,
so `outputs/NAME` lands there too) and point at the simulator by `provider.base_url`.
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from batchrun.output.journal import read_journal
from batchrun.output.sink import list_parts, read_parts, rows_to_table
from batchrun.planning.manifest import batch_to_records
from batchrun.providers.gemini import GeminiProvider
from batchrun.providers.openai import OpenAIProvider
from batchrun.simulator.requestlog import read_request_log
from batchrun.tiers import Tier

REPO = Path(__file__).resolve().parents[1]
E2E_JOBS = Path(__file__).resolve().parent / "e2e_jobs"
PHOTOS = REPO / "jobs" / "data" / "photos"
KEY_ENV = "BATCHRUN_E2E_KEY"
FAKE_KEY = "test-key-e2e-7f3a9c-LEAKCHECK"
STARTUP_TIMEOUT_S = 30.0
RUN_TIMEOUT_S = 90.0
POLL_S = 0.05
LISTENING = re.compile(r"batchrun simulator listening on (http://127\.0\.0\.1:\d+)")


# ---------------------------------------------------------------- the simulator server


class LineReader:
    """Reads a pipe's lines on a thread, so a test can wait for one with a timeout."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream) -> None:
        with stream:
            for line in iter(stream.readline, ""):
                self.lines.append(line)
                self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: re.Pattern[str], timeout_s: float) -> re.Match[str]:
        """The first line from now on matching `pattern`; AssertionError on timeout or end of stream."""
        while True:
            try:
                line = self._queue.get(timeout=timeout_s)
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern.pattern!r} within {timeout_s}s") from None
            if line is None:
                raise AssertionError(f"stream ended before a line matching {pattern.pattern!r}")
            match = pattern.search(line)
            if match:
                return match

    def text(self) -> str:
        """Every line read, once the stream has ended (bounded wait)."""
        self._thread.join(timeout=STARTUP_TIMEOUT_S)
        return "".join(self.lines)


@dataclass
class Simulator:
    """A running `batchrun simulate` subprocess."""

    url: str
    request_log: Path
    process: subprocess.Popen

    def requests(self) -> list[dict]:
        """Every request line the simulator logged so far."""
        return read_request_log(self.request_log) if self.request_log.exists() else []

    def stop(self) -> None:
        """SIGTERM, and wait for it to end (its stdout is closed by the reader at end of stream)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STARTUP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STARTUP_TIMEOUT_S)


def start_simulator(folder: Path, *, profile: str | None = None, faults: Path | None = None,
                    seed: int = 1) -> Simulator:
    """Start the simulator on a free port of 127.0.0.1, logging every request it receives."""
    log_path = folder / f"requests-{seed}-{profile or Path(str(faults)).stem}.jsonl"
    command = [sys.executable, "-m", "batchrun", "simulate", "--port", "0", "--seed", str(seed),
               "--request-log", str(log_path)]
    command += ["--profile", profile] if profile else ["--faults", str(faults)]
    process = subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, env=_clean_env())
    reader = LineReader(process.stdout)
    try:
        url = reader.wait_for(LISTENING, STARTUP_TIMEOUT_S).group(1)
    except AssertionError:
        process.kill()
        process.wait(timeout=STARTUP_TIMEOUT_S)
        raise
    return Simulator(url, log_path, process)


@pytest.fixture
def serve(tmp_path):
    """A function starting simulators in tmp_path (faults: a file of e2e_jobs/); all stopped at the end."""
    started: list[Simulator] = []

    def start(*, profile: str | None = None, faults: str | None = None, seed: int = 1) -> Simulator:
        simulator = start_simulator(tmp_path, profile=profile, faults=E2E_JOBS / faults if faults else None,
                                    seed=seed)
        started.append(simulator)
        return simulator

    yield start
    for simulator in started:
        simulator.stop()


# ---------------------------------------------------------------- job specs


def text_job(name: str, url: str, rows: int, **overrides: Any) -> dict[str, Any]:
    """A text job of `rows` distinct requests to gemini-3-flash-preview at `url`."""
    spec = {
        "name": name,
        "provider": {"kind": "gemini", "base_url": url, "api_key_env": KEY_ENV},
        "model": "gemini-3-flash-preview",
        "inputs": {"rows": [{"n": i, "topic": f"topic {i}"} for i in range(rows)]},
        "request": {
            "prompt": "Write one line about {{ topic }}, number {{ n }}.",
            "generation_config": {"maxOutputTokens": 1024},  # room for thinking (64-574) and text
        },
        "limits": {"concurrency": 8, "timeout_s": 10, "requests_per_minute": 100_000},
        "retry": {"max_attempts": 6, "initial_s": 0.02, "max_wait_s": 0.2},
    }
    return merge(spec, overrides)


SCENES = ("kitchen counter", "picnic table", "marble shelf", "garden bench")


def image_job(name: str, url: str, folder: Path, *, photos: int = 4, scenes: int = 2, size: str = "512",
              **overrides: Any) -> dict[str, Any]:
    """An image job: `photos` product photos (copied to `folder`/jobs/photos) x `scenes` scenes, at `size`."""
    (folder / "jobs" / "photos").mkdir(parents=True, exist_ok=True)
    rows = []
    for path in sorted(PHOTOS.glob("*.png"))[:photos]:
        (folder / "jobs" / "photos" / path.name).write_bytes(path.read_bytes())
        rows.append({"sku": path.stem, "photo": f"photos/{path.name}"})
    spec = {
        "name": name,
        "provider": {"kind": "gemini", "base_url": url, "api_key_env": KEY_ENV},
        "model": "gemini-3.1-flash-image",
        "inputs": {"rows": rows},
        "matrix": {"scene": list(SCENES[:scenes])},
        "request": {
            "prompt": "Photograph the product {{ sku }} shown in the photo on a {{ scene }}.",
            "images": ["{{ photo }}"],
            "generation_config": {"responseModalities": ["IMAGE"],
                                  "imageConfig": {"aspectRatio": "1:1", "imageSize": size}},
        },
        "limits": {"concurrency": 4, "timeout_s": 10, "requests_per_minute": 100_000},
        "retry": {"max_attempts": 6, "initial_s": 0.02, "max_wait_s": 0.2},
        "output": {"image_name": "{{ sku }}/{{ scene | slug }}"},
    }
    return merge(spec, overrides)


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` merged in, mapping by mapping (None removes a key)."""
    out = dict(base)
    for key, value in overrides.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def write_spec(folder: Path, spec: dict[str, Any]) -> Path:
    """Write a spec as jobs/NAME.yaml under `folder`; return its path relative to `folder`."""
    (folder / "jobs").mkdir(exist_ok=True)
    path = Path("jobs") / f"{spec['name']}.yaml"
    (folder / path).write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def write_faults(folder: Path, name: str, faults: dict[str, Any]) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(faults, sort_keys=False))
    return path


# ---------------------------------------------------------------- the CLI


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI", "GOOGLE", "COMETAPI"))}
    env.pop(KEY_ENV, None)
    env.pop("BATCHRUN_OUTPUT_DIR", None)  # a developer's own would move every test's output folder
    env["PYTHONUNBUFFERED"] = "1"
    return {**env, **extra}


def cli_env(key: str | None = FAKE_KEY, **extra: str) -> dict[str, str]:
    """The environment of a CLI run: the fake key (if any) and nothing of the developer's own keys."""
    return _clean_env(**({KEY_ENV: key} if key else {}), **extra)


def batchrun(folder: Path, *args: str, key: str | None = FAKE_KEY, timeout_s: float = RUN_TIMEOUT_S,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `python -m batchrun ARGS` in `folder` to its end."""
    return subprocess.run([sys.executable, "-m", "batchrun", *args], cwd=folder, capture_output=True,
                          text=True, timeout=timeout_s, env=env or cli_env(key))


def start_batchrun(folder: Path, *args: str, stderr: Path | None = None, key: str | None = FAKE_KEY,
                   env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `python -m batchrun ARGS` in `folder`; stderr to a file, or a pipe when none is given."""
    err = subprocess.PIPE if stderr is None else open(stderr, "w")
    try:
        return subprocess.Popen([sys.executable, "-m", "batchrun", *args], cwd=folder,
                                stdout=subprocess.DEVNULL, stderr=err, text=True, env=env or cli_env(key))
    finally:
        if stderr is not None:
            err.close()


def signal_when(process: subprocess.Popen, steps: list[tuple[re.Pattern[str], int]]) -> tuple[int, str]:
    """For each (pattern, signal): wait for a stderr line matching it, then send the signal; then wait for
    the end. Returns the exit code and the whole stderr; the process is killed if a wait fails."""
    stderr = LineReader(process.stderr)
    try:
        for pattern, number in steps:
            stderr.wait_for(pattern, RUN_TIMEOUT_S)
            process.send_signal(number)
        code = process.wait(timeout=RUN_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=RUN_TIMEOUT_S)
    return code, stderr.text()


def wait_until(condition: Callable[[], bool], process: subprocess.Popen, what: str,
               timeout_s: float = RUN_TIMEOUT_S) -> None:
    """Poll `condition` until it holds. AssertionError naming `what` if `process` ends first or on timeout
    (the process is then killed)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if process.poll() is not None:
            if condition():
                return
            raise AssertionError(f"the run ended (exit {process.returncode}) before {what}")
        if time.monotonic() > deadline:
            process.kill()
            process.wait(timeout=RUN_TIMEOUT_S)
            raise AssertionError(f"not {what} within {timeout_s}s")
        try:
            process.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            pass


def wait_for_results(folder: Path, name: str, at_least: int, process: subprocess.Popen) -> None:
    """Until job `name` has at least `at_least` durable results (results parts or journal)."""
    wait_until(lambda: durable_results(folder, name) >= at_least, process,
               f"{at_least} durable results of job {name!r}")


def wait_for_requests(simulator: Simulator, at_least: int, process: subprocess.Popen) -> None:
    """Until the simulator has logged at least `at_least` requests."""
    wait_until(lambda: len(simulator.requests()) >= at_least, process, f"{at_least} requests logged")


def run_job(folder: Path, spec: Path, *extra: str, **kwargs: Any) -> subprocess.CompletedProcess:
    """`batchrun run SPEC --progress plain EXTRA...`."""
    return batchrun(folder, "run", str(spec), "--progress", "plain", *extra, **kwargs)


# ---------------------------------------------------------------- what a run left behind


def outputs(folder: Path, name: str) -> Outputs:
    """The output folder of job `name` written by a CLI run in `folder`."""
    return Outputs(folder / "outputs" / name, folder / "jobs")


def durable_results(folder: Path, name: str) -> int:
    """How many ids of job `name` have a durable result now; safe to call while a run writes the folder
    (a file caught mid-write or deleted by a compaction counts as not there yet: poll again)."""
    if not (folder / "outputs" / name / "manifest.parquet").exists():
        return 0
    try:
        return len(outputs(folder, name).answered_ids())
    except (OSError, pa.ArrowInvalid):
        return 0


@dataclass
class Outputs:
    """An output folder, read without the CLI."""

    folder: Path
    spec_dir: Path
    manifest: pa.Table = field(init=False)

    def __post_init__(self) -> None:
        self.manifest = pq.read_table(self.folder / "manifest.parquet")

    @property
    def ids(self) -> list[str]:
        return self.manifest["request_id"].to_pylist()

    def results(self) -> pa.Table:
        """Every row of every results part, duplicates included."""
        parts = list_parts(self.folder / "results")
        if not parts:
            return rows_to_table([])
        return pa.concat_tables(pq.read_table(p) for p in parts)

    def rows(self) -> list[dict[str, Any]]:
        return self.results().to_pylist()

    def answered_ids(self) -> set[str]:
        """Ids with a row in a part or in the journal: what is durable after a kill."""
        index = read_parts(list_parts(self.folder / "results"))
        ids = set(index["request_id"].to_pylist())
        for run in read_journal(self.folder / "journal").values():
            ids.update(row[0] for row in run.results)
        return ids

    def body_hashes(self, kind: str = "gemini", tier: Tier = Tier.STANDARD) -> dict[str, str]:
        """sha256 of the exact bytes sent for each request id (what the simulator logs), by provider kind and tier."""
        provider: GeminiProvider | OpenAIProvider = GeminiProvider("http://127.0.0.1", None, spec_dir=self.spec_dir,
                                                                   tier=tier)
        if kind == "openai":
            provider = OpenAIProvider("http://127.0.0.1/v1", None, spec_dir=self.spec_dir)
        out = {}
        for batch in self.manifest.to_batches():
            for record in batch_to_records(batch):
                out[hashlib.sha256(provider.encode_body(record)).hexdigest()] = record.request_id
        return out


def sends_by_id(log: list[dict], hashes: dict[str, str], outcome: str | None = None) -> dict[str, int]:
    """How many logged requests carried each request id's body (only those with `outcome`, if given)."""
    counts: dict[str, int] = {}
    for line in log:
        if outcome is not None and line["outcome"] != outcome:
            continue
        request_id = hashes.get(line["body_sha256"])
        assert request_id is not None, f"the simulator received a body no manifest row gives: {line}"
        counts[request_id] = counts.get(request_id, 0) + 1
    return counts


def assert_no_key(folder: Path, *texts: str, key: str = FAKE_KEY) -> None:
    """The key is in no text given and in no file under `folder` (Parquet read back as values too)."""
    for text in texts:
        assert key not in text
    needle = key.encode()
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        assert needle not in path.read_bytes(), f"the API key is in {path}"
        if path.suffix == ".parquet":
            assert key not in str(pq.read_table(path).to_pylist()), f"the API key is in {path}"
