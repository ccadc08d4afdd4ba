"""What the benchmarks share: servers on 127.0.0.1, job specs, a timed `batchrun run`, result figures.

Servers: nginx serving one canned Gemini reply (when Debian's nginx is installed; a large one, such as
an image reply, from a file), else `bench/canned_server.py` (aiohttp), which also does latency, a
requests-per-second limit with 429s and image replies. Every server is a child process stopped by the
`with` block that started it.
A run is `python -m batchrun run SPEC` in a child process, timed from spawn to exit, its peak RSS and
CPU time read from `os.wait4` (that child's own, not the maximum over every child so far).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds

BENCH_DIR = Path(__file__).resolve().parent
KEY_ENV = "BENCH_KEY"
FAKE_KEY = "bench-key-123"
TEXT_MODEL = "gemini-2.5-flash"
IMAGE_MODEL = "gemini-3.1-flash-image"
CANNED_TEXT = "A playful mug in sage green, glazed by hand, for slow mornings."


def canned_text_reply() -> bytes:
    """A generateContent reply as the simulator (and Gemini) shape it: one text part, usage, version."""
    reply = {
        "candidates": [{
            "content": {"parts": [{"text": CANNED_TEXT}],
                        "role": "model"},
            "finishReason": "STOP", "index": 0,
        }],
        "usageMetadata": {
            "promptTokenCount": 15, "candidatesTokenCount": 16, "totalTokenCount": 31,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 15}],
            "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 16}],
        },
        "modelVersion": TEXT_MODEL,
        "responseId": "bench-canned-reply",
    }
    return json.dumps(reply, separators=(",", ":")).encode()


def canned_chat_reply() -> bytes:
    """A chat completion as OpenAI documents it, with the canned Gemini reply's text and token counts."""
    reply = {
        "id": "chatcmpl-bench-canned-reply",
        "object": "chat.completion",
        "created": 1764201600,
        "model": TEXT_MODEL,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": CANNED_TEXT, "refusal": None, "annotations": []},
            "logprobs": None,
            "finish_reason": "stop",
        }],
        "usage": {
            "prompt_tokens": 15, "completion_tokens": 16, "total_tokens": 31,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_bench",
    }
    return json.dumps(reply, separators=(",", ":")).encode()


CANNED_REPLIES = {"gemini": canned_text_reply, "openai": canned_chat_reply}  # by provider kind


# ------------------------------------------------------------------------------------------ servers


@dataclass
class Server:
    """A server child process and the base URL it answers on."""

    name: str
    url: str
    proc: subprocess.Popen

    def stats(self) -> dict:
        """The canned server's counters (nginx has none)."""
        with urllib.request.urlopen(f"{self.url}/stats", timeout=10) as reply:
            return json.loads(reply.read())


def nginx_available() -> bool:
    return shutil.which("nginx") is not None or Path("/usr/sbin/nginx").exists()


NGINX_CONF = """daemon off;
master_process on;
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log crit;
events {{ worker_connections 4096; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_max_body_size 64m;
    server {{
        listen 127.0.0.1:{port} reuseport;
        {location}
    }}
}}
"""
NGINX_RETURN_LOCATION = """location / {{
            default_type application/json;
            return 200 '{body}';
        }}"""


NGINX_FILE_LOCATION = """location / {{
            root {root};
            default_type application/json;
            try_files /{name} =404;
            error_page 405 =200 /{name};  # the static module refuses POST: answer it with the file too
        }}"""


@contextlib.contextmanager
def nginx_server(body: bytes, workers: int = 1) -> Iterator[Server]:
    """nginx on a free port of 127.0.0.1 answering every request with `body` (JSON, no single quote)."""
    text = body.decode()
    if "'" in text:
        raise ValueError("the canned body must not hold a single quote")
    with _nginx(lambda prefix: NGINX_RETURN_LOCATION.format(body=text), workers, "nginx") as server:
        yield server


@contextlib.contextmanager
def nginx_file_server(body: bytes, workers: int = 1) -> Iterator[Server]:
    """nginx on a free port of 127.0.0.1 answering every request with `body`, served from a file (any size)."""

    def location(prefix: Path) -> str:
        (prefix / "reply.json").write_bytes(body)
        prefix.chmod(0o755)  # nginx's workers may run as another user (mkdtemp makes the folder 0700)
        (prefix / "reply.json").chmod(0o644)
        return NGINX_FILE_LOCATION.format(root=prefix, name="reply.json")

    with _nginx(location, workers, "nginx (file)") as server:
        yield server


@contextlib.contextmanager
def _nginx(location: Callable[[Path], str], workers: int, name: str) -> Iterator[Server]:
    prefix = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(workers=workers, prefix=prefix, port=port, location=location(prefix)))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(conf)], stderr=subprocess.PIPE)
    try:
        wait_until_listening(port, proc)
        yield Server(name, f"http://127.0.0.1:{port}", proc)
    finally:
        stop(proc, signal.SIGQUIT)
        shutil.rmtree(prefix, ignore_errors=True)


@contextlib.contextmanager
def canned_server(*args: str) -> Iterator[Server]:
    """bench/canned_server.py with the given flags (see its --help)."""
    proc = subprocess.Popen([sys.executable, str(BENCH_DIR / "canned_server.py"), "--port", "0", *args],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"canned server did not start: {line!r}")
        yield Server("aiohttp canned server", line.split("listening on", 1)[1].strip(), proc)
    finally:
        stop(proc, signal.SIGTERM)


@contextlib.contextmanager
def simulator_server(source: Path | None = None, faults: Path | None = None) -> Iterator[Server]:
    """`python -m batchrun.simulator` (clean, or with a faults file), of the `source` tree holding batchrun/ if given."""
    env = {**os.environ, "PYTHONPATH": str(source)} if source else None
    extra = ["--faults", str(faults)] if faults else []
    proc = subprocess.Popen([sys.executable, "-m", "batchrun.simulator", "--port", "0", *extra],
                            stdout=subprocess.PIPE, text=True, cwd=source, env=env)
    try:
        line = proc.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"the simulator did not start: {line!r}")
        name = f"batchrun simulator ({source})" if source else "batchrun simulator"
        yield Server(name, line.rsplit(" ", 1)[1].strip(), proc)
    finally:
        stop(proc, signal.SIGTERM)


@contextlib.contextmanager
def text_server(prefer_nginx: bool = True, kind: str = "gemini") -> Iterator[Server]:
    """The fastest canned text server this machine has, answering in `kind`'s reply shape: nginx, else aiohttp."""
    if prefer_nginx and nginx_available():
        with nginx_server(CANNED_REPLIES[kind]()) as server:
            yield server
    else:
        with canned_server("--reply", kind) as server:
            yield server


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_listening(port: int, proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.stderr.read().decode()[-500:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:g}s")


def stop(proc: subprocess.Popen, sig: int) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


# --------------------------------------------------------------------------------------- job specs


def write_catalog(path: Path, rows: int) -> None:
    """A product catalog CSV: sku, title, color."""
    colors = ["red", "green", "blue", "black", "white", "sage", "ivory"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sku", "title", "color"])
        for i in range(rows):
            writer.writerow([f"SKU-{i:07d}", f"Product number {i}", colors[i % len(colors)]])


def write_job(work: Path, name: str, requests: int, base_url: str, *, limits: dict,
              model: str = TEXT_MODEL, image: bool = False, retry: dict | None = None,
              kind: str = "gemini") -> Path:
    """A spec of `requests` distinct requests (a catalog of requests/2 rows × 2 tones) at `base_url`.

    `kind`: the provider kind; an `openai` job posts to `{base_url}/v1/chat/completions`.
    """
    work.mkdir(parents=True, exist_ok=True)
    rows = max(1, requests // 2)
    catalog = work / f"{name}-{rows}.csv"
    if not catalog.exists():  # rewritten, it would make the manifest stale and the run plan again
        write_catalog(catalog, rows)
    config = ({"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "1:1", "imageSize": "1K"}}
              if image else {"maxOutputTokens": 256})
    spec = {
        "name": name,
        "provider": {"kind": kind, "base_url": f"{base_url}/v1" if kind == "openai" else base_url,
                     "api_key_env": KEY_ENV},
        "model": model,
        "inputs": {"path": catalog.name, "id_column": "sku"},
        "matrix": {"tone": ["playful", "formal"]},
        "request": {"prompt": "Write a {{ tone }} description of the {{ title }} in {{ color }}.",
                    "generation_config": config},
        "limits": {"timeout_s": 60, **limits},
        "retry": retry or {"max_attempts": 6},
        "output": {"dir": str(work / f"out-{name}"), "image_name": "{{ sku }}-{{ tone }}"},
    }
    path = work / f"{name}.yaml"
    text = json.dumps(spec, indent=1)  # JSON is YAML
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def output_dir(spec: Path) -> Path:
    return Path(json.loads(spec.read_text())["output"]["dir"])


def plan(spec: Path, python: str = sys.executable) -> None:
    """`batchrun plan` (untimed: the run benchmarks start from a manifest)."""
    spec = spec.resolve()
    done = subprocess.run([python, "-m", "batchrun", "-q", "plan", str(spec)],
                          capture_output=True, text=True, cwd=spec.parent)
    if done.returncode != 0:
        raise RuntimeError(f"plan failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def reset_results(spec: Path) -> None:
    """Remove a previous run's results, keeping the manifest."""
    out = output_dir(spec)
    for name in ("results", "journal", "images", "runs", ".lock", "calibration.json"):
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


@dataclass
class RunFigures:
    seconds: float
    peak_rss_mb: float
    returncode: int
    stderr: str
    cpu_seconds: float = 0.0  # the child's own user + system CPU: less swayed by a loaded machine than wall time


def run_job(spec: Path, *extra: str, progress: str = "none", python: str = sys.executable) -> RunFigures:
    """`batchrun run SPEC` in a child process: wall seconds from spawn to exit, and its own peak RSS.

    `python`: the interpreter whose batchrun runs (another checkout's virtual environment, to compare
    two versions side by side); it runs in the spec's folder, so no checkout's source folder shadows it.
    """
    env = {**os.environ, KEY_ENV: FAKE_KEY}
    spec = spec.resolve()
    started = time.perf_counter()
    proc = subprocess.Popen([python, "-m", "batchrun", "-q", "run", str(spec), "--progress", progress,
                             *extra], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            cwd=spec.parent)
    stderr = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return RunFigures(seconds, usage.ru_maxrss / 1024, proc.returncode, stderr, usage.ru_utime + usage.ru_stime)


def check_run(figures: RunFigures) -> None:
    if figures.returncode != 0:
        raise RuntimeError(f"batchrun run exited {figures.returncode}: {figures.stderr.strip()[-2000:]}")


def result_counts(spec: Path) -> dict[str, int]:
    """Rows per status in the results Parquet, and the total of attempts."""
    table = ds.dataset(output_dir(spec) / "results", format="parquet").to_table(columns=["status", "attempts"])
    counts = {row["values"]: row["counts"] for row in pc.value_counts(table["status"]).to_pylist()}
    counts["attempts"] = int(pc.sum(table["attempts"]).as_py() or 0)
    counts["rows"] = table.num_rows
    return counts


# --------------------------------------------------------------------------------------- reporting


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"date": dt.date.today().isoformat(), "cpus": str(os.cpu_count()), "cpu": model,
            "python": platform.python_version(), "nginx": "yes" if nginx_available() else "no"}


def report(name: str, figures: dict) -> None:
    """Print the benchmark's figures as one JSON line, last, for RESULTS.md and the smoke tests."""
    print(json.dumps({"benchmark": name, "machine": machine(), **figures}), flush=True)


def work_dir(path: Path | None) -> Path:
    return path if path is not None else Path(tempfile.mkdtemp(prefix="batchrun-bench-"))
