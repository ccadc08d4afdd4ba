"""End to end: `batchrun estimate SPEC --pilot N --yes` against the simulator as a real server.

The pilot's requests are each answered once and counted as done; a following `run` sends only the rest;
the projection it prints and saves holds the job's actual cost.
"""

from __future__ import annotations

import json

from e2e_helpers import (  # noqa: F401 (serve is a fixture)
    batchrun,
    outputs,
    run_job,
    sends_by_id,
    serve,
    text_job,
    write_spec,
)


def test_a_pilot_sends_its_requests_once_and_the_run_after_it_sends_only_the_rest(tmp_path, serve):
    simulator = serve(profile="clean")
    spec = write_spec(tmp_path, text_job("pilot", simulator.url, 60))

    pilot = batchrun(tmp_path, "estimate", str(spec), "--pilot", "20", "--yes", "--json")
    assert pilot.returncode == 0, pilot.stderr
    report = json.loads(pilot.stdout)
    out = outputs(tmp_path, "pilot")
    hashes = out.body_hashes()
    sent = sends_by_id(simulator.requests(), hashes)
    assert len(sent) == 20 and set(sent.values()) == {1}
    assert report["pilot"]["requests"] == 20 and report["projection"]["done"] == 20
    saved = json.loads((out.folder / "projection.json").read_text())
    assert (saved["pilot_requests"], saved["done"], saved["requests"]) == (20, 20, 60)
    assert saved["fingerprint"] and saved["interval"] == "90%"

    run = run_job(tmp_path, spec)
    assert run.returncode == 0, run.stderr
    after = sends_by_id(simulator.requests(), hashes)
    assert len(after) == 60 and set(after.values()) == {1}  # the pilot's 20 were not sent again
    actual = sum(row["cost_usd"] for row in out.rows())
    total = saved["total"]
    assert total["low"] <= actual <= total["high"]


def test_a_pilot_without_a_terminal_or_yes_sends_nothing_and_says_to_add_yes(tmp_path, serve):
    simulator = serve(profile="clean")
    spec = write_spec(tmp_path, text_job("ask", simulator.url, 10))
    result = batchrun(tmp_path, "estimate", str(spec), "--pilot", "3")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("batchrun: error:")]
    assert len(errors) == 1 and errors[0].endswith("add --yes to send them")
    assert simulator.requests() == []
