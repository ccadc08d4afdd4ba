"""End to end: a run's summary goes where the spec's `notify:` says, and a failed notification changes nothing.

The CLI runs as a subprocess against the simulator; the webhook is a local HTTP server on a thread that
records every body it gets (or answers 500); the command is a small Python script that copies the
summary file it is handed. The webhook URL carries a secret token that must reach no output.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from e2e_helpers import (  # noqa: F401 (serve is a fixture)
    cli_env,
    outputs,
    run_job,
    serve,
    text_job,
    write_faults,
    write_spec,
)

TOKEN = "T0000/B0000/e2e-s3cr3t-hook-token"


@contextmanager
def webhook_server(status: int = 200) -> Iterator[tuple[str, list[dict]]]:
    """A local webhook answering `status`; its URL (with the secret token) and the JSON bodies it got."""
    bodies: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length") or 0)
            bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/services/{TOKEN}", bodies
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def copy_script(folder: Path) -> Path:
    """A notify command: copies the file named by its last argument to the path its first names."""
    script = folder / "copy_summary.py"
    script.write_text("import shutil, sys\nshutil.copy(sys.argv[-1], sys.argv[1])\n")
    return script


def the_record(folder: Path, name: str) -> dict:
    [path] = (folder / "outputs" / name / "runs").glob("*.json")
    return json.loads(path.read_text())


def test_the_summary_is_posted_to_the_webhook_and_handed_to_the_command(tmp_path, serve):
    simulator = serve(profile="clean")
    copied = tmp_path / "copied.json"
    with webhook_server() as (url, bodies):
        notify = {"webhook_env": "BATCHRUN_E2E_HOOK", "command": [sys.executable, str(copy_script(tmp_path)),
                                                                  str(copied)], "timeout_s": 20}
        spec = write_spec(tmp_path, text_job("told", simulator.url, 6, notify=notify))
        result = run_job(tmp_path, spec, env=cli_env(BATCHRUN_E2E_HOOK=url))

    assert result.returncode == 0, result.stderr
    record = the_record(tmp_path, "told")
    assert (record["exit_code"], record["exit_reason"], record["ok"]) == (0, "ok", 6)
    [body] = bodies
    assert body["batchrun"] == record
    assert body["text"].startswith("batchrun told: ok (exit 0); ok 6, blocked 0, invalid 0, failed 0; spent $")
    assert json.loads(copied.read_text()) == record
    assert "run summary posted to the webhook at 127.0.0.1" in result.stderr
    assert TOKEN not in result.stderr and "e2e-s3cr3t" not in result.stdout


def test_a_failing_webhook_and_command_leave_the_exit_code_and_the_results_alone(tmp_path, serve):
    simulator = serve(faults=str(write_faults(tmp_path, "day", {"limits": {"requests_per_day": 3, "day_s": 60}})))
    failing = tmp_path / "fail.py"
    failing.write_text("raise SystemExit(3)\n")
    with webhook_server(status=500) as (url, bodies):
        notify = {"webhook": url, "command": [sys.executable, str(failing)], "timeout_s": 20}
        spec = write_spec(tmp_path, text_job("untold", simulator.url, 8, limits={"concurrency": 1}, notify=notify))
        result = run_job(tmp_path, spec)

    assert result.returncode == 7, result.stderr  # the quota's exit, not the notification's
    assert len(outputs(tmp_path, "untold").rows()) == 3
    assert len(bodies) == 1 and bodies[0]["batchrun"]["exit_reason"] == "quota"
    lines = result.stderr.splitlines()
    assert sum("notification to the webhook at 127.0.0.1 failed: HTTP 500" in line for line in lines) == 1
    assert sum(f"notification command {sys.executable} failed: exit 3" in line for line in lines) == 1
    assert TOKEN not in result.stderr
