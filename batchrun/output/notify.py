"""Sending a finished run's summary where the spec's `notify:` says: a webhook, a command, or both.

Inputs: the `NotifySpec`, the run's record (`runs/<run_id>.json`, see `output.runrecord`) and its path, the
environment (for `webhook_env`), and the seams a test swaps: an httpx transport and a command runner.
Output: one POST of `{"text": "<short summary>", "batchrun": <the record>}` (Slack and Teams incoming
webhooks show `text` and ignore the rest) and/or the command run with the record's path as its last
argument; each bounded by `timeout_s`. Invariants: nothing here raises or changes the run's exit code; a
failure is one warning line; the webhook URL is a secret, so only its host ever reaches a log line.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from batchrun.planning.spec import NotifySpec

log = logging.getLogger(__name__)

CommandRunner = Callable[[Sequence[str], float], int]  # argv, timeout -> exit code


def summary_text(name: str, record: Mapping[str, Any]) -> str:
    """One readable line: the job, how the run ended, its counts, spend and throughput."""
    counts = ", ".join(f"{status} {record.get(status) or 0:,}" for status in ("ok", "blocked", "invalid", "failed"))
    ended = f"{record.get('exit_reason', '?')} (exit {record.get('exit_code', '?')})"
    spend = f"spent ${record.get('spend_usd') or 0:,.4f} this run, ${record.get('job_spend_usd') or 0:,.4f} in all"
    rate = record.get("throughput_rows_per_s")
    pace = f"; {rate:.2f} rows/s" if isinstance(rate, int | float) else ""
    said = f" — {record['message']}" if record.get("message") else ""
    return f"batchrun {name}: {ended}; {counts}; {spend}{pace}{said}"


def webhook_body(name: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """What the webhook receives: `text` for a chat channel, the whole record for a program."""
    return {"text": summary_text(name, record), "batchrun": dict(record)}


def url_host(url: str) -> str:
    """The host of a URL, the only part of a webhook URL a log line shows."""
    return urlsplit(url).hostname or "(no host)"


def webhook_url(spec: NotifySpec, env: Mapping[str, str]) -> str | None:
    """The URL from `webhook`, or from the variable `webhook_env` names (a warning when it is unset)."""
    if spec.webhook_env is None:
        return spec.webhook
    url = (env.get(spec.webhook_env) or "").strip()
    if not url:
        log.warning("notify.webhook_env: the variable %s is not set: no webhook notification sent; set it to "
                    "the webhook's URL", spec.webhook_env)
        return None
    return url


def post_webhook(url: str, body: dict[str, Any], timeout_s: float,
                 transport: httpx.BaseTransport | None = None) -> bool:
    """POST the body; whether the server took it (a failure is logged, naming the host only)."""
    host = url_host(url)
    try:
        with httpx.Client(transport=transport, timeout=timeout_s) as client:
            response = client.post(url, json=body)
    except httpx.TimeoutException:
        log.warning("notification to the webhook at %s failed: no answer within %gs", host, timeout_s)
        return False
    except httpx.HTTPError as exc:  # its text may hold the URL: only its kind is shown
        log.warning("notification to the webhook at %s failed: %s", host, type(exc).__name__)
        return False
    if response.is_success:
        return True
    log.warning("notification to the webhook at %s failed: HTTP %d", host, response.status_code)
    return False


def run_subprocess(argv: Sequence[str], timeout_s: float) -> int:
    """Run a command to its end (or its timeout), its output left to the run's own streams."""
    return subprocess.run(list(argv), timeout=timeout_s, stdin=subprocess.DEVNULL, check=False).returncode


def run_command(command: Sequence[str], path: Path, timeout_s: float, runner: CommandRunner = run_subprocess) -> bool:
    """Run the notify command with the summary's path last; whether it exited 0 (a failure is logged)."""
    name = command[0]
    try:
        code = runner([*command, str(path)], timeout_s)
    except subprocess.TimeoutExpired:
        log.warning("notification command %s failed: still running after %gs (stopped)", name, timeout_s)
        return False
    except OSError as exc:
        log.warning("notification command %s failed: %s", name, exc.strerror or type(exc).__name__)
        return False
    if code != 0:
        log.warning("notification command %s failed: exit %d", name, code)
    return code == 0


def notify_run(spec: NotifySpec | None, name: str, record: Mapping[str, Any], path: Path, *,
               env: Mapping[str, str] = os.environ, transport: httpx.BaseTransport | None = None,
               runner: CommandRunner = run_subprocess) -> None:
    """Send the run's summary everywhere the spec says; never raises."""
    if spec is None:
        return
    url = webhook_url(spec, env)
    if url is not None and post_webhook(url, webhook_body(name, record), spec.timeout_s, transport):
        log.info("run summary posted to the webhook at %s", url_host(url))
    if spec.command and run_command(spec.command, path, spec.timeout_s, runner):
        log.info("run summary handed to %s", spec.command[0])
