"""The simulator's Files API store: uploaded and generated files, on disk in a folder it owns.

Uploads follow the resumable protocol (reference §7.5): `start_upload` opens an upload of a declared
size, `append` takes chunks at their offsets (a chunk at any other offset is refused, so a client
that resends a chunk finds out), `finalize` checks the size and makes the File. Generated files (batch
results) are written by their producer to `new_path` and then `add_generated`. The folder is made on
first use and removed by `close` (or, failing that, when the store is collected or the interpreter exits).
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

FILE_LIFETIME_S = 48 * 3600  # Google keeps a file 48 hours


class FileApiError(Exception):
    """A Files or Batch API call refused: HTTP code, Google status, message."""

    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message


def rfc3339(t: float) -> str:
    """A unix time as Google writes timestamps: 2026-01-02T03:04:05.678901Z."""
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def short_id(seed: int, kind: str, n: int) -> str:
    """A stable 12-character lowercase id for the n-th thing of a kind."""
    digest = hashlib.sha256(f"{seed}/{kind}/{n}".encode()).digest()
    return base64.b32encode(digest[:10]).decode().lower()[:12]


@dataclass(slots=True)
class StoredFile:
    """One file of the Files API, its bytes at `path`."""

    file_id: str
    display_name: str
    mime: str
    size: int
    sha256_hex: str
    created: float
    source: Literal["UPLOADED", "GENERATED"]
    path: Path

    def resource(self, base_url: str) -> dict[str, Any]:
        """The File resource as Google returns it (reference §7.5)."""
        resource: dict[str, Any] = {
            "name": f"files/{self.file_id}",
            "displayName": self.display_name,
            "mimeType": self.mime,
            "sizeBytes": str(self.size),
            "createTime": rfc3339(self.created),
            "updateTime": rfc3339(self.created),
            "expirationTime": rfc3339(self.created + FILE_LIFETIME_S),
            "sha256Hash": base64.b64encode(self.sha256_hex.encode()).decode(),
            "uri": f"{base_url}/v1beta/files/{self.file_id}",
            "state": "ACTIVE",
            "source": self.source,
        }
        if self.source == "GENERATED":
            resource["downloadUri"] = f"{base_url}/download/v1beta/files/{self.file_id}:download?alt=media"
        return resource


@dataclass(slots=True)
class Upload:
    """A resumable upload under way."""

    display_name: str
    mime: str
    declared_size: int | None
    path: Path
    received: int = 0


class FileStore:
    """Files and uploads of one simulator, numbered from 0 with stable ids."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.files: dict[str, StoredFile] = {}
        self.uploads: dict[str, Upload] = {}
        self._folder: Path | None = None
        self._cleanup: weakref.finalize | None = None
        self._made = 0

    def new_path(self, kind: str) -> tuple[str, Path]:
        """A fresh id of `kind` and the path its bytes go to."""
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="batchrun-simulator-"))
            self._cleanup = weakref.finalize(self, shutil.rmtree, self._folder, ignore_errors=True)
        file_id = short_id(self.seed, kind, self._made)
        self._made += 1
        return file_id, self._folder / file_id

    def start_upload(self, display_name: str, mime: str, declared_size: int | None) -> str:
        """Open a resumable upload; its id goes into the upload URL."""
        upload_id, path = self.new_path("upload")
        path.write_bytes(b"")
        self.uploads[upload_id] = Upload(display_name, mime, declared_size, path)
        return upload_id

    def append(self, upload_id: str, offset: int, data: bytes) -> Upload:
        """Add a chunk at `offset`, which must be the bytes received so far."""
        upload = self.uploads.get(upload_id)
        if upload is None:
            raise FileApiError(404, "NOT_FOUND", f"no upload {upload_id} is open: start the upload again")
        if offset != upload.received:
            raise FileApiError(
                400, "INVALID_ARGUMENT",
                f"upload offset {offset} does not match the {upload.received} bytes received: send from there",
            )
        with open(upload.path, "ab") as out:
            out.write(data)
        upload.received += len(data)
        return upload

    def finalize(self, upload_id: str, now: float) -> StoredFile:
        """Close an upload and make its File; the size must be the one declared at start."""
        upload = self.uploads.pop(upload_id)
        if upload.declared_size is not None and upload.declared_size != upload.received:
            upload.path.unlink(missing_ok=True)
            raise FileApiError(
                400, "INVALID_ARGUMENT",
                f"upload declared {upload.declared_size} bytes but {upload.received} arrived: upload it again",
            )
        file_id, path = self.new_path("file")
        upload.path.rename(path)
        return self._add(file_id, upload.display_name, upload.mime, path, now, "UPLOADED")

    def add_generated(self, file_id: str, display_name: str, mime: str, now: float) -> StoredFile:
        """Register a file its producer wrote to `new_path`'s path."""
        assert self._folder is not None
        return self._add(file_id, display_name, mime, self._folder / file_id, now, "GENERATED")

    def _add(self, file_id, display_name, mime, path: Path, now: float, source) -> StoredFile:
        stored = StoredFile(file_id, display_name, mime, path.stat().st_size, _sha256_hex(path), now, source, path)
        self.files[file_id] = stored
        return stored

    def get(self, file_id: str) -> StoredFile:
        """A stored file, or FileApiError 404."""
        stored = self.files.get(file_id)
        if stored is None:
            raise FileApiError(404, "NOT_FOUND", f"files/{file_id} does not exist or was deleted")
        return stored

    def delete(self, file_id: str) -> None:
        """Forget a file and remove its bytes."""
        self.get(file_id).path.unlink(missing_ok=True)
        del self.files[file_id]

    def close(self) -> None:
        """Remove the folder and everything in it."""
        if self._cleanup is not None:
            self._cleanup()  # runs once; also at interpreter exit if close is never called
            self._folder = self._cleanup = None


def _sha256_hex(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        while chunk := data.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
