"""The input image cache: photos fetched by URL and photos prepared by `request.image_prep`.

Where: `OUTPUT/cache/inputs/` (OUTPUT is the job's output folder). Each image is stored once, by content:
`<sha256>.<ext>` (png, jpg or webp), so the manifest records it like a local file (its sha256, mime and
size) and the send path finds it by that hash. `index.json` beside the images maps each URL to its
sha256 and the validators the server sent (ETag, Last-Modified), and each (source image, preparation)
pair to the prepared image's sha256. Every file is written to a temporary name and renamed, so an
interrupted plan leaves either the old file or the new one.

Invariant: nothing here is part of a request id. A request names its images by content hash; moving or
deleting the cache changes no id (a deleted cache is filled again by the next plan).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from batchrun.records import cached_image_name

CACHE_DIR = Path("cache") / "inputs"
INDEX_NAME = "index.json"


@dataclass(frozen=True)
class CachedUrl:
    """What the index knows of one URL: the image it gave and how to ask whether it changed."""

    sha256: str
    mime: str
    etag: str | None = None
    last_modified: str | None = None


def cache_folder(output_dir: Path) -> Path:
    """The input cache of a job's output folder."""
    return Path(output_dir) / CACHE_DIR


def cached_image_path(folder: Path, sha256: str, mime: str) -> Path:
    """Where an image of this hash and type lives in a cache folder."""
    return Path(folder) / cached_image_name(sha256, mime)


class InputCache:
    """The content-addressed image store and its URL index, under one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._urls: dict[str, CachedUrl] = {}
        self._prepared: dict[str, str] = {}
        self._dirty = False
        self._load_index()

    def _load_index(self) -> None:
        try:
            raw = json.loads((self.folder / INDEX_NAME).read_text())
        except (OSError, ValueError):
            return  # no index yet, or a damaged one: every URL is fetched again
        self._urls = {url: CachedUrl(**entry) for url, entry in raw.get("urls", {}).items()}
        self._prepared = dict(raw.get("prepared", {}))

    def url(self, url: str) -> CachedUrl | None:
        """The cached image of a URL, if the index has one and its bytes are still there."""
        entry = self._urls.get(url)
        if entry is None or not cached_image_path(self.folder, entry.sha256, entry.mime).is_file():
            return None
        return entry

    def remember_url(self, url: str, entry: CachedUrl) -> None:
        self._urls[url] = entry
        self._dirty = True

    def prepared(self, key: str) -> str | None:
        """The sha256 of an image already prepared under this key, if its bytes are still there."""
        return self._prepared.get(key)

    def remember_prepared(self, key: str, sha256: str) -> None:
        self._prepared[key] = sha256
        self._dirty = True

    def store(self, data: bytes, mime: str) -> str:
        """Keep these bytes under their hash; returns the hash."""
        digest = hashlib.sha256(data).hexdigest()
        path = cached_image_path(self.folder, digest, mime)
        if not path.is_file():
            _write_atomically(path, data)
        return digest

    def has(self, sha256: str, mime: str) -> bool:
        return cached_image_path(self.folder, sha256, mime).is_file()

    def read(self, sha256: str, mime: str) -> bytes:
        return cached_image_path(self.folder, sha256, mime).read_bytes()

    def save_index(self) -> None:
        """Write the index if anything was added since it was read."""
        if not self._dirty:
            return
        index = {"version": 1, "urls": {url: asdict(entry) for url, entry in sorted(self._urls.items())},
                 "prepared": dict(sorted(self._prepared.items()))}
        _write_atomically(self.folder / INDEX_NAME, json.dumps(index, indent=1).encode())
        self._dirty = False


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
