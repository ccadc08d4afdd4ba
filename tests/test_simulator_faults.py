"""Fault profiles, the faults YAML file, and the seeded per-request decisions."""

from __future__ import annotations

import pytest

from batchrun.errors import SpecError, UsageError
from batchrun.simulator.faults import (
    PROFILES,
    FaultConfig,
    decide,
    load_faults_file,
    profile_config,
)


def write(tmp_path, text: str):
    path = tmp_path / "faults.yaml"
    path.write_text(text)
    return path


def test_a_full_faults_file_loads(tmp_path):
    config = load_faults_file(write(tmp_path, """\
seed: 7
latency: {distribution: long_tail, median_ms: 40, p99_ms: 800}
limits: {requests_per_minute: 60, images_per_minute: 10, requests_per_day: 1000}
server_error: 0.02
unavailable: {every: 10}
hang: {rate: 0.01, seconds: 2}
drop: {first: 3}
thought_images: 0.5
bad_keys: [bad-key-1]
require_key: true
image_mime: image/jpeg
"""))
    assert config.seed == 7 and config.server_error.rate == 0.02
    assert config.unavailable.every == 10 and config.hang.seconds == 2 and config.drop.first == 3
    assert config.limits.images_per_minute == 10 and config.bad_keys == ["bad-key-1"]


@pytest.mark.parametrize(
    "text,path,fix",
    [
        ("server_eror: 0.1\n", "server_eror", "top-level keys are seed, latency"),
        ("latency: {msec: 5}\n", "latency.msec", "unknown key"),
        ("server_error: {rate: 1.5}\n", "server_error.rate", "less than or equal to 1"),
        ("latency: {distribution: gaussian}\n", "latency.distribution", "'fixed', 'uniform' or 'long_tail'"),
        ("server_error: 0.6\nunavailable: 0.6\n", "", "add up to 1.2"),
        ("hang: {every: 0}\n", "hang.every", "greater than or equal to 1"),
    ],
)
def test_a_bad_faults_file_names_the_yaml_path_and_the_fix(tmp_path, text, path, fix):
    with pytest.raises(SpecError) as caught:
        load_faults_file(write(tmp_path, text))
    assert caught.value.file.endswith("faults.yaml")
    assert caught.value.path == path
    assert fix in caught.value.message


def test_billing_faults_are_read_by_rate_or_schedule_and_count_in_the_rates(tmp_path):
    config = load_faults_file(write(tmp_path, "billing_402: {every: 50}\nprepaid_429: 0.25\n"))
    assert config.billing_402.every == 50 and config.prepaid_429.rate == 0.25
    with pytest.raises(SpecError, match="add up to 1.05"):
        load_faults_file(write(tmp_path, "billing_402: 0.5\nprepaid_429: 0.3\nserver_error: 0.25\n"))


def test_new_faults_leave_the_draws_of_existing_ones_alone():
    old = FaultConfig(server_error=0.1, unavailable=0.1)
    new = FaultConfig(server_error=0.1, unavailable=0.1, prepaid_429=0.1)
    both = [(decide(old, 3, n).fault, decide(new, 3, n).fault) for n in range(500)]
    assert all(a == b for a, b in both if a is not None)  # the new fault only takes requests that were ok
    assert {b for a, b in both if a is None} == {None, "prepaid_429"}


def test_a_faults_file_that_is_not_a_mapping_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match="mapping"):
        load_faults_file(write(tmp_path, "- 1\n- 2\n"))


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_is_a_valid_config(name):
    assert isinstance(profile_config(name), FaultConfig)


def test_flaky_never_hangs_longer_than_two_seconds():
    flaky = profile_config("flaky")
    assert flaky.hang.seconds is not None and flaky.hang.seconds <= 2


def test_an_unknown_profile_is_a_usage_error():
    with pytest.raises(UsageError, match="clean, flaky, overloaded, quota"):
        profile_config("chaotic")


def test_decisions_depend_only_on_seed_and_arrival_number():
    config = profile_config("flaky")
    assert [decide(config, 1, n) for n in range(300)] == [decide(config, 1, n) for n in range(300)]
    assert [decide(config, 1, n) for n in range(300)] != [decide(config, 2, n) for n in range(300)]
    assert decide(config, 1, 250) == decide(config, 1, 250)


def test_schedules_win_over_rates_in_a_fixed_order():
    config = FaultConfig(server_error={"every": 2}, unavailable={"every": 1}, blocked=1.0)
    assert [decide(config, 0, n).fault for n in range(4)] == [
        "unavailable", "server_error", "unavailable", "server_error"]


def test_clean_has_no_faults_no_latency_and_no_thought_images():
    config = profile_config("clean")
    assert {decide(config, 0, n) for n in range(200)} == {decide(config, 0, 0)}
    assert decide(config, 0, 0).fault is None and decide(config, 0, 0).delay_s == 0
