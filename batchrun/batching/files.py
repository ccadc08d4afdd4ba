"""The Files API: a chunk's JSONL file uploaded with the resumable protocol, a results file downloaded.

In:  a `BatchApi`, a file on disk or an open binary stream (upload) or a `files/...` name (download).
Out: the uploaded file's name (`files/abc`) or its whole File resource (an input image's upload needs
     its `uri` and `expirationTime`); the results file's lines, one at a time.

Invariants (reference §7.5): the upload starts with `X-Goog-Upload-Command: start` and sends the bytes
in `chunk_size` pieces read from disk one at a time (`upload` for each but the last, `upload, finalize`
for the last, each at its `X-Goog-Upload-Offset`), so memory holds one piece, never the whole file;
every reply's `x-goog-upload-status` is checked (`active` to go on, `final` at the end). The download
is streamed: memory holds one line.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from ..providers.uploads import UploadedImage, UploadFailed
from ..records import ImageRef
from .exchange import BatchApi, BatchApiError, protocol_error, response_json

UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024  # what the google-genai SDK sends per piece
JSONL_MIME = "application/jsonl"


async def upload_file(api: BatchApi, path: Path, display_name: str, *, mime: str = JSONL_MIME,
                      chunk_size: int = UPLOAD_CHUNK_BYTES) -> str:
    """Upload a file with the resumable protocol; the name the Files API gave it."""
    size = Path(path).stat().st_size
    with Path(path).open("rb") as file:
        return uploaded_name(await upload_stream(api, file, size, display_name, mime=mime, chunk_size=chunk_size))


async def upload_stream(api: BatchApi, file: BinaryIO, size: int, display_name: str, *, mime: str,
                        chunk_size: int = UPLOAD_CHUNK_BYTES) -> httpx.Response:
    """Upload `size` bytes read from `file` with the resumable protocol; the finalize reply."""
    upload_url = await start_upload(api, size, display_name, mime)
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


async def _send_pieces(api: BatchApi, upload_url: str, file: BinaryIO, size: int,
                       chunk_size: int) -> httpx.Response:
    offset = 0
    while True:
        piece = file.read(chunk_size)
        last = offset + len(piece) >= size
        response = await send_piece(api, upload_url, piece, offset, last)
        offset += len(piece)
        if last:
            return response


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
    return str(uploaded_file(response)["name"])


def uploaded_file(response: httpx.Response) -> dict[str, Any]:
    """The File resource in the finalize reply, which must at least name the file."""
    file = response_json("upload finalize", response).get("file")
    name = file.get("name") if isinstance(file, dict) else None
    if not isinstance(file, dict) or not isinstance(name, str) or not name:
        raise protocol_error("upload finalize", response, "reply names no file")
    return file


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



async def file_exists(api: BatchApi, file_name: str) -> bool:
    """Whether the server still holds a file: False when it answers 404 or 403 (gone, or another project's)."""
    try:
        await api.send(f"check of {file_name}", "GET", api.url(f"/v1beta/{file_name}"))
    except BatchApiError as exc:
        if exc.status in (403, 404):
            return False
        raise
    return True


class ImageFilesRoute:
    """The Files API as an input image's upload uses it (`providers.uploads.FilesRoute`), over a run's client."""

    def __init__(self, base_url: str | None, api_key: str | None, *, auth: str = "x-goog-api-key") -> None:
        self.base_url, self.auth = base_url, auth
        self._api_key = api_key

    def __repr__(self) -> str:
        return f"ImageFilesRoute(base_url={self.base_url!r}, key={'set' if self._api_key else 'none'})"

    def _api(self, client: httpx.AsyncClient) -> BatchApi:
        return BatchApi(client, self.base_url, self._api_key, auth=self.auth)

    async def upload(self, client: httpx.AsyncClient, ref: ImageRef, data: bytes) -> UploadedImage:
        """Upload an input image's (checked) bytes; UploadFailed carries the reply of a refusal."""
        digest = ref.sha256.removeprefix("sha256:").lower()
        try:
            response = await upload_stream(self._api(client), io.BytesIO(data), len(data),
                                           f"batchrun-image-{digest[:16]}", mime=ref.mime)
            file = uploaded_file(response)
        except BatchApiError as exc:
            raise UploadFailed(exc.reply) from exc
        return UploadedImage(digest, str(file["name"]), str(file.get("uri") or self._api(client).url(
            f"/v1beta/{file['name']}")), str(file.get("mimeType") or ref.mime), str(file.get("expirationTime") or ""))

    async def exists(self, client: httpx.AsyncClient, name: str) -> bool:
        """Whether the server still holds `name`; UploadFailed for any other failure."""
        try:
            return await file_exists(self._api(client), name)
        except BatchApiError as exc:
            raise UploadFailed(exc.reply) from exc
