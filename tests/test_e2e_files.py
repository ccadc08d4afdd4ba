"""End to end: a product photo above the inline limit goes through the Files API, against the simulator
as a real HTTP server, and a second job reuses the upload.

The simulator refuses bodies over 3,000 bytes (`max_request_bytes`, as Google refuses bodies over its
limit) and the photos are about 3 KB (4 KB in base64): inline, every request would be refused; with
`provider.inline_limit_mb` lowered below that, each photo is uploaded once and referred to by `fileData`.
"""

from __future__ import annotations

from e2e_helpers import (
    batchrun,
    cli_env,
    image_job,
    outputs,
    run_job,
    start_simulator,
    write_faults,
    write_spec,
)

SMALL_LIMIT_MB = 0.002  # 2,097 bytes: less than one photo in base64


def uploads_of(requests: list[dict]) -> int:
    return sum(1 for line in requests if line["rpc"] == "files.upload.start")


def test_a_photo_over_the_inline_limit_is_uploaded_once_and_a_second_job_reuses_it(tmp_path):
    faults = write_faults(tmp_path, "small_bodies", {"max_request_bytes": 3000})
    simulator = start_simulator(tmp_path, faults=faults)
    env = cli_env(BATCHRUN_CACHE_DIR=str(tmp_path / "cache"))
    try:
        provider = {"inline_limit_mb": SMALL_LIMIT_MB}
        first = write_spec(tmp_path, image_job("first", simulator.url, tmp_path, photos=1, scenes=2, provider=provider))
        second = write_spec(tmp_path, image_job("second", simulator.url, tmp_path, photos=1, scenes=3,
                                                provider=provider))

        ran = run_job(tmp_path, first, env=env)

        assert ran.returncode == 0, ran.stderr
        assert {row["status"] for row in outputs(tmp_path, "first").rows()} == {"ok"}
        generated = [line for line in simulator.requests() if line["rpc"] == "generateContent"]
        assert [line["status"] for line in generated] == [200, 200]
        assert uploads_of(simulator.requests()) == 1

        again = run_job(tmp_path, second, env=env)

        assert again.returncode == 0, again.stderr
        assert len(outputs(tmp_path, "second").rows()) == 3
        assert {row["status"] for row in outputs(tmp_path, "second").rows()} == {"ok"}
        assert uploads_of(simulator.requests()) == 1  # the second job found the upload in the shared book
        assert [line["rpc"] for line in simulator.requests()].count("files.get") == 1  # checked once
    finally:
        simulator.stop()


def test_the_same_photo_inline_at_the_default_limit_is_refused_by_the_server_payload_limit(tmp_path):
    faults = write_faults(tmp_path, "small_bodies", {"max_request_bytes": 3000})
    simulator = start_simulator(tmp_path, faults=faults)
    try:
        spec = write_spec(tmp_path, image_job("inline", simulator.url, tmp_path, photos=1, scenes=1))

        ran = run_job(tmp_path, spec, env=cli_env(BATCHRUN_CACHE_DIR=str(tmp_path / "cache")))

        assert ran.returncode == 11, ran.stderr  # the first replies were all 400: a configuration stop
        assert "Request payload size exceeds the limit: 3000 bytes." in ran.stderr
        assert uploads_of(simulator.requests()) == 0
    finally:
        simulator.stop()


def test_an_openai_job_with_a_photo_over_the_limit_is_refused_at_plan_time(tmp_path):
    spec = write_spec(tmp_path, image_job("chat", "http://127.0.0.1:9/v1", tmp_path, photos=1, scenes=1,
                                          provider={"kind": "openai", "inline_limit_mb": SMALL_LIMIT_MB}))

    planned = batchrun(tmp_path, "plan", str(spec))

    assert planned.returncode == 2, planned.stderr
    assert "photos/BTL-001.png is 0.0025 MB (0.00333 MB in base64), over the 0.002 MB inline request limit" in planned.stderr
    assert "request.image_prep" in planned.stderr
