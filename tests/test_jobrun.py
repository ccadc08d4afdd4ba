"""Wiring a run: the API key is read once, at start, and refused there if no header can carry it."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from batchrun.errors import UsageError
from batchrun.jobrun import api_key, provider_settings, usable_key
from batchrun.options import RunOptions
from batchrun.planning.spec import load_spec
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
