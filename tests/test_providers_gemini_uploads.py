"""The Gemini adapter past its inline limit: the largest photos go by `fileData` after one upload, the
rest inline; a 403 to a request that referred to a file makes it upload again on the retry. Sent
through the in-process simulator, whose Files API holds the uploads."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
from datetime import UTC, datetime
from pathlib import Path

import anyio
import httpx
import pytest
from PIL import Image

from batchrun.batching.files import ImageFilesRoute
from batchrun.outcomes import ErrorKind
from batchrun.planning.spec import ProviderSpec
from batchrun.providers.gemini import GeminiProvider, gemini_body
from batchrun.providers.registry import ProviderSettings, build_provider
from batchrun.providers.uploads import ImageUploads, UploadBook
from batchrun.records import ImageRef, Outcome, RequestRecord
from batchrun.rendered import rendered_request
from batchrun.simulator.files import FILE_LIFETIME_S
from batchrun.simulator.transport import SimulatorTransport

SIM = "http://simulator.test"
MODEL = "gemini-2.5-flash"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def photo(folder: Path, name: str, side: int) -> ImageRef:
    """A noisy PNG (its size grows with its side) written to `folder`."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), random.Random(side).randbytes(side * side * 3)).save(buffer, format="PNG")
    data = buffer.getvalue()
    (folder / name).write_bytes(data)
    return ImageRef(name, hashlib.sha256(data).hexdigest(), "image/png", len(data), side, side)


def record(*refs: ImageRef) -> RequestRecord:
    parts = [{"text": "Describe the photos."}, *({"image": f"sha256:{r.sha256}", "mime": r.mime} for r in refs)]
    return RequestRecord("r1", 0, MODEL, rendered_request(None, parts, {}, [], {}), {}, images=list(refs))


def provider(folder: Path, limit: int) -> GeminiProvider:
    uploads = ImageUploads(ImageFilesRoute(SIM, None), UploadBook(None))
    return GeminiProvider(SIM, None, spec_dir=folder, inline_limit=limit, uploads=uploads)


def send_all(transport: SimulatorTransport, adapter: GeminiProvider, *records: RequestRecord):
    async def main():
        async with httpx.AsyncClient(transport=transport) as client:
            return [await adapter.send(client, rec) for rec in records]
    return anyio.run(main)


def parts_sent(adapter: GeminiProvider, rec: RequestRecord, files) -> list[dict]:
    return json.loads(adapter.encode_body(rec, files))["contents"][0]["parts"]


def test_a_photo_past_the_limit_goes_by_file_and_a_small_one_stays_inline(tmp_path):
    big, small = photo(tmp_path, "big.png", 60), photo(tmp_path, "small.png", 8)
    limit = 1000 + 4 * ((small.bytes + 2) // 3)  # room for the small photo and the text, not the big one
    adapter, transport = provider(tmp_path, limit), SimulatorTransport(clock=Clock())
    [reply] = send_all(transport, adapter, record(big, small))
    assert reply.outcome is Outcome.OK
    [upload] = transport.core.batches.files.files.values()
    assert upload.sha256_hex == big.sha256 and upload.mime == "image/png"
    uploaded = adapter.uploads.book.get(big.sha256)
    parts = parts_sent(adapter, record(big, small), {big.sha256: uploaded})
    assert parts[1] == {"fileData": {"mimeType": "image/png", "fileUri": uploaded.uri}}
    assert parts[2]["inlineData"]["data"] == base64.b64encode((tmp_path / "small.png").read_bytes()).decode()


def test_a_request_within_the_limit_uploads_nothing(tmp_path):
    big = photo(tmp_path, "big.png", 60)
    transport = SimulatorTransport(clock=Clock())
    [reply] = send_all(transport, provider(tmp_path, 10 * big.bytes), record(big))
    assert reply.outcome is Outcome.OK
    assert transport.core.batches.files.files == {}


def test_two_requests_with_the_same_photo_upload_it_once_and_cost_the_same_as_inline(tmp_path):
    big = photo(tmp_path, "big.png", 60)
    transport = SimulatorTransport(clock=Clock())
    by_file = send_all(transport, provider(tmp_path, 1000), record(big), record(big))
    [inline] = send_all(SimulatorTransport(clock=Clock()), provider(tmp_path, 10 * big.bytes), record(big))
    assert len(transport.core.batches.files.files) == 1
    assert [reply.usage.prompt for reply in by_file] == [inline.usage.prompt] * 2
    assert by_file[0].usage.prompt_image == inline.usage.prompt_image > 0


def test_a_file_expired_on_the_server_is_a_retry_and_the_retry_uploads_it_again(tmp_path):
    big = photo(tmp_path, "big.png", 60)
    clock = Clock()
    transport = SimulatorTransport(clock=clock)
    adapter = provider(tmp_path, 1000)
    adapter.uploads.now = lambda: datetime.fromtimestamp(0, UTC)  # the client's clock believes the file has time
    send_all(transport, adapter, record(big))
    clock.now += FILE_LIFETIME_S
    [gone, again] = send_all(transport, adapter, record(big), record(big))
    assert (gone.outcome, gone.error_kind, gone.http_status) == (Outcome.RETRY, ErrorKind.INPUT_FILE_GONE, 403)
    assert again.outcome is Outcome.OK
    assert len(transport.core.batches.files.files) == 2


def test_the_registry_builds_the_adapter_with_the_spec_inline_limit(tmp_path):
    spec = ProviderSpec(kind="simulator", inline_limit_mb=0.5)
    adapter = build_provider(ProviderSettings(spec, None, tmp_path))
    assert adapter.inline_limit == 512 * 1024
    assert adapter.uploads is not None and adapter.uploads.book.path is None  # in-process: files end with the run


def test_the_inline_limit_must_be_positive():
    with pytest.raises(ValueError, match="inline_limit_mb"):
        ProviderSpec(kind="gemini", inline_limit_mb=0)


def test_the_request_id_body_does_not_depend_on_the_inline_limit(tmp_path):
    big = photo(tmp_path, "big.png", 60)
    small_limit = ProviderSpec(kind="gemini", inline_limit_mb=0.001)
    assert gemini_body(record(big).body, small_limit) == gemini_body(record(big).body, ProviderSpec(kind="gemini"))


def test_a_large_photo_by_url_is_uploaded_from_the_input_cache(tmp_path):
    from batchrun.planning.inputcache import InputCache

    cache_dir = tmp_path / "cache"
    local = photo(tmp_path, "big.png", 60)
    data = (tmp_path / "big.png").read_bytes()
    InputCache(cache_dir).store(data, "image/png")
    (tmp_path / "big.png").unlink()  # only the cache holds it, as for a photo fetched by URL
    by_url = ImageRef("https://cdn.example/big.png", local.sha256, local.mime, local.bytes, 60, 60)
    uploads = ImageUploads(ImageFilesRoute(SIM, None), UploadBook(None))
    adapter = GeminiProvider(SIM, None, spec_dir=tmp_path, image_cache=cache_dir, inline_limit=1000, uploads=uploads)
    transport = SimulatorTransport(clock=Clock())
    [reply] = send_all(transport, adapter, record(by_url))
    assert reply.outcome is Outcome.OK, reply.error_message
    [upload] = transport.core.batches.files.files.values()
    assert upload.sha256_hex == local.sha256
