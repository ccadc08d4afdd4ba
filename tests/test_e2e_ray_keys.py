"""End to end: a key pool on a cluster (`batchrun run --ray local:2` with `provider.api_key_env` a list).

A real local Ray cluster of two worker processes, the simulator as a real server counting each key's
limits on its own (8 requests a minute per key, e2e_jobs/key_pool.yaml), the CLI as a subprocess. As in
one process (test_e2e_key_pool.py): three good keys carry a third of the job each within one window,
none refused, and a revoked key among them is dropped once for the whole cluster, with one warning.
"""

from __future__ import annotations

from collections import Counter

from e2e_helpers import assert_no_key, batchrun, cli_env, outputs, serve, write_spec  # noqa: F401 (serve is a fixture)
from test_e2e_key_pool import KEYS, PER_KEY_LIMIT, REVOKED, generate_lines, pool_job, quota_simulator
from test_e2e_ray import CLUSTER_TIMEOUT_S, final_rows_by_request, needs_ray


def test_three_keys_on_a_cluster_carry_a_third_each_and_a_revoked_key_is_dropped_with_one_warning(tmp_path, serve):
    needs_ray()
    simulator = serve(faults="key_pool.yaml")
    variables = ["POOL_KEY_1", "POOL_KEY_REVOKED", "POOL_KEY_2", "POOL_KEY_3"]
    spec = write_spec(tmp_path, pool_job("ray-pool", simulator.url, variables))

    result = batchrun(tmp_path, "run", str(spec), "--progress", "plain", "--ray", "local:2",
                      env=cli_env(None, **KEYS, **REVOKED), timeout_s=CLUSTER_TIMEOUT_S)

    assert result.returncode == 0, result.stderr
    assert "Ray cluster local:2: 2 workers" in result.stderr
    rows = outputs(tmp_path, "ray-pool").rows()
    assert len(rows) == 3 * PER_KEY_LIMIT and {(r["status"], r["attempts"]) for r in rows} == {("ok", 1)}
    assert set(final_rows_by_request(tmp_path, "ray-pool").values()) == {1}
    lines = generate_lines(simulator)
    outcomes = Counter(line["outcome"] for line in lines)
    assert outcomes["rate_limited"] == 0  # no key went past its own window, whichever worker sent with it
    assert outcomes["ok"] == 3 * PER_KEY_LIMIT and 1 <= outcomes["bad_key"] <= 4
    ok_by_key = Counter(line["key"] for line in lines if line["outcome"] == "ok")
    assert sorted(ok_by_key.values()) == [PER_KEY_LIMIT] * 3  # a third each
    warnings = [line for line in result.stderr.splitlines() if "failed authentication" in line]
    assert len(warnings) == 1 and "POOL_KEY_REVOKED" in warnings[0] and "dropped for this run" in warnings[0]
    for value in [*KEYS.values(), *REVOKED.values()]:
        assert_no_key(tmp_path, result.stderr, result.stdout, key=value)


def test_when_every_key_of_the_pool_is_revoked_a_cluster_run_stops_with_exit_6(tmp_path, serve):
    needs_ray()
    simulator = serve(faults="key_pool.yaml")
    spec = write_spec(tmp_path, pool_job("ray-revoked", simulator.url, list(REVOKED)))

    result = batchrun(tmp_path, "run", str(spec), "--progress", "plain", "--ray", "local:2",
                      env=cli_env(None, **KEYS, **REVOKED), timeout_s=CLUSTER_TIMEOUT_S)

    assert result.returncode == 6, result.stderr
    assert outputs(tmp_path, "ray-revoked").rows() == []
    assert len([line for line in result.stderr.splitlines() if "failed authentication" in line]) == 1
    for value in REVOKED.values():
        assert_no_key(tmp_path, result.stderr, key=value)


def test_a_key_whose_daily_quota_is_spent_is_set_aside_for_the_cluster_while_the_others_finish(tmp_path):
    needs_ray()
    simulator = quota_simulator(tmp_path, {"POOL_KEY_1": 3})
    try:
        spec = write_spec(tmp_path, pool_job("ray-quota", simulator.url, ["POOL_KEY_1", "POOL_KEY_2"]))
        result = batchrun(tmp_path, "run", str(spec), "--progress", "plain", "--ray", "local:2",
                          env=cli_env(None, **KEYS), timeout_s=CLUSTER_TIMEOUT_S)
    finally:
        simulator.stop()

    assert result.returncode == 0, result.stderr
    assert [r["status"] for r in outputs(tmp_path, "ray-quota").rows()] == ["ok"] * 3 * PER_KEY_LIMIT
    warnings = [line for line in result.stderr.splitlines() if "spent its daily quota" in line]
    assert len(warnings) == 1 and "POOL_KEY_1" in warnings[0] and "POOL_KEY_2" in warnings[0]
    outcomes = Counter(line["outcome"] for line in generate_lines(simulator))
    assert outcomes["ok"] == 3 * PER_KEY_LIMIT and outcomes["quota"] >= 1
