"""End to end: a pool of keys (`provider.api_key_env` as a list) against the simulator counting each key's
limits on its own, through the real CLI.

The simulator admits 8 requests a minute per key (e2e_jobs/key_pool.yaml). Three keys answer a job of 24
requests within one window, each carrying 8 and none refused, where one key alone is answered 8 and then
refused until its window slides: three times one key's rate, counted, not timed. A revoked key among
them is dropped with one warning naming its variable, and the job completes with exit 0.
"""

from __future__ import annotations

from collections import Counter

from e2e_helpers import (  # noqa: F401 (serve is a fixture)
    assert_no_key,
    batchrun,
    cli_env,
    outputs,
    serve,
    start_simulator,
    text_job,
    write_faults,
    write_spec,
)

PER_KEY_LIMIT = 8  # requests a minute, e2e_jobs/key_pool.yaml
KEYS = {"POOL_KEY_1": "k1-test-pool-key", "POOL_KEY_2": "k2-test-pool-key", "POOL_KEY_3": "k3-test-pool-key"}
REVOKED = {"POOL_KEY_REVOKED": "test-key-e2e-pool-revoked",  # listed in e2e_jobs/key_pool.yaml
           "POOL_KEY_REVOKED_2": "test-key-e2e-pool-revoked-2"}


def pool_job(name: str, url: str, variables: list[str]) -> dict:
    job = text_job(name, url, 3 * PER_KEY_LIMIT, limits={"concurrency": 4, "requests_per_minute": None})
    job["provider"]["api_key_env"] = variables[0] if len(variables) == 1 else variables
    return job


def run(folder, spec, *extra: str):
    return batchrun(folder, "run", str(spec), "--progress", "plain", *extra, env=cli_env(None, **KEYS, **REVOKED))


def generate_lines(simulator) -> list[dict]:
    return [line for line in simulator.requests() if line["rpc"] == "generateContent"]


def test_three_keys_answer_three_keys_windows_and_a_revoked_key_is_dropped_with_one_warning(tmp_path, serve):
    simulator = serve(faults="key_pool.yaml")
    variables = ["POOL_KEY_1", "POOL_KEY_REVOKED", "POOL_KEY_2", "POOL_KEY_3"]
    spec = write_spec(tmp_path, pool_job("pool", simulator.url, variables))

    result = run(tmp_path, spec)

    assert result.returncode == 0, result.stderr
    rows = outputs(tmp_path, "pool").rows()
    assert len(rows) == 3 * PER_KEY_LIMIT and {(r["status"], r["attempts"]) for r in rows} == {("ok", 1)}
    lines = generate_lines(simulator)
    outcomes = Counter(line["outcome"] for line in lines)
    assert outcomes["rate_limited"] == 0  # no key went past its own window
    assert outcomes["ok"] == 3 * PER_KEY_LIMIT and 1 <= outcomes["bad_key"] <= 4
    ok_by_key = Counter(line["key"] for line in lines if line["outcome"] == "ok")
    assert sorted(ok_by_key.values()) == [PER_KEY_LIMIT] * 3  # a third each
    warnings = [line for line in result.stderr.splitlines() if "failed authentication" in line]
    assert len(warnings) == 1 and "POOL_KEY_REVOKED" in warnings[0] and "dropped for this run" in warnings[0]
    for value in [*KEYS.values(), *REVOKED.values()]:
        assert_no_key(tmp_path, result.stderr, result.stdout, key=value)


def test_one_key_of_the_same_job_is_answered_its_own_window_only_and_plans_the_same_ids(tmp_path, serve):
    simulator = serve(faults="key_pool.yaml")
    pooled = write_spec(tmp_path, pool_job("pooled", simulator.url, list(KEYS)))
    single = write_spec(tmp_path, pool_job("single", simulator.url, ["POOL_KEY_1"]))

    assert batchrun(tmp_path, "plan", str(pooled), env=cli_env(None, **KEYS)).returncode == 0
    result = run(tmp_path, single, "--max-duration", "5s")

    assert result.returncode == 5, result.stderr  # the deadline: the rest waits for the window to slide
    assert [r["status"] for r in outputs(tmp_path, "single").rows()] == ["ok"] * PER_KEY_LIMIT
    assert Counter(line["outcome"] for line in generate_lines(simulator))["ok"] == PER_KEY_LIMIT
    # the key never enters a request id: one key or three, the same requests
    assert outputs(tmp_path, "single").ids == outputs(tmp_path, "pooled").ids


def test_when_every_key_of_the_pool_is_revoked_the_run_stops_with_exit_6(tmp_path, serve):
    simulator = serve(faults="key_pool.yaml")
    spec = write_spec(tmp_path, pool_job("revoked", simulator.url, list(REVOKED)))

    result = run(tmp_path, spec)

    assert result.returncode == 6, result.stderr
    assert outputs(tmp_path, "revoked").rows() == []
    # the first key is dropped with its warning; the last one's failure is the run's, as with one key
    assert len([line for line in result.stderr.splitlines() if "failed authentication" in line]) == 1
    assert result.stderr.splitlines()[-1] == ("batchrun: error: run stopped: API key not valid. Please pass a valid "
                                              "API key.; 24 rows left pending; `batchrun run` again resumes")
    for value in REVOKED.values():
        assert_no_key(tmp_path, result.stderr, key=value)


def quota_simulator(tmp_path, per_day: dict[str, int]):
    """The simulator with a daily quota of its own for each key named (by variable) in `per_day`."""
    faults = write_faults(tmp_path, "quota-per-key", {
        "key_limits": {KEYS[env]: {"requests_per_day": count} for env, count in per_day.items()}})
    return start_simulator(tmp_path, faults=faults)


def test_a_key_whose_daily_quota_is_spent_is_set_aside_while_the_others_finish_the_job(tmp_path):
    simulator = quota_simulator(tmp_path, {"POOL_KEY_1": 3})
    try:
        spec = write_spec(tmp_path, pool_job("quota", simulator.url, ["POOL_KEY_1", "POOL_KEY_2"]))
        result = run(tmp_path, spec)
    finally:
        simulator.stop()

    assert result.returncode == 0, result.stderr
    assert [r["status"] for r in outputs(tmp_path, "quota").rows()] == ["ok"] * 3 * PER_KEY_LIMIT
    warnings = [line for line in result.stderr.splitlines() if "spent its daily quota" in line]
    assert len(warnings) == 1 and "POOL_KEY_1" in warnings[0] and "POOL_KEY_2" in warnings[0]
    outcomes = Counter(line["outcome"] for line in generate_lines(simulator))
    assert outcomes["ok"] == 3 * PER_KEY_LIMIT and outcomes["quota"] >= 1


def test_when_every_key_has_spent_its_daily_quota_the_run_stops_with_exit_7(tmp_path):
    simulator = quota_simulator(tmp_path, {"POOL_KEY_1": 2, "POOL_KEY_2": 2})
    try:
        spec = write_spec(tmp_path, pool_job("spent", simulator.url, ["POOL_KEY_1", "POOL_KEY_2"]))
        result = run(tmp_path, spec)
    finally:
        simulator.stop()

    assert result.returncode == 7, result.stderr
    assert [r["status"] for r in outputs(tmp_path, "spent").rows()] == ["ok"] * 4
