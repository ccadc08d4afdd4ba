"""Each command's flags become one checked options object; a flag that can't work exits 2, writing nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from batchrun.cli import build_parser, main
from batchrun.errors import UsageError
from batchrun.options import (
    EstimateOptions,
    PlanOptions,
    RunOptions,
    SimulateOptions,
    deadline_from,
    estimate_options,
    parse_retry,
    plan_options,
    run_options,
    simulate_options,
)
from batchrun.tiers import Tier

NOON = dt.datetime(2026, 3, 2, 12, 0, 0)
SPEC = "name: job\nmodel: gemini-3-flash-preview\ninputs: {rows: [{sku: A}]}\nrequest: {prompt: 'Describe {{ sku }}'}\n"


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


def test_run_flags_become_run_options(tmp_path):
    prices = tmp_path / "prices.yaml"
    prices.write_text("{}", encoding="utf-8")
    args = parse("run", "jobs/x.yaml", "--max-duration", "45m", "--max-cost", "2.5", "--prices", str(prices),
                 "--no-retry-failed", "--retry", "invalid", "--no-config-check", "--write-wait", "0",
                 "--concurrency", "64", "--grace", "0", "--progress", "plain", "--status-every", "0.2")
    assert run_options(args, NOON) == RunOptions(
        deadline_s=2700.0, max_cost=2.5, prices=prices, retry_failed=False, retry=frozenset({"invalid"}),
        config_check=False, write_wait_s=0.0, concurrency=64, grace_s=0.0, progress="plain", status_every=0.2,
        max_duration_s=2700.0,
    )


def test_batch_fallback_flags_become_run_options():
    args = parse("run", "jobs/x.yaml", "--tier", "batch", "--fallback", "Flex", "--batch-timeout", "90m",
                 "--until", "13:30", "--max-duration", "4h")
    options = run_options(args, NOON)
    assert (options.fallback, options.batch_timeout_s) == (Tier.FLEX, 5400.0)
    assert (options.deadline_s, options.until_s, options.max_duration_s) == (5400.0, 5400.0, 14400.0)


def test_run_defaults_are_the_documented_ones():
    assert run_options(parse("run", "jobs/x.yaml"), NOON) == RunOptions()


def test_quiet_turns_automatic_progress_off():
    assert run_options(parse("run", "jobs/x.yaml", "-q"), NOON).progress == "none"
    assert run_options(parse("run", "jobs/x.yaml", "-q", "--progress", "plain"), NOON).progress == "plain"


def test_options_are_frozen():
    with pytest.raises(AttributeError):
        RunOptions().concurrency = 3  # type: ignore[misc]


def test_estimate_plan_and_simulate_flags_become_their_options():
    assert estimate_options(parse("estimate", "jobs/x.yaml", "--json", "--max-cost", "9")) == EstimateOptions(
        max_cost=9.0, json=True)
    assert plan_options(parse("plan", "jobs/x.yaml", "--show", "3")) == PlanOptions(show=3)
    assert simulate_options(parse("simulate", "--port", "0", "--profile", "flaky")) == SimulateOptions(
        port=0, profile="flaky")


def test_estimate_pilot_takes_a_count_of_1_or_more_and_yes():
    options = estimate_options(parse("estimate", "x.yaml", "--pilot", "20", "--yes"))
    assert (options.pilot, options.yes) == (20, True)
    with pytest.raises(UsageError, match=r"^--pilot 0: expected 1 or more requests to send, e.g. --pilot 20$"):
        estimate_options(parse("estimate", "x.yaml", "--pilot", "0"))


def test_until_is_the_next_such_local_time():
    assert deadline_from("13:30", None, NOON) == 5400.0
    assert deadline_from("11:00", None, NOON) == 23 * 3600.0
    assert deadline_from("13:30", "10m", NOON) == 600.0
    assert deadline_from(None, None, NOON) is None


def test_retry_names_the_final_statuses_to_send_again():
    assert parse_retry(None) == frozenset()
    assert parse_retry("invalid, Blocked") == {"invalid", "blocked"}
    with pytest.raises(UsageError) as caught:
        parse_retry("ok,invalid")
    assert str(caught.value) == ("--retry 'ok,invalid': ok is not a status to send again; use invalid and/or "
                                 "blocked (failed rows are sent again by default)")


BAD_RUN_FLAGS = [
    (["--concurrency", "0"], "batchrun: error: --concurrency 0: expected 1 to 10,000 requests in flight, e.g. --concurrency 16"),
    (["--concurrency", "10001"], "batchrun: error: --concurrency 10001: expected 1 to 10,000 requests in flight, e.g. --concurrency 16"),
    (["--max-cost", "-5"], "batchrun: error: --max-cost -5: expected a budget in USD above 0, e.g. --max-cost 25"),
    (["--max-cost", "0"], "batchrun: error: --max-cost 0: expected a budget in USD above 0, e.g. --max-cost 25"),
    (["--max-cost", "nan"], "batchrun: error: --max-cost nan: expected a budget in USD above 0, e.g. --max-cost 25"),
    (["--write-wait", "-1"], "batchrun: error: --write-wait -1: expected 0 or more seconds to wait for space, e.g. --write-wait 120"),
    (["--grace", "-0.5"], "batchrun: error: --grace -0.5: expected 0 or more seconds to wait for requests in flight, e.g. --grace 30"),
    (["--grace", "inf"], "batchrun: error: --grace inf: expected 0 or more seconds to wait for requests in flight, e.g. --grace 30"),
    (["--status-every", "0"],
     "batchrun: error: --status-every 0: expected more than 0 seconds between status lines, e.g. --status-every 30"),
    (["--until", "25:00"], "batchrun: error: --until '25:00': expected a local time HH:MM, e.g. 06:30"),
    (["--until", "6pm"], "batchrun: error: --until '6pm': expected a local time HH:MM, e.g. 06:30"),
    (["--max-duration", "soon"], "batchrun: error: --max-duration 'soon': expected a number with s, m or h, e.g. 45m or 7h"),
    (["--max-duration", "0m"], "batchrun: error: --max-duration '0m': expected more than 0, e.g. 45m or 7h"),
    (["--retry", "failed"],
     "batchrun: error: --retry 'failed': failed is not a status to send again; "
     "use invalid and/or blocked (failed rows are sent again by default)"),
    (["--prices", "missing.yaml"], "batchrun: error: --prices missing.yaml: no such file; give a YAML or JSON file of model -> rates"),
    (["--tier", "batch", "--fallback", "batch"], "batchrun: error: --fallback batch: 'batch' is not a fallback tier; "
     "a fallback sends synchronously: use flex (half price, slower) or standard"),
    (["--tier", "batch", "--fallback", "priority"], "batchrun: error: --fallback priority: 'priority' is not a "
     "fallback tier; a fallback sends synchronously: use flex (half price, slower) or standard"),
    (["--fallback", "flex"], "batchrun: error: --fallback flex: applies to batch runs only; add --tier batch (or set "
     "tier: batch in the spec), or drop it"),
    (["--tier", "flex", "--batch-timeout", "4h"], "batchrun: error: --batch-timeout 14400s: applies to batch runs "
     "only; add --tier batch (or set tier: batch in the spec), or drop it"),
    (["--tier", "batch", "--batch-timeout", "4h"], "batchrun: error: --batch-timeout 14400s: needs a tier to switch "
     "to; add --fallback flex or --fallback standard (or batch.fallback in the spec)"),
    (["--tier", "batch", "--fallback", "flex", "--batch-timeout", "soon"], "batchrun: error: --batch-timeout 'soon': "
     "expected a number with s, m or h, e.g. 45m or 7h"),
    (["--tier", "Flex!"], "batchrun: error: --tier Flex!: 'Flex!' is not a tier; use standard, flex (half price, "
                          "slower), batch (half price, answers within 24 hours) or priority (about 1.8x, faster)"),
]


@pytest.fixture
def job(tmp_path, monkeypatch) -> Path:
    """A valid spec in an empty folder, the working directory; the key set, so only the flag can fail."""
    (tmp_path / "x.yaml").write_text(SPEC, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GEMINI_API_KEY", "AIzaSyD-4fakeKeyForJobTests_0123456789ab")
    return tmp_path


def assert_refused(capsys, folder: Path, argv: list[str], line: str) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [line]
    assert captured.out == ""
    assert sorted(path.name for path in folder.iterdir()) == ["x.yaml"]  # no manifest, no output folder


@pytest.mark.parametrize("flags, line", BAD_RUN_FLAGS, ids=[" ".join(flags) for flags, _ in BAD_RUN_FLAGS])
def test_a_run_flag_that_cannot_work_exits_2_naming_it_and_writes_nothing(job, capsys, flags, line):
    assert_refused(capsys, job, ["run", "x.yaml", *flags], line)


@pytest.mark.parametrize("flags, line", [
    (["--max-cost", "-5"], "batchrun: error: --max-cost -5: expected a budget in USD above 0, e.g. --max-cost 25"),
    (["--prices", "missing.yaml"], "batchrun: error: --prices missing.yaml: no such file; give a YAML or JSON file of model -> rates"),
    (["--tier", "cheap"], "batchrun: error: --tier cheap: 'cheap' is not a tier; use standard, flex (half price, "
                          "slower), batch (half price, answers within 24 hours) or priority (about 1.8x, faster)"),
])
def test_an_estimate_flag_that_cannot_work_exits_2_and_writes_nothing(job, capsys, flags, line):
    assert_refused(capsys, job, ["estimate", "x.yaml", *flags], line)


def test_a_negative_show_exits_2_and_writes_nothing(job, capsys):
    assert_refused(capsys, job, ["plan", "x.yaml", "--show", "-1"],
                   "batchrun: error: --show -1: expected 0 or more requests to print, e.g. --show 3")


@pytest.mark.parametrize("flags, line", [
    (["--port", "70000"], "batchrun: error: --port 70000: expected 0 to 65535 (0 picks a free port)"),
    (["--port", "-1"], "batchrun: error: --port -1: expected 0 to 65535 (0 picks a free port)"),
    (["--faults", "missing.yaml"], "batchrun: error: --faults missing.yaml: no such file; give the path of a faults YAML file"),
    (["--profile", "flaky", "--faults", "x.yaml"], "batchrun: error: give either --profile or --faults, not both"),
])
def test_a_simulate_flag_that_cannot_work_exits_2_before_serving(job, capsys, flags, line):
    assert_refused(capsys, job, ["simulate", *flags], line)


@pytest.mark.parametrize("given, tier", [("flex", Tier.FLEX), ("PRIORITY", Tier.PRIORITY), (" standard ", Tier.STANDARD),
                                         (None, None)])
def test_tier_flags_become_the_run_and_estimate_tier(given, tier):
    flags = ["--tier", given] if given else []
    assert run_options(parse("run", "x.yaml", *flags), NOON).tier is tier
    assert estimate_options(parse("estimate", "x.yaml", *flags)).tier is tier
