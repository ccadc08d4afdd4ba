"""`estimate --pilot` in process, against the in-process simulator (`provider: {kind: simulator}`)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from batchrun.errors import UsageError
from batchrun.options import EstimateOptions
from batchrun.output.spend import latest_results
from batchrun.pilotrun import pilot_job
from batchrun.planning.spec import load_spec

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


@pytest.fixture()
def loaded(tmp_path):
    spec = {"name": "pilot", "provider": {"kind": "simulator"}, "model": "gemini-3-flash-preview",
            "inputs": {"rows": [{"n": i, "topic": "word " * (1 + i % 9)} for i in range(30)]},
            "request": {"prompt": "About {{ topic }} number {{ n }}", "generation_config": {"maxOutputTokens": 2048}}}
    path = tmp_path / "pilot.yaml"
    path.write_text(json.dumps(spec), "utf-8")
    return load_spec(path, tmp_path / "outputs")


def answered(loaded) -> list[str]:
    return sorted(latest_results(loaded.output_dir)["request_id"].to_pylist())


def test_a_declined_pilot_sends_nothing(loaded):
    offers: list[str] = []
    text, code = pilot_job(loaded, EstimateOptions(pilot=6), lambda offer: offers.append(offer) or False, lambda: NOW)
    assert (text, code) == ("pilot not sent: nothing was sent", 0)
    assert offers[0].startswith("pilot: 6 requests across 3 strata at the standard tier, expected $")
    assert not (loaded.output_dir / "results").exists() or answered(loaded) == []


def test_without_a_terminal_the_pilot_needs_yes(loaded):
    with pytest.raises(UsageError, match="add --yes to send them$"):
        pilot_job(loaded, EstimateOptions(pilot=6), None, lambda: NOW)


def test_a_second_pilot_adds_only_new_requests_and_the_projection_counts_both(loaded):
    text, code = pilot_job(loaded, EstimateOptions(pilot=6, yes=True), None, lambda: NOW)
    first = answered(loaded)
    assert code == 0 and len(first) == 6 and "Projection at the standard tier from 6 answered of 30" in text
    text, code = pilot_job(loaded, EstimateOptions(pilot=3, yes=True, json=True), None, lambda: NOW)
    second = answered(loaded)
    assert len(second) == 9 and set(first) < set(second)
    report = json.loads(text)
    assert report["pilot"]["requests"] == 3 and report["projection"]["done"] == 9
    saved = json.loads((loaded.output_dir / "projection.json").read_text())
    assert (saved["pilot_requests"], saved["done"], saved["written_at"]) == (3, 9, "2026-11-27T12:00:00+00:00")
