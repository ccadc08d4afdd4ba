"""End to end: the API key as a user sets it, read by `batchrun run` once, before anything is planned or sent.

A key wrapped in whitespace (`$(cat keyfile)`, a `.env` file with CRLF line ends) just works; a key
holding a character no HTTP header can carry is refused with one line and exit 2, naming the variable
and never the value.
"""

from __future__ import annotations

from e2e_helpers import (  # noqa: F401 (serve is a fixture)
    FAKE_KEY,
    KEY_ENV,
    assert_no_key,
    outputs,
    run_job,
    serve,
    text_job,
    write_spec,
)

REVOKED_KEY = "test-key-e2e-revoked-4242"  # listed in e2e_jobs/bad_key.yaml
UNSENDABLE_KEYS = {
    "a line break": f"{FAKE_KEY[:9]}\r\nX-Injected: 1",
    "a control character": f"{FAKE_KEY[:9]}\x07{FAKE_KEY[9:]}",
    "a non-ASCII character": f"{FAKE_KEY[:9]}é{FAKE_KEY[9:]}",
}


def test_a_key_no_header_can_carry_ends_the_run_at_start_with_one_line_and_exit_2(tmp_path, serve):
    simulator = serve(faults="bad_key.yaml")
    spec = write_spec(tmp_path, text_job("unsendable", simulator.url, 3))
    expected = (
        f"batchrun: error: {spec}: provider.api_key_env: the key in {KEY_ENV} holds a character an HTTP "
        "header can't carry (a line break, a control character or a non-ASCII character); set it again without it"
    )

    for what, key in UNSENDABLE_KEYS.items():
        result = run_job(tmp_path, spec, key=key)

        assert result.returncode == 2, (what, result.stderr)
        assert result.stderr.splitlines() == [expected], what
        assert "Traceback" not in result.stderr and result.stdout == ""
        assert FAKE_KEY[:9] not in result.stderr + result.stdout
    assert not (tmp_path / "outputs").exists()  # nothing planned
    assert simulator.requests() == []  # nothing sent


def test_a_key_wrapped_in_whitespace_is_sent_without_it(tmp_path, serve):
    simulator = serve(faults="bad_key.yaml")
    padded_spec = write_spec(tmp_path, text_job("padded", simulator.url, 3))
    revoked_spec = write_spec(tmp_path, text_job("revoked", simulator.url, 3, limits={"concurrency": 1}))

    padded = run_job(tmp_path, padded_spec, key=f"  {FAKE_KEY}\n")
    revoked = run_job(tmp_path, revoked_spec, key=f"{REVOKED_KEY}\r\n")

    assert padded.returncode == 0, padded.stderr
    assert {r["status"] for r in outputs(tmp_path, "padded").rows()} == {"ok"}
    # the simulator refuses the revoked key only as it is, without the CRLF: that is what it received
    assert revoked.returncode == 6, revoked.stderr
    outcomes = [line["outcome"] for line in simulator.requests()]
    assert len(outcomes) == 4 and "bad_key" not in outcomes[:3] and outcomes[3] == "bad_key"
    assert_no_key(tmp_path, padded.stderr, revoked.stderr)
    assert_no_key(tmp_path, revoked.stderr, key=REVOKED_KEY)
