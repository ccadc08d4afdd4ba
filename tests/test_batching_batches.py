"""Batch jobs: create with a file input, get, paged list, cancel; both spellings of a state."""

from __future__ import annotations

import json

import anyio
import httpx
import pytest
from batch_fake import BASE, FakeBatchApi

from batchrun.batching.batches import (
    BatchState,
    cancel_batch,
    create_batch,
    find_batches,
    get_batch,
    list_batches,
    parse_batch,
    parse_state,
)
from batchrun.batching.exchange import BatchApi, BatchApiError
from batchrun.errors import EXIT_CONFIG, NoBatchRoute
from batchrun.records import Outcome


def run(coro_fn, fake: FakeBatchApi):
    async def main():
        async with fake.client() as client:
            return await coro_fn(BatchApi(client, BASE, "k"))
    return anyio.run(main)


def with_file(fake: FakeBatchApi) -> FakeBatchApi:
    fake.files["files/f1"] = b'{"key":"a","request":{}}\n'
    return fake


@pytest.mark.parametrize(("raw", "state"), [
    ("BATCH_STATE_RUNNING", BatchState.RUNNING), ("JOB_STATE_RUNNING", BatchState.RUNNING),
    ("BATCH_STATE_SUCCEEDED", BatchState.SUCCEEDED), ("JOB_STATE_SUCCEEDED", BatchState.SUCCEEDED),
    ("JOB_STATE_EXPIRED", BatchState.EXPIRED), ("BATCH_STATE_CANCELLED", BatchState.CANCELLED),
    ("JOB_STATE_FAILED", BatchState.FAILED), ("BATCH_STATE_PENDING", BatchState.PENDING),
    ("SOMETHING_NEW", BatchState.UNSPECIFIED), (None, BatchState.UNSPECIFIED),
])
def test_raw_states_of_both_spellings_are_read_alike(raw, state):
    assert parse_state(raw) is state


def test_terminal_states_are_done_and_all_but_succeeded_are_lost():
    assert [s for s in BatchState if s.done] == [BatchState.SUCCEEDED, BatchState.FAILED, BatchState.CANCELLED,
                                                BatchState.EXPIRED]
    assert [s for s in BatchState if s.lost] == [BatchState.FAILED, BatchState.CANCELLED, BatchState.EXPIRED]


def test_a_succeeded_operation_names_its_results_file_from_response_or_metadata_output():
    meta = {"displayName": "d", "state": "JOB_STATE_SUCCEEDED", "batchStats": {"requestCount": "2"}}
    from_response = parse_batch({"name": "batches/1", "metadata": meta, "response": {"responsesFile": "files/r"}})
    from_output = parse_batch({"name": "batches/1", "metadata": {**meta, "output": {"responsesFile": "files/o"}}})
    assert (from_response.results_file, from_output.results_file) == ("files/r", "files/o")
    assert (from_response.display_name, from_response.stats) == ("d", {"requestCount": "2"})


def test_create_posts_a_file_input_on_the_models_route():
    fake = with_file(FakeBatchApi())
    batch = run(lambda api: create_batch(api, "models/gemini-x", "batchrun-job-abc", "files/f1"), fake)
    request = fake.requests[0]
    assert str(request.url) == f"{BASE}/v1beta/models/gemini-x:batchGenerateContent"
    assert json.loads(request.content) == {"batch": {"display_name": "batchrun-job-abc",
                                                     "input_config": {"file_name": "files/f1"}}}
    assert (batch.name, batch.state, batch.display_name) == ("batches/b1", BatchState.PENDING, "batchrun-job-abc")


def test_a_404_on_create_says_the_endpoint_has_no_batch_route():
    fake = FakeBatchApi(no_batch_route=True)
    with pytest.raises(NoBatchRoute, match="has no batch route .* use --tier flex or standard") as caught:
        run(lambda api: create_batch(api, "m", "d", "files/f1"), fake)
    assert caught.value.exit_code == EXIT_CONFIG


def test_a_401_on_create_is_a_stop():
    fake = FakeBatchApi(faults={"create": [401]})
    with pytest.raises(BatchApiError) as caught:
        run(lambda api: create_batch(api, "m", "d", "files/f1"), fake)
    assert caught.value.reply.outcome is Outcome.STOP_AUTH


def test_get_reads_the_state_the_server_reports():
    fake = with_file(FakeBatchApi(states=["JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"]))

    async def create_then_get(api):
        created = await create_batch(api, "m", "d", "files/f1")
        return await get_batch(api, created.name)

    batch = run(create_then_get, fake)
    assert (batch.state, batch.raw_state, batch.results_file) == (
        BatchState.SUCCEEDED, "JOB_STATE_SUCCEEDED", "files/results-b1")


def test_the_listing_follows_page_tokens_and_finds_batches_by_display_name():
    fake = with_file(FakeBatchApi(page_size_cap=2))

    async def create_five_then_find(api):
        for name in ["a", "b", "c", "d", "c"]:
            await create_batch(api, "m", name, "files/f1")
        every = [batch.name async for batch in list_batches(api)]
        return every, [batch.name for batch in await find_batches(api, "c")]

    every, found = run(create_five_then_find, fake)
    assert every == [f"batches/b{n}" for n in range(1, 6)]
    assert found == ["batches/b3", "batches/b5"]
    tokens = [r.url.params.get("pageToken") for r in fake.requests if r.url.path == "/v1beta/batches"]
    assert tokens[:3] == [None, "2", "4"]


def test_cancel_posts_to_the_cancel_route():
    fake = with_file(FakeBatchApi())

    async def create_cancel_get(api):
        created = await create_batch(api, "m", "d", "files/f1")
        await cancel_batch(api, created.name)
        return await get_batch(api, created.name)

    assert run(create_cancel_get, fake).state is BatchState.CANCELLED
    assert [str(r.url) for r in fake.requests if r.url.path.endswith(":cancel")] == [f"{BASE}/v1beta/batches/b1:cancel"]


def test_a_reply_that_names_no_batch_is_a_retryable_protocol_error():
    async def main():
        transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"metadata": {}}))
        async with httpx.AsyncClient(transport=transport) as client:
            await get_batch(BatchApi(client, BASE, "k"), "batches/1")

    with pytest.raises(BatchApiError, match="names no batch") as caught:
        anyio.run(main)
    assert caught.value.reply.outcome is Outcome.RETRY
