"""Input images too large to inline, sent as Files API files: uploaded once per content hash, reused.

In:  an ImageRef the adapter decided to send by file, a way to read its checked bytes, and a
     `FilesRoute` (upload, and ask whether a file still exists) over the run's client.
Out: an `UploadedImage` (file name, uri, mime, expirationTime) for the request's `fileData` part.

Invariants: uploads are recorded in an append-only JSON-lines book (sha256 → file), shared by every job
that sends to the same base URL, so a later run reuses them; the last line for a hash wins and a torn
line is skipped. A recorded file is reused only while it has more than `margin` left before its
expirationTime (files live about 48 hours) and, once per run, after the server confirms it still holds
it (a 404 or 403 means another key's project, or deleted: upload it again). Concurrent requests that
need the same image wait on one lock per hash, so the image is uploaded once. An upload costs nothing:
the image's input tokens are billed in each request that refers to it, as for an inline image.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import anyio
import anyio.to_thread
import httpx

from ..records import ImageRef, ProviderReply

CACHE_ENV = "BATCHRUN_CACHE_DIR"
REUSE_MARGIN = timedelta(hours=1)  # a file this close to expiry may lapse while its requests are retried


@dataclass(frozen=True, slots=True)
class UploadedImage:
    """An input image held by the Files API."""

    sha256: str
    name: str  # files/abc
    uri: str
    mime: str
    expiration_time: str  # RFC 3339, as the server wrote it; "" when it named none


class UploadFailed(Exception):
    """An upload or a file check that failed; `reply` says how, as a generateContent reply would."""

    def __init__(self, reply: ProviderReply) -> None:
        super().__init__(reply.error_message or reply.error_kind)
        self.reply = reply


class FilesRoute(Protocol):
    """The Files API calls an input image's upload needs (`batching.files.ImageFilesRoute`)."""

    async def upload(self, client: httpx.AsyncClient, ref: ImageRef, data: bytes) -> UploadedImage:
        """Upload the image's bytes; UploadFailed if the server refuses."""
        ...

    async def exists(self, client: httpx.AsyncClient, name: str) -> bool:
        """Whether the server still holds the file (False on 404 or 403); UploadFailed otherwise."""
        ...


def base64_size(size: int) -> int:
    """The length of `size` bytes in base64."""
    return 4 * ((size + 2) // 3)


def images_by_file(refs: list[ImageRef], body_bytes: int, limit: int) -> list[ImageRef]:
    """The images to send by file so that the inline body fits in `limit`: the largest first.

    `body_bytes` is the body without its images' data; each image inlined adds its base64 length."""
    size = body_bytes + sum(base64_size(ref.bytes) for ref in refs)
    if size <= limit:
        return []  # nearly every request: nothing to sort
    chosen: list[ImageRef] = []
    for ref in sorted(dict.fromkeys(refs), key=lambda ref: (-ref.bytes, ref.sha256)):
        if size <= limit:
            break
        chosen.append(ref)
        size -= base64_size(ref.bytes) * refs.count(ref)
    return chosen


def default_book_path(base_url: str, environ: dict[str, str] | None = None) -> Path:
    """The shared upload book of one base URL: `$BATCHRUN_CACHE_DIR/uploads/`, else the user cache."""
    env = os.environ if environ is None else environ
    root = env.get(CACHE_ENV) or os.path.join(env.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "batchrun")
    digest = hashlib.sha256(base_url.rstrip("/").encode()).hexdigest()[:16]
    return Path(root) / "uploads" / f"{digest}.jsonl"


class UploadBook:
    """sha256 → the latest upload, kept in a JSON-lines file (or in memory only, without a path)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._entries: dict[str, UploadedImage | None] | None = None

    def get(self, sha256: str) -> UploadedImage | None:
        return self._loaded().get(sha256)

    def record(self, upload: UploadedImage) -> None:
        self._loaded()[upload.sha256] = upload
        self._append(asdict(upload))

    def forget(self, sha256: str, name: str) -> None:
        """Drop a file the server no longer holds (only if it is still the one recorded)."""
        entries = self._loaded()
        current = entries.get(sha256)
        if current is not None and current.name == name:
            entries[sha256] = None
            self._append({"sha256": sha256, "gone": name})

    def _loaded(self) -> dict[str, UploadedImage | None]:
        if self._entries is None:
            self._entries = _read_book(self.path) if self.path is not None else {}
        return self._entries

    def _append(self, line: dict[str, str]) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as book:  # one short line per write: appends don't interleave
            book.write(json.dumps(line, separators=(",", ":")) + "\n")


def _read_book(path: Path) -> dict[str, UploadedImage | None]:
    entries: dict[str, UploadedImage | None] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return entries
    for line in lines:
        try:
            fields = json.loads(line)
            entries[fields["sha256"]] = None if "gone" in fields else UploadedImage(**fields)
        except (ValueError, TypeError, KeyError):
            continue  # a line torn by a crash, or from another version: that upload is made again
    return entries


def expires_after(upload: UploadedImage, moment: datetime) -> bool:
    """Whether the file outlives `moment` (a file that names no expirationTime is checked with the server)."""
    if not upload.expiration_time:
        return True
    try:
        expiry = datetime.fromisoformat(upload.expiration_time.replace("Z", "+00:00"))
    except ValueError:
        return False
    return expiry > moment


class ImageUploads:
    """The Files API file for each large input image of a run: reused, or uploaded once per hash."""

    def __init__(self, route: FilesRoute, book: UploadBook, *, now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 margin: timedelta = REUSE_MARGIN) -> None:
        self.route = route
        self.book = book
        self.now = now
        self.margin = margin
        self._locks: dict[str, anyio.Lock] = {}
        self._confirmed: set[str] = set()  # file names uploaded or checked in this run

    async def file_for(self, client: httpx.AsyncClient, ref: ImageRef, read: Callable[[], bytes]) -> UploadedImage:
        """The file to refer to for `ref`; `read` gives its checked bytes (InputImageChanged if not)."""
        digest = ref.sha256.removeprefix("sha256:").lower()
        async with self._locks.setdefault(digest, anyio.Lock()):
            known = self.book.get(digest)
            if known is not None and await self._usable(client, known):
                return known
            data = await anyio.to_thread.run_sync(read)
            upload = await self.route.upload(client, ref, data)
            upload = UploadedImage(digest, upload.name, upload.uri, upload.mime, upload.expiration_time)
            self.book.record(upload)
            self._confirmed.add(upload.name)
            return upload

    def forget(self, upload: UploadedImage) -> None:
        """The server refused a request that referred to this file: upload it again next time."""
        self._confirmed.discard(upload.name)
        self.book.forget(upload.sha256, upload.name)

    async def _usable(self, client: httpx.AsyncClient, known: UploadedImage) -> bool:
        if not expires_after(known, self.now() + self.margin):
            return False
        if known.name in self._confirmed:
            return True
        if not await self.route.exists(client, known.name):
            return False
        self._confirmed.add(known.name)
        return True
