"""Files API: the resumable upload in pieces at checked offsets, and the streamed results download."""

from __future__ import annotations

import anyio
import httpx
import pytest
from batch_fake import BASE, FakeBatchApi

from batchrun.batching.exchange import BatchApi, BatchApiError
from batchrun.batching.files import download_lines, upload_file
from batchrun.records import Outcome


def run(coro_fn, fake: FakeBatchApi):
    async def main():
        async with fake.client() as client:
            return await coro_fn(BatchApi(client, BASE, "KEY-123"))
    return anyio.run(main)


def test_a_file_is_sent_in_pieces_upload_then_upload_finalize_at_each_offset(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(b"0123456789" * 25)  # 250 bytes
    fake = FakeBatchApi()
    name = run(lambda api: upload_file(api, path, "batchrun-job-abc", chunk_size=100), fake)
    assert name == "files/f1"
    assert fake.files[name] == path.read_bytes()
    assert fake.pieces == [("upload", 0, 100), ("upload", 100, 100), ("upload, finalize", 200, 50)]
    start = fake.requests[0]
    assert (start.headers["x-goog-upload-header-content-length"], start.headers["x-goog-upload-header-content-type"]) == (
        "250", "application/jsonl")
    assert all(r.headers["x-goog-api-key"] == "KEY-123" for r in fake.requests)


def test_a_file_smaller_than_one_piece_is_one_upload_finalize(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(b"{}\n")
    fake = FakeBatchApi()
    run(lambda api: upload_file(api, path, "d"), fake)
    assert fake.pieces == [("upload, finalize", 0, 3)]


def test_an_upload_status_other_than_active_mid_file_is_a_retryable_protocol_error(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(b"x" * 20)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("x-goog-upload-command") == "start":
            return httpx.Response(200, headers={"x-goog-upload-url": f"{BASE}/up"})
        return httpx.Response(200, headers={"x-goog-upload-status": "final"}, json={"file": {"name": "files/x"}})

    async def main():
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            await upload_file(BatchApi(client, BASE, "k"), path, "d", chunk_size=10)

    with pytest.raises(BatchApiError, match="x-goog-upload-status is 'final', expected 'active'") as caught:
        anyio.run(main)
    assert (caught.value.reply.outcome, caught.value.reply.error_kind) == (Outcome.RETRY, "malformed")


def test_a_start_reply_without_an_upload_url_is_a_protocol_error(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(b"x")

    async def main():
        transport = httpx.MockTransport(lambda request: httpx.Response(200, json={}))
        async with httpx.AsyncClient(transport=transport) as client:
            await upload_file(BatchApi(client, BASE, "k"), path, "d")

    with pytest.raises(BatchApiError, match="x-goog-upload-url"):
        anyio.run(main)


def test_a_429_on_upload_start_is_classified_as_in_a_synchronous_run(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(b"x")
    fake = FakeBatchApi(faults={"upload_start": [429]})
    with pytest.raises(BatchApiError) as caught:
        run(lambda api: upload_file(api, path, "d"), fake)
    assert (caught.value.reply.outcome, caught.value.reply.error_kind, caught.value.status) == (
        Outcome.RETRY, "rate_limited", 429)


def test_the_results_file_is_downloaded_line_by_line_blank_lines_skipped():
    fake = FakeBatchApi(files={"files/r1": b'{"key":"a"}\n\n{"key":"b"}\n'})

    async def lines(api):
        return [line async for line in download_lines(api, "files/r1")]

    assert run(lines, fake) == ['{"key":"a"}', '{"key":"b"}']
    assert str(fake.requests[0].url) == f"{BASE}/download/v1beta/files/r1:download?alt=media"


def test_a_503_on_download_is_a_retryable_error():
    fake = FakeBatchApi(files={"files/r1": b"{}\n"}, faults={"download": [503]})

    async def lines(api):
        return [line async for line in download_lines(api, "files/r1")]

    with pytest.raises(BatchApiError, match="download of files/r1") as caught:
        run(lines, fake)
    assert (caught.value.reply.outcome, caught.value.reply.error_kind) == (Outcome.RETRY, "unavailable")


def test_a_transport_failure_is_classified_and_the_key_never_appears_in_the_message(tmp_path):
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused for KEY-123")

    async def main():
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            await upload_file(BatchApi(client, BASE, "KEY-123"), path, "d")

    path = tmp_path / "c.jsonl"
    path.write_bytes(b"x")
    with pytest.raises(BatchApiError) as caught:
        anyio.run(main)
    assert caught.value.reply.error_kind == "connection"
    assert "KEY-123" not in str(caught.value) and "KEY-123" not in (caught.value.reply.error_message or "")


def test_the_download_hands_out_each_line_before_the_next_is_received():
    produced = []

    class Lines(httpx.AsyncByteStream):
        async def __aiter__(self):
            for n in range(5):
                produced.append(n)
                yield b'{"key":"r%d"}\n' % n

    transport = httpx.MockTransport(lambda request: httpx.Response(200, stream=Lines()))

    async def main():
        seen = []
        async with httpx.AsyncClient(transport=transport) as client:
            async for line in download_lines(BatchApi(client, BASE, "k"), "files/r1"):
                seen.append((line, len(produced)))
        return seen

    assert anyio.run(main) == [(f'{{"key":"r{n}"}}', n + 1) for n in range(5)]
