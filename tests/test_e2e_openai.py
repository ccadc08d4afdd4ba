"""End to end: `provider.kind: openai` through the real CLI against `batchrun simulate`'s chat route.

The same jobs as the Gemini ones, only the provider switched: a text job, a JSON-schema job, a streamed
job, an image job in each of the reply shapes gateways use (and by URL, with failed downloads), and the
stops (a billing 429, a bad key, a wrong base URL). The simulator's request log says what it received.
"""

from __future__ import annotations

import hashlib
import io
import json

import jsonschema
import pytest
from e2e_helpers import (  # noqa: F401 (serve is a fixture)
    assert_no_key,
    batchrun,
    image_job,
    outputs,
    run_job,
    sends_by_id,
    serve,
    text_job,
    write_faults,
    write_spec,
)
from PIL import Image

CHAT = "chat.completions"
REVOKED_KEY = "test-key-e2e-revoked-4242"  # listed in e2e_jobs/bad_key.yaml


def chat(spec: dict, url: str) -> dict:
    """A job switched to the chat route of the simulator at `url`: only the provider changes."""
    spec["provider"] = {**spec["provider"], "kind": "openai", "base_url": f"{url}/v1"}
    return spec


def chat_requests(simulator) -> list[dict]:
    return [line for line in simulator.requests() if line["rpc"] == CHAT]


def test_a_text_job_runs_through_chat_completions_with_text_tokens_and_cost(tmp_path, serve):
    simulator = serve(profile="clean", seed=5)
    spec = write_spec(tmp_path, chat(text_job("chat-text", simulator.url, 12), simulator.url))

    done = run_job(tmp_path, spec)

    assert done.returncode == 0, done.stderr
    rows = outputs(tmp_path, "chat-text").rows()
    assert len(rows) == 12 and {row["status"] for row in rows} == {"ok"}
    assert all(row["text"] and row["finish_reason"] == "stop" for row in rows)
    assert all(row["prompt_tokens"] > 0 and row["total_tokens"] > 0 and row["cost_usd"] > 0 for row in rows)
    assert all(row["response_id"].startswith("chatcmpl-") for row in rows)
    assert len(chat_requests(simulator)) == 12 == len(simulator.requests())
    status = json.loads(batchrun(tmp_path, "status", str(spec), "--json").stdout)
    assert (status["pending"], status["done"]["ok"]) == (0, 12)
    assert_no_key(tmp_path, done.stdout, done.stderr)


def test_the_same_text_job_on_either_kind_plans_the_same_rows_and_other_request_ids(tmp_path, serve):
    simulator = serve(profile="clean", seed=5)
    native = write_spec(tmp_path, text_job("native", simulator.url, 6))
    switched = write_spec(tmp_path, chat(text_job("switched", simulator.url, 6), simulator.url))
    assert run_job(tmp_path, native).returncode == 0
    assert run_job(tmp_path, switched).returncode == 0
    a, b = outputs(tmp_path, "native").rows(), outputs(tmp_path, "switched").rows()
    assert len(a) == len(b) == 6 and not {r["request_id"] for r in a} & {r["request_id"] for r in b}
    assert {line["rpc"] for line in simulator.requests()} == {"generateContent", CHAT}


def test_every_reply_of_a_json_schema_job_validates_and_is_sent_as_response_format(tmp_path, serve):
    schema = {"type": "object", "properties": {"headline": {"type": "string", "maxLength": 60},
                                               "bullets": {"type": "array", "items": {"type": "string"},
                                                           "minItems": 2, "maxItems": 4}},
              "required": ["headline", "bullets"], "additionalProperties": False}
    simulator = serve(profile="clean", seed=3)
    job = text_job("chat-json", simulator.url, 8, request={"generation_config": {"responseJsonSchema": schema}})
    spec = write_spec(tmp_path, chat(job, simulator.url))

    done = run_job(tmp_path, spec)

    assert done.returncode == 0, done.stderr
    for row in outputs(tmp_path, "chat-json").rows():
        jsonschema.validate(json.loads(row["text"]), schema)
    shown = shown_body(tmp_path, spec)
    assert shown["response_format"] == {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}


def shown_body(folder, spec) -> dict:
    """The wire body `plan --show 1` prints for the first request."""
    out = batchrun(folder, "plan", str(spec), "--show", "1").stdout
    return json.loads(out[out.index("{"):])["body"]


def test_a_streamed_chat_job_gets_the_same_text_and_usage_as_a_plain_one(tmp_path, serve):
    plain_sim, stream_sim = serve(profile="clean", seed=9), serve(profile="clean", seed=9)
    plain = write_spec(tmp_path, chat(text_job("plain", plain_sim.url, 5), plain_sim.url))
    streamed = chat(text_job("streamed", stream_sim.url, 5), stream_sim.url)
    streamed["provider"]["stream"] = True
    streamed_spec = write_spec(tmp_path, streamed)
    assert run_job(tmp_path, plain).returncode == 0
    done = run_job(tmp_path, streamed_spec)
    assert done.returncode == 0, done.stderr

    def by_row(name):
        return {r["row_id"]: (r["text"], r["prompt_tokens"], r["output_text_tokens"], r["thoughts_tokens"])
                for r in outputs(tmp_path, name).rows()}

    # the stream flag is not part of the request id: the same rows, the same replies
    assert by_row("plain") == by_row("streamed")


@pytest.mark.parametrize("shape", ["images", "markdown", "parts", "url"])
def test_an_image_job_through_chat_saves_every_image_in_each_reply_shape(tmp_path, serve, shape):
    simulator = serve(profile="clean", seed=2)
    job = image_job("chat-images", simulator.url, tmp_path, photos=3, scenes=2, size="1K",
                    request={"extra_body": {"sim_image_shape": shape}})
    spec = write_spec(tmp_path, chat(job, simulator.url))

    done = run_job(tmp_path, spec)

    assert done.returncode == 0, done.stderr
    job_out = outputs(tmp_path, "chat-images")
    rows = job_out.rows()
    assert len(rows) == 6 and {row["status"] for row in rows} == {"ok"}
    for row in rows:
        data = (job_out.folder / row["image_path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["image_sha256"]
        assert Image.open(io.BytesIO(data)).size == (row["image_width"], row["image_height"]) == (1024, 1024)
        assert row["output_image_tokens"] > 0 and row["cost_usd"] > 0
        assert row["text"] is None or "base64" not in row["text"]
    downloads = [line for line in simulator.requests() if line["rpc"] == "sim.image"]
    assert len(downloads) == (6 if shape == "url" else 0)


def test_failed_image_downloads_are_retried_and_no_image_is_lost(tmp_path, serve):
    faults = write_faults(tmp_path, "url-faults", {"chat_image_shape": "url", "image_url_fault": {"first": 3}})
    simulator = serve(faults=str(faults))
    job = image_job("chat-url", simulator.url, tmp_path, photos=2, scenes=2, size="1K",
                    limits={"concurrency": 1})
    spec = write_spec(tmp_path, chat(job, simulator.url))

    done = run_job(tmp_path, spec)

    assert done.returncode == 0, done.stderr
    rows = outputs(tmp_path, "chat-url").rows()
    assert len(rows) == 4 and {row["status"] for row in rows} == {"ok"}
    assert sum(row["attempts"] for row in rows) == 4 + 3  # each failed download sent its request again
    failed = [line for line in simulator.requests() if line["rpc"] == "sim.image" and line["status"] == 503]
    assert len(failed) == 3


def test_a_billing_429_stops_the_run_with_exit_7_and_records_nothing(tmp_path, serve):
    faults = write_faults(tmp_path, "billing", {"prepaid_429": {"first": 1000}})
    simulator = serve(faults=str(faults))
    spec = write_spec(tmp_path, chat(text_job("chat-billing", simulator.url, 20), simulator.url))

    done = run_job(tmp_path, spec)

    assert done.returncode == 7, done.stderr
    assert "quota" in done.stderr.strip().splitlines()[-1].lower()
    assert outputs(tmp_path, "chat-billing").rows() == []
    assert len(simulator.requests()) <= 8  # at most the requests in flight when the first reply came


def test_a_bad_key_stops_the_run_with_exit_6(tmp_path, serve):
    simulator = serve(faults="bad_key.yaml")
    spec = write_spec(tmp_path, chat(text_job("chat-key", simulator.url, 20), simulator.url))

    done = run_job(tmp_path, spec, key=REVOKED_KEY)

    assert done.returncode == 6, done.stderr
    assert outputs(tmp_path, "chat-key").rows() == []
    received = simulator.requests()
    assert 0 < len(received) <= 8 and {line["outcome"] for line in received} == {"bad_key"}
    assert_no_key(tmp_path, done.stdout, done.stderr, key=REVOKED_KEY)


def test_a_wrong_base_url_path_is_a_configuration_error_with_exit_11(tmp_path, serve):
    simulator = serve(profile="clean")
    job = chat(text_job("chat-path", simulator.url, 20), simulator.url)
    job["provider"]["base_url"] = f"{simulator.url}/v2"
    spec = write_spec(tmp_path, job)

    done = run_job(tmp_path, spec)

    assert done.returncode == 11, done.stderr
    assert outputs(tmp_path, "chat-path").rows() == []
    job["provider"]["base_url"] = f"{simulator.url}/v1"
    write_spec(tmp_path, job)
    assert run_job(tmp_path, spec).returncode == 0


def test_a_cap_stops_a_chat_image_job_within_it_and_a_higher_cap_finishes_without_resending(tmp_path, serve):
    simulator = serve(profile="clean", seed=4)
    job = image_job("chat-cap", simulator.url, tmp_path, photos=3, scenes=2, size="1K",
                    request={"extra_body": {"sim_image_shape": "markdown"}}, limits={"concurrency": 2})
    spec = write_spec(tmp_path, chat(job, simulator.url))
    cap = 0.2  # six 1K images of gemini-3.1-flash-image cost about $0.40

    capped = run_job(tmp_path, spec, "--max-cost", str(cap))

    assert capped.returncode == 4, capped.stderr
    out = outputs(tmp_path, "chat-cap")
    spent = sum(row["cost_usd"] for row in out.rows())
    assert 0 < spent <= cap and 0 < len(out.rows()) < 6
    rest = run_job(tmp_path, spec, "--max-cost", "5")
    assert rest.returncode == 0, rest.stderr
    assert sorted(row["request_id"] for row in out.rows()) == sorted(out.ids)
    assert sends_by_id(simulator.requests(), out.body_hashes("openai")) == dict.fromkeys(out.ids, 1)
