"""Notifications: the exact body a webhook gets, the command's arguments, and failures that are one log
line, show the webhook's host only, and never raise."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import httpx
import pytest

from batchrun.output.notify import notify_run, summary_text, url_host, webhook_body
from batchrun.output.runrecord import finish_run_record
from batchrun.planning.spec import NotifySpec

SECRET_URL = "https://hooks.slack.test/services/T000/B000/s3cr3t-token"
RECORD = {"run_id": "20270115T010000-abc123", "ok": 40, "blocked": 1, "invalid": 0, "failed": 2,
          "exit_code": 3, "exit_reason": "failures", "message": None, "spend_usd": 0.42, "job_spend_usd": 1.5,
          "throughput_rows_per_s": 2.5}


def recording_transport(status: int = 200) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, text="ok")

    return httpx.MockTransport(handle), seen


def test_the_summary_line_says_how_the_run_ended_its_counts_spend_and_pace():
    assert summary_text("mugs", RECORD) == (
        "batchrun mugs: failures (exit 3); ok 40, blocked 1, invalid 0, failed 2; "
        "spent $0.4200 this run, $1.5000 in all; 2.50 rows/s")


def test_the_webhook_gets_text_for_slack_and_teams_and_the_whole_record_beside_it(tmp_path):
    transport, seen = recording_transport()
    notify_run(NotifySpec(webhook=SECRET_URL), "mugs", RECORD, tmp_path / "r.json", transport=transport)
    [request] = seen
    assert (request.method, str(request.url)) == ("POST", SECRET_URL)
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {"text": summary_text("mugs", RECORD), "batchrun": RECORD}


def test_webhook_env_takes_the_url_from_the_environment(tmp_path):
    transport, seen = recording_transport()
    notify_run(NotifySpec(webhook_env="HOOK"), "mugs", RECORD, tmp_path / "r.json", env={"HOOK": SECRET_URL},
               transport=transport)
    assert [str(r.url) for r in seen] == [SECRET_URL]


def test_an_unset_webhook_env_is_one_warning_naming_the_variable(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    notify_run(NotifySpec(webhook_env="HOOK"), "mugs", RECORD, tmp_path / "r.json", env={})
    assert [r.getMessage() for r in caplog.records] == [
        "notify.webhook_env: the variable HOOK is not set: no webhook notification sent; set it to the webhook's URL"]


@pytest.mark.parametrize("failure", ["status", "connect", "timeout"])
def test_a_failed_webhook_is_one_line_with_the_host_only_and_never_raises(tmp_path, caplog, failure):
    def handle(request: httpx.Request) -> httpx.Response:
        if failure == "connect":
            raise httpx.ConnectError(f"cannot reach {request.url}", request=request)
        if failure == "timeout":
            raise httpx.ReadTimeout(f"timed out: {request.url}", request=request)
        return httpx.Response(500)

    caplog.set_level(logging.INFO)
    notify_run(NotifySpec(webhook=SECRET_URL, timeout_s=3), "mugs", RECORD, tmp_path / "r.json",
               transport=httpx.MockTransport(handle))
    [line] = [r.getMessage() for r in caplog.records if r.name == "batchrun.output.notify"]
    expected = {"status": "HTTP 500", "connect": "ConnectError", "timeout": "no answer within 3s"}[failure]
    assert line == f"notification to the webhook at hooks.slack.test failed: {expected}"
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("batchrun")]
    assert not any("s3cr3t" in m or "/services/" in m for m in ours)  # httpx's own INFO line is not shown by the CLI


def test_the_command_gets_the_summary_path_as_its_last_argument(tmp_path):
    calls = []
    notify_run(NotifySpec(command=["notify-send", "--urgent"], timeout_s=5), "mugs", RECORD, tmp_path / "r.json",
               runner=lambda argv, timeout: calls.append((list(argv), timeout)) or 0)
    assert calls == [(["notify-send", "--urgent", str(tmp_path / "r.json")], 5)]


@pytest.mark.parametrize(("outcome", "said"), [
    (2, "exit 2"), (subprocess.TimeoutExpired("x", 5), "still running after 5s (stopped)"),
    (FileNotFoundError(2, "No such file or directory"), "No such file or directory")])
def test_a_failed_command_is_one_line_and_never_raises(tmp_path, caplog, outcome, said):
    def runner(argv, timeout):
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    caplog.set_level(logging.WARNING)
    notify_run(NotifySpec(command=["mail-me"], timeout_s=5), "mugs", RECORD, tmp_path / "r.json", runner=runner)
    assert [r.getMessage() for r in caplog.records] == [f"notification command mail-me failed: {said}"]


def test_a_real_command_runs_with_a_timeout(tmp_path):
    out = tmp_path / "got.txt"
    script = tmp_path / "hook.py"
    script.write_text("import sys, pathlib; pathlib.Path(sys.argv[1]).write_text(sys.argv[2])\n")
    notify_run(NotifySpec(command=[__import__("sys").executable, str(script), str(out)]), "mugs", RECORD,
               tmp_path / "r.json")
    assert out.read_text() == str(tmp_path / "r.json")


def test_url_host_shows_no_path_query_or_credentials():
    assert url_host("https://user:pw@outlook.office.com/webhook/abc?key=1") == "outlook.office.com"


def test_notify_spec_refuses_both_webhook_and_webhook_env():
    with pytest.raises(ValueError, match="not both"):
        NotifySpec(webhook=SECRET_URL, webhook_env="HOOK")


def test_finishing_a_record_adds_the_exit_and_keeps_what_the_sink_wrote(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "run-1.json").write_text(json.dumps({"run_id": "run-1", "ok": 3}))
    path = finish_run_record(tmp_path, "run-1", 7, "run stopped: daily quota", {"scope": "s", "models": {}}, now=9.0)
    assert json.loads(Path(path).read_text()) == {
        "run_id": "run-1", "ok": 3, "exit_code": 7, "exit_reason": "quota", "message": "run stopped: daily quota",
        "ended_at": 9.0, "estimate_vs_actual": {"scope": "s", "models": {}}}
    assert finish_run_record(tmp_path, "run-2", 0, None) is None  # no record: the run never opened its sink


def test_webhook_body_is_json_serialisable():
    assert json.loads(json.dumps(webhook_body("mugs", RECORD)))["batchrun"]["exit_code"] == 3
