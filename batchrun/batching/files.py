"""The Files API: a chunk's JSONL file uploaded with the resumable protocol, a results file downloaded.

In:  a `BatchApi`, a file on disk (upload) or a `files/...` name (download).
Out: the uploaded file's name (`files/abc`); the results file's lines, one at a time.

Invariants (reference §7.5): the upload starts with `X-Goog-Upload-Command: start` and sends the bytes
in `chunk_size` pieces read from disk one at a time (`upload` for each but the last, `upload, finalize`
for the last, each at its `X-Goog-Upload-Offset`), so memory holds one piece, never the whole file;
every reply's `x-goog-upload-status` is checked (`active` to go on, `final` at the end). The download
is streamed: memory holds one line.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

import httpx

from .exchange import BatchApi, protocol_error, response_json

UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024  # what the google-genai SDK sends per piece
JSONL_MIME = "application/jsonl"


async def upload_file(api: BatchApi, path: Path, display_name: str, *, mime: str = JSONL_MIME,
                      chunk_size: int = UPLOAD_CHUNK_BYTES) -> str:
    """Upload a file with the resumable protocol; the name the Files API gave it."""
    size = Path(path).stat().st_size
    upload_url = await start_upload(api, size, display_name, mime)
    with Path(path).open("rb") as file:
        return await _send_pieces(api, upload_url, file, size, chunk_size)


async def start_upload(api: BatchApi, size: int, display_name: str, mime: str) -> str:
    """The `start` exchange: the upload URL the server hands back."""
    headers = {
        "X-Goog-Upload-Protocol": "resumable",
        "X-Goog-Upload-Command": "start",
        "X-Goog-Upload-Header-Content-Length": str(size),
        "X-Goog-Upload-Header-Content-Type": mime,
    }
    response = await api.send("upload start", "POST", api.url("/upload/v1beta/files"), headers=headers,
                              json_body={"file": {"display_name": display_name}})
    upload_url = response.headers.get("x-goog-upload-url")
    if not upload_url:
        raise protocol_error("upload start", response, "reply has no x-goog-upload-url header")
    return str(upload_url)


async def _send_pieces(api: BatchApi, upload_url: str, file: BinaryIO, size: int, chunk_size: int) -> str:
    offset = 0
    while True:
        piece = file.read(chunk_size)
        last = offset + len(piece) >= size
        response = await send_piece(api, upload_url, piece, offset, last)
        offset += len(piece)
        if last:
            return uploaded_name(response)


async def send_piece(api: BatchApi, upload_url: str, piece: bytes, offset: int, last: bool) -> httpx.Response:
    """One `upload` (or, for the last piece, `upload, finalize`) exchange, its upload status checked."""
    command = "upload, finalize" if last else "upload"
    headers = {"X-Goog-Upload-Command": command, "X-Goog-Upload-Offset": str(offset)}
    response = await api.send(f"upload at offset {offset}", "POST", upload_url, headers=headers, content=piece)
    status = response.headers.get("x-goog-upload-status")
    expected = "final" if last else "active"
    if status != expected:
        raise protocol_error(f"upload at offset {offset}", response,
                              f"x-goog-upload-status is {status!r}, expected {expected!r}")
    return response


def uploaded_name(response: httpx.Response) -> str:
    """The `files/...` name in the finalize reply."""
    file = response_json("upload finalize", response).get("file")
    name = file.get("name") if isinstance(file, dict) else None
    if not isinstance(name, str) or not name:
        raise protocol_error("upload finalize", response, "reply names no file")
    return name


def download_url(api: BatchApi, file_name: str) -> str:
    """Where a results file is downloaded from (reference §7.3)."""
    return api.url(f"/download/v1beta/{file_name}:download?alt=media")


async def download_lines(api: BatchApi, file_name: str) -> AsyncIterator[str]:
    """The non-blank lines of a results file, streamed one at a time."""
    what = f"download of {file_name}"
    async with api.stream(what, download_url(api, file_name)) as response:
        try:
            async for line in response.aiter_lines():
                if line.strip():
                    yield line
        except httpx.RequestError as exc:
            raise api.translate(what, exc) from exc

