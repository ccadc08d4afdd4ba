"""Wiring a run: the API key is read once, at start, and refused there if no header can carry it."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from batchrun.batching.chunks import read_ids
from batchrun.errors import EXIT_BATCHES_RUNNING, BudgetReached, UsageError
from batchrun.jobrun import _key_pool, api_key, pool_keys, provider_settings, results_table, run_job, usable_key
from batchrun.options import RunOptions
from batchrun.planning.spec import load_spec
from batchrun.running.clock import FakeClock
from batchrun.running.limiter import PACE_FRACTION
from batchrun.tiers import Tier

KEY = "AIzaSyD-4fakeKeyForJobTests_0123456789ab"
SHOWN = "jobs/x.yaml"
UNSENDABLE = (
    "jobs/x.yaml: provider.api_key_env: the key in GEMINI_API_KEY holds a character an HTTP header can't "
    "carry (a line break, a control character or a non-ASCII character); set it again without it"
)
SPEC = "name: job\nmodel: gemini-3-flash-preview\ninputs: {rows: [{sku: A}]}\nrequest: {prompt: 'Describe {{ sku }}'}\n"


@pytest.mark.parametrize(
    "value", [KEY + "\n", KEY + "\r\n", f"  {KEY}\t", f"\n{KEY}\n\n", KEY + "\u00a0"]
)
def test_surrounding_whitespace_is_dropped(value):
    assert usable_key(value, "GEMINI_API_KEY", SHOWN) == KEY


def test_a_plain_key_is_kept_as_it_is():
    assert usable_key(KEY, "GEMINI_API_KEY", SHOWN) == KEY


@pytest.mark.parametrize(
    "value",
    [
        KEY[:10] + "\n" + KEY[10:],
        KEY[:10] + "\r" + KEY[10:],
        KEY[:10] + "\r\nX-Injected: 1",
        KEY + "\x00",
        KEY[:10] + "\t" + KEY[10:],
        KEY + "\x07",
        KEY + "\x7f",
        KEY[:10] + "é" + KEY[10:],
        KEY[:10] + "\u2028" + KEY[10:],
        KEY[:10] + "\udcff" + KEY[10:],  # an undecodable byte, as os.environ holds it
        "ключ-" + KEY,
    ],
)
def test_a_key_no_header_can_carry_is_refused_naming_the_variable_not_the_value(value):
    with pytest.raises(UsageError) as caught:
        usable_key(value, "GEMINI_API_KEY", SHOWN)
    assert str(caught.value) == UNSENDABLE
    assert KEY[:8] not in str(caught.value)


@pytest.mark.parametrize("value", [None, "", "  ", "\n", "\r\n\t"])
def test_a_missing_or_blank_key_says_to_set_the_variable(value):
    with pytest.raises(UsageError) as caught:
        usable_key(value, "COMETAPI_KEY", SHOWN)
    assert str(caught.value) == (
        "jobs/x.yaml: provider.api_key_env: no API key: set the environment variable COMETAPI_KEY "
        "(provider.api_key_env names it)"
    )


def test_api_key_reads_the_variable_the_spec_names(tmp_path, monkeypatch):
    (tmp_path / "x.yaml").write_text(SPEC + "provider: {api_key_env: BATCHRUN_TEST_KEY}\n", encoding="utf-8")
    monkeypatch.setenv("BATCHRUN_TEST_KEY", f"{KEY}\n")
    assert api_key(load_spec(tmp_path / "x.yaml")) == KEY


def test_every_key_of_a_pool_is_read_at_start_and_a_missing_one_is_named(tmp_path, monkeypatch):
    (tmp_path / "x.yaml").write_text(SPEC + "provider: {api_key_env: [POOL_A, POOL_B]}\n", encoding="utf-8")
    monkeypatch.setenv("POOL_A", "k1")
    monkeypatch.delenv("POOL_B", raising=False)
    with pytest.raises(UsageError) as caught:
        api_key(load_spec(tmp_path / "x.yaml"))
    assert "set the environment variable POOL_B" in str(caught.value)
    monkeypatch.setenv("POOL_B", " k2\n")
    loaded = load_spec(tmp_path / "x.yaml")
    assert [(entry.env, key) for entry, key in pool_keys(loaded)] == [("POOL_A", "k1"), ("POOL_B", "k2")]
    assert api_key(loaded) == "k1"


@pytest.mark.parametrize("provider, paced", [
    ("{api_key_env: POOL_A}", {"POOL_A": 600.0}),
    ("{api_key_env: [{env: POOL_A, requests_per_minute: 30}]}", {"POOL_A": 30.0}),
    ("{api_key_env: [POOL_A, {env: POOL_B, requests_per_minute: 30}]}", {"POOL_A": 600.0, "POOL_B": 30.0}),
])
def test_each_key_s_limiter_paces_at_its_own_limit_else_the_job_s(tmp_path, monkeypatch, provider, paced):
    (tmp_path / "x.yaml").write_text(SPEC + f"provider: {provider}\nlimits: {{requests_per_minute: 600}}\n",
                                     encoding="utf-8")
    monkeypatch.setenv("POOL_A", "k1")
    monkeypatch.setenv("POOL_B", "k2")
    loaded = load_spec(tmp_path / "x.yaml")
    settings = provider_settings(loaded, RunOptions(), api_key(loaded), 4)
    pool = _key_pool(loaded, settings, FakeClock())
    rates = {lane.env: lane.limiter.current_rate_per_minute for lane in pool.lanes}
    assert rates == {env: pytest.approx(limit * PACE_FRACTION) for env, limit in paced.items()}
    assert {lane.provider._api_key for lane in pool.lanes} == ({"k1"} if len(paced) == 1 else {"k1", "k2"})


def test_api_key_of_the_simulator_is_none(tmp_path, monkeypatch):
    (tmp_path / "x.yaml").write_text(SPEC + "provider: {kind: simulator}\n", encoding="utf-8")
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    assert api_key(load_spec(tmp_path / "x.yaml")) is None


@pytest.mark.parametrize("code, fix", [
    (errno.ENOSPC, "the disk is full: free space on it"),
    (errno.EROFS, "the file system is read-only: remount it writable, or set output.dir to a writable folder"),
    (errno.EACCES, "no permission to write there"),
    (errno.ENOENT, "fix the cause"),
])
def test_a_write_error_says_where_and_what_to_do(code, fix):
    from batchrun.running.writeerrors import write_error_message

    named = write_error_message(OSError(code, os.strerror(code), "/out/images/a.png"))
    assert named.startswith(f"could not write /out/images/a.png: {os.strerror(code)} ({errno.errorcode[code]}); ")
    assert fix in named
    assert write_error_message(OSError(code, os.strerror(code)), Path("/out")).startswith("could not write in /out: ")


TIER_SPEC = "name: job\nmodel: gemini-3-flash-preview\ninputs: {rows: [{sku: A}]}\nrequest: {prompt: 'Describe {{ sku }}'}\n"


@pytest.mark.parametrize("extra, flag, tier, timeout", [
    ("", None, Tier.STANDARD, 180.0),
    ("tier: flex\n", None, Tier.FLEX, 900.0),
    ("", Tier.FLEX, Tier.FLEX, 900.0),
    ("tier: flex\nlimits: {timeout_s: 240}\n", None, Tier.FLEX, 240.0),
    ("tier: flex\n", Tier.PRIORITY, Tier.PRIORITY, 180.0),
    ("tier: priority\n", Tier.STANDARD, Tier.STANDARD, 180.0),
])
def test_the_adapter_gets_the_run_s_tier_and_flex_waits_900s_unless_the_spec_says(tmp_path, extra, flag, tier, timeout):
    (tmp_path / "job.yaml").write_text(TIER_SPEC + extra, encoding="utf-8")
    settings = provider_settings(load_spec(tmp_path / "job.yaml"), RunOptions(tier=flag), None, 4)
    assert (settings.tier, settings.timeout_s, settings.concurrency) == (tier, timeout, 4)


BATCH_SPEC = ("name: bjob\nprovider: {kind: simulator, faults: faults.yaml}\nmodel: gemini-3-flash-preview\n"
              "inputs: {rows: [{n: 1}, {n: 2}, {n: 1}]}\nrequest: {prompt: 'One line about {{ n }}'}\n"
              "output: {dir: out}\n")


def batch_job(tmp_path, monkeypatch, extra: str = ""):
    (tmp_path / "faults.yaml").write_text("batch: {pending_s: 0, running_s: 0.2}\n", encoding="utf-8")
    (tmp_path / "job.yaml").write_text(BATCH_SPEC + extra, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return load_spec(tmp_path / "job.yaml")


def test_a_batch_run_on_the_simulator_in_process_waits_for_its_batches_and_writes_every_row(tmp_path, monkeypatch):
    loaded = batch_job(tmp_path, monkeypatch)

    assert run_job(loaded, RunOptions(tier=Tier.BATCH, handle_signals=False, progress="none")) == 0

    rows = sorted(results_table(tmp_path / "out", ("request_id", "status", "service_tier", "shared_from")).to_pylist(),
                  key=lambda r: (r["request_id"], r["shared_from"] is not None))
    assert [(r["status"], r["service_tier"]) for r in rows] == [("ok", "batch")] * 3
    assert sum(r["shared_from"] is not None for r in rows) == 1  # the row sharing a request took a copy


def test_a_batch_run_whose_first_chunk_passes_the_cap_submits_nothing_and_stops_for_the_budget(tmp_path, monkeypatch):
    loaded = batch_job(tmp_path, monkeypatch, "budget: {max_cost_usd: 0.000001}\n")

    with pytest.raises(BudgetReached, match="did not fit the budget at the batch price"):
        run_job(loaded, RunOptions(tier=Tier.BATCH, handle_signals=False, progress="none"))

    assert not (tmp_path / "out" / "batches" / "ledger.jsonl").exists()


def test_the_batch_flag_on_an_openai_spec_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    (tmp_path / "job.yaml").write_text(SPEC + "provider: {kind: openai, base_url: 'https://api.cometapi.com/v1'}\n",
                                       encoding="utf-8")
    monkeypatch.chdir(tmp_path)

    with pytest.raises(UsageError, match=r"^--tier batch: the batch tier is Gemini-only for now"):
        run_job(load_spec(tmp_path / "job.yaml"), RunOptions(tier=Tier.BATCH, handle_signals=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.yaml"]


def test_a_synchronous_run_leaves_requests_held_by_running_batches_to_them_and_exits_13(tmp_path, monkeypatch,
                                                                                       caplog):
    from batchrun.batching.chunks import write_chunks
    from batchrun.batching.ledger import Ledger
    from batchrun.planning.manifest import iter_records
    from batchrun.planning.plan import manifest_path
    from batchrun.providers.gemini import GeminiProvider

    loaded = prepare_batch_job(tmp_path, monkeypatch)
    records = list(iter_records(manifest_path(loaded)))[:1]
    encode = GeminiProvider("http://x", None, spec_dir=tmp_path).encode_body
    Ledger(tmp_path / "out").planned(write_chunks(records, encode, tmp_path / "out", "bjob").chunks[0])

    assert run_job(loaded, RunOptions(handle_signals=False, progress="none")) == EXIT_BATCHES_RUNNING
    assert ("1 requests (2 rows) are in batches still running at the server (`batchrun status` lists them): left to "
            "them, not sent twice; `batchrun run --tier batch` collects them, and `batchrun run --tier batch "
            "--fallback standard --batch-timeout 1s` cancels those batches and sends what they have not answered"
            ) in caplog.text
    held = read_ids(next((tmp_path / "out" / "batches").glob("*.ids")))
    answered = results_table(tmp_path / "out", ("request_id",))["request_id"].to_pylist()
    assert answered and not set(held) & set(answered)


def prepare_batch_job(tmp_path, monkeypatch):
    from batchrun.jobrun import prepare

    return prepare(batch_job(tmp_path, monkeypatch))


STUCK_BATCHES = "batch: {pending_s: 1000, running_s: 1000}\n"


def stuck_batch_job(tmp_path, monkeypatch, extra: str = ""):
    from batchrun.jobrun import prepare

    loaded = batch_job(tmp_path, monkeypatch, extra)
    (tmp_path / "faults.yaml").write_text(STUCK_BATCHES, encoding="utf-8")
    return prepare(loaded)


def fallback_options(**changes) -> RunOptions:
    settings = {"tier": Tier.BATCH, "fallback": Tier.FLEX, "batch_timeout_s": 0.2, "handle_signals": False,
                "progress": "none"}
    return RunOptions(**{**settings, **changes})


def test_a_batch_past_its_timeout_falls_back_to_flex_in_the_same_run_and_the_run_record_says_so(tmp_path,
                                                                                                monkeypatch):
    import json

    loaded = stuck_batch_job(tmp_path, monkeypatch)

    assert run_job(loaded, fallback_options()) == 0

    rows = results_table(tmp_path / "out", ("status", "service_tier")).to_pylist()
    assert [(r["status"], r["service_tier"]) for r in rows] == [("ok", "flex")] * 3
    (record,) = (json.loads(p.read_text()) for p in (tmp_path / "out" / "runs").glob("*.json"))
    assert {key: record["fallback"][key] for key in ("tier", "batches_cancelled", "requests_sent_again")} == {
        "tier": "flex", "batches_cancelled": 1, "requests_sent_again": 2}


def test_the_fallback_s_budget_keeps_the_cancelled_batch_s_reservation(tmp_path, monkeypatch):
    from batchrun.cost.pricing import PriceCatalog
    from batchrun.planning.manifest import iter_records
    from batchrun.planning.plan import manifest_path
    from batchrun.running.account import CatalogPrices

    loaded = stuck_batch_job(tmp_path, monkeypatch)
    records = list({r.request_id: r for r in iter_records(manifest_path(loaded))}.values())  # 2 requests
    worst = {tier: [CatalogPrices(PriceCatalog.load(), tier).worst_case(r) for r in records]
             for tier in (Tier.BATCH, Tier.FLEX)}
    cap = sum(worst[Tier.BATCH]) + min(worst[Tier.FLEX]) / 2  # the batch's hold fits, no flex request besides
    assert cap > max(worst[Tier.FLEX]) * 2  # without the batch's hold, both flex requests would fit

    with pytest.raises(BudgetReached, match="3 rows left pending"):
        run_job(loaded, fallback_options(max_cost=cap))
    assert not results_table(tmp_path / "out", ("status",)).num_rows


def test_max_duration_alone_does_not_switch_batches_it_leaves_them_running(tmp_path, monkeypatch):
    loaded = stuck_batch_job(tmp_path, monkeypatch)
    options = fallback_options(batch_timeout_s=None, deadline_s=0.5, max_duration_s=0.5)

    assert run_job(loaded, options) == EXIT_BATCHES_RUNNING
    assert not results_table(tmp_path / "out", ("status",)).num_rows


@pytest.mark.parametrize("until_s, max_duration_s, at_deadline", [
    (600.0, None, True), (600.0, 900.0, True), (900.0, 600.0, False), (None, 600.0, False)])
def test_the_switch_at_the_deadline_is_at_until_when_it_comes_before_max_duration(tmp_path, monkeypatch, until_s,
                                                                                   max_duration_s, at_deadline):
    from batchrun.batchtier import fallback_policy

    loaded = batch_job(tmp_path, monkeypatch, "batch: {fallback: standard, timeout: 4h}\n")
    policy = fallback_policy(loaded, RunOptions(until_s=until_s, max_duration_s=max_duration_s))
    assert policy is not None and (policy.timeout_s, policy.at_deadline) == (4 * 3600, at_deadline)
    assert fallback_policy(loaded, RunOptions(fallback=Tier.FLEX, batch_timeout_s=60)).timeout_s == 60
    assert fallback_policy(batch_job(tmp_path, monkeypatch), RunOptions()) is None
