"""End to end: every stop works the same for every provider kind, with the message that matches what happened.

The in-process simulator answers without suspending; a deadline and Ctrl-C must still be seen between
requests. After Ctrl-C the last line says whether the requests in flight finished or were abandoned;
`-q` prints only warnings and errors; a finished job run again says there is nothing to send; a
simulator asked for a port in use says so in one line.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys

import pytest
from e2e_helpers import (  # noqa: F401 (serve is a fixture)
    RUN_TIMEOUT_S,
    batchrun,
    outputs,
    run_job,
    serve,
    signal_when,
    start_batchrun,
    start_simulator,
    text_job,
    write_faults,
    write_spec,
)

LEFT = re.compile(r"; ([\d,]+) rows? left pending")


def in_process_job(name: str, rows: int) -> dict:
    spec = text_job(name, "http://unused.invalid", rows, provider={"kind": "simulator", "base_url": None,
                                                                   "api_key_env": None})
    spec["limits"] = {"concurrency": 16}
    return spec


def left_pending(stderr: str) -> int:
    return int(LEFT.search(stderr.strip().splitlines()[-1]).group(1).replace(",", ""))


def test_max_duration_stops_an_in_process_simulator_run_and_counts_what_is_left(tmp_path):
    spec = write_spec(tmp_path, in_process_job("inproc-deadline", 20_000))
    assert batchrun(tmp_path, "plan", str(spec)).returncode == 0

    done = run_job(tmp_path, spec, "--max-duration", "1s", key=None)

    assert done.returncode == 5, done.stderr
    rows = len(outputs(tmp_path, "inproc-deadline").rows())
    assert 0 < rows < 20_000
    assert left_pending(done.stderr) == 20_000 - rows


def test_ctrl_c_stops_an_in_process_simulator_run_and_says_the_requests_in_flight_finished(tmp_path):
    spec = write_spec(tmp_path, in_process_job("inproc-ctrl-c", 20_000))
    assert batchrun(tmp_path, "plan", str(spec)).returncode == 0
    process = start_batchrun(tmp_path, "run", str(spec), "--progress", "plain", "--status-every", "0.2", key=None)

    code, text = signal_when(process, [(re.compile(r"done [1-9][\d,]*/20,000"), signal.SIGINT)])

    assert code == 130, text
    last = text.strip().splitlines()[-1]
    assert last.startswith("batchrun: error: run stopped: interrupted by Ctrl-C; ")
    assert "every request in flight finished and was saved" in last
    rows = len(outputs(tmp_path, "inproc-ctrl-c").rows())
    assert 0 < rows < 20_000 and left_pending(text) == 20_000 - rows


def test_a_second_signal_abandons_the_requests_in_flight_and_the_last_line_counts_them(tmp_path, serve):
    simulator = serve(faults="slow.yaml")
    spec = write_spec(tmp_path, text_job("abandon", simulator.url, 300, limits={"concurrency": 4}))
    process = start_batchrun(tmp_path, "run", str(spec), "--progress", "plain", "--status-every", "0.2",
                             "--grace", "60")

    code, text = signal_when(process, [(re.compile(r"done [1-9][\d,]*/300"), signal.SIGTERM),
                                       (re.compile(r"waiting up to 60s for \d+ requests in flight"), signal.SIGINT)])

    assert code == 130, text
    last = text.strip().splitlines()[-1]
    assert last.startswith("batchrun: error: run stopped: interrupted by SIGTERM; ")
    abandoned = int(re.search(r"; (\d+) requests in flight were abandoned \(they may be billed", last).group(1))
    assert 1 <= abandoned <= 4


def test_quiet_prints_nothing_for_a_clean_run_and_a_finished_job_says_there_is_nothing_to_send(tmp_path):
    spec = write_spec(tmp_path, in_process_job("quiet", 20))

    first = batchrun(tmp_path, "-q", "run", str(spec), key=None)
    again = batchrun(tmp_path, "run", str(spec), "--progress", "plain", key=None)

    assert (first.returncode, first.stderr, first.stdout) == (0, "", "")
    assert again.returncode == 0, again.stderr
    assert "nothing to send: every row of the job has a final result" in again.stderr
    assert "done 0/0" not in again.stderr


def test_the_simulator_on_a_port_in_use_says_so_in_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "batchrun", "simulate", "--port", str(port)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=RUN_TIMEOUT_S)

    assert done.returncode == 2
    assert done.stderr == (f"batchrun: error: port {port} on 127.0.0.1 is in use; pick another with --port, "
                           "or --port 0 for a free one\n")


@pytest.mark.parametrize("fault, status", [("billing_402", 402), ("prepaid_429", 429)])
def test_a_spent_prepaid_balance_stops_the_run_at_once_records_nothing_and_says_what_to_do(tmp_path, fault, status):
    faults = write_faults(tmp_path, fault, {fault: {"first": 1000}})
    simulator = start_simulator(tmp_path, faults=faults)
    try:
        spec = write_spec(tmp_path, text_job("billing", simulator.url, 20, limits={"concurrency": 4}))
        done = run_job(tmp_path, spec)
        sent = len(simulator.requests())
    finally:
        simulator.stop()

    assert done.returncode == 12, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"batchrun: error: run stopped: billing: HTTP {status}, the account cannot pay")
    assert "add credit or turn on postpaid billing" in last and "20 rows left pending" in last
    assert outputs(tmp_path, "billing").rows() == []
    assert sent <= 4  # the requests already in flight, never a retry
