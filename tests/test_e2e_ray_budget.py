"""End to end: one budget for the whole cluster (`batchrun run --ray local:2 --max-cost ...`).

A real local Ray cluster of two worker processes, the simulator as a real server, the CLI as a
subprocess. The cap is below two requests' worst case, so an even split of it over the two workers
would let no request through; the cluster's one account lets through every request that fits, and
stops only when what is left of the cap can't cover another.
"""

from __future__ import annotations

import re

from e2e_helpers import outputs, run_job, serve, text_job, write_spec  # noqa: F401 (serve is a fixture)
from test_e2e_ray import CLUSTER_TIMEOUT_S, final_rows_by_request, needs_ray

MAX_OUTPUT_TOKENS = 8192
OUTPUT_USD_PER_TOKEN = 3.00 / 1e6  # gemini-3-flash-preview's output price
CAP_USD = 0.045  # about 1.8 worst cases: room for many replies, one at a time
WORST = re.compile(r"the next request could cost up to \$(\d+\.\d+)")


def test_a_cluster_spends_its_one_budget_until_what_is_left_cannot_cover_another_request(tmp_path, serve):
    needs_ray()
    simulator = serve(profile="clean")
    job = text_job("ray-budget", simulator.url, 40, limits={"concurrency": 4},
                   request={"generation_config": {"maxOutputTokens": MAX_OUTPUT_TOKENS}})
    spec = write_spec(tmp_path, job)
    assert CAP_USD / 2 < MAX_OUTPUT_TOKENS * OUTPUT_USD_PER_TOKEN  # half the cap covers no request's worst case

    done = run_job(tmp_path, spec, "--ray", "local:2", "--max-cost", str(CAP_USD), timeout_s=CLUSTER_TIMEOUT_S)

    assert done.returncode == 4, done.stderr
    rows = outputs(tmp_path, "ray-budget").rows()
    spent = sum(row["cost_usd"] for row in rows)
    [worst] = {float(found) for found in WORST.findall(done.stderr)}
    assert 2 <= len(rows) < 40  # an even split of the cap would have let none through
    assert {row["status"] for row in rows} == {"ok"}
    assert set(final_rows_by_request(tmp_path, "ray-budget").values()) == {1}
    assert spent <= CAP_USD
    assert spent + worst > CAP_USD  # stopped only when the whole budget could not cover another request
