"""Object storage under an output folder: `s3://bucket/prefix` or `gs://bucket/prefix`, through `pyarrow.fs`.

Input: a location URI and the environment. Output: an `ObjectStore`, which lists, uploads, downloads and
deletes files by their path relative to the location (`results/part-000001.parquet`), nothing else.

Invariants:
- pyarrow's own file systems, already a dependency: no extra package for S3 or GCS.
- S3 takes its endpoint from the standard `AWS_ENDPOINT_URL` (an S3-compatible server) and its credentials
  from the standard AWS chain (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, profiles,
  instance roles); GCS its endpoint from `STORAGE_EMULATOR_HOST` and its credentials from Google's standard
  chain (see `gcs.py`). batchrun never reads, logs or stores a key.
- Every failure of the file system is translated here, once, into `StorageFailed`, whose message names
  the location and the fix and never holds a credential.
- A download lands in a temp file, renamed into place: a reader never sees half a file.
- A listing gives each object's size and last-modified time (`RemoteStamp`), what a pull compares.
- A listing of a bucket that doesn't exist is empty, as is a new job's (pyarrow allows not found, on S3 and
  GCS alike): `bucket_missing` tells the two apart, for a pull that found nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from pyarrow import ArrowException
from pyarrow import fs as pafs

from batchrun.errors import StorageFailed, storage_failed_message
from batchrun.output.gcs import failure_detail, gcs_filesystem

ENDPOINT_ENV = "AWS_ENDPOINT_URL"
SECRET_ENVS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")  # the access key id is a name, not a secret
COPY_CHUNK = 1 << 20
# The SDK's defaults (1 s to connect, 3 s without a byte, 3 attempts) give up on a loaded machine or a
# slow link while a 2 MB image goes up; an upload that fails is tried again at the next push anyway.
CONNECT_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 60.0
S3_ATTEMPTS = 6


class RemoteStamp(NamedTuple):
    """What tells an object changed: its size and its last-modified time (whole seconds on S3, and on moto)."""

    size: int
    mtime_ns: int | None


class ObjectStore:
    """The files under one location, by path relative to it."""

    def __init__(self, location: str, filesystem: pafs.FileSystem, root: str,
                 environ: Mapping[str, str] | None = None) -> None:
        self.location = location.rstrip("/")
        self._fs = filesystem
        self._root = root.rstrip("/")
        self._environ = os.environ if environ is None else environ

    def list_files(self) -> dict[str, int]:
        """Every file under the location: relative path → size in bytes (nothing when there is none yet)."""
        return {relative: stamp.size for relative, stamp in self.list_stamps().items()}

    def list_stamps(self) -> dict[str, RemoteStamp]:
        """Every file under the location: relative path → its size and last-modified time."""
        with self._translated("list"):
            infos = self._fs.get_file_info(pafs.FileSelector(self._root, recursive=True, allow_not_found=True))
        prefix = self._root + "/"
        return {info.path[len(prefix):]: RemoteStamp(info.size, info.mtime_ns) for info in infos
                if info.type == pafs.FileType.File and info.path.startswith(prefix)}

    @property
    def bucket(self) -> str:
        return self._root.split("/")[0]

    def bucket_missing(self) -> bool:
        """Whether the location's bucket surely doesn't exist; False when it does or can't be told (a key
        that may write objects but not read the bucket's metadata: the first write then says)."""
        try:
            return self._fs.get_file_info(self.bucket).type == pafs.FileType.NotFound
        except (OSError, ArrowException):
            return False

    def upload(self, local: Path, relative: str) -> None:
        """Copy a local file to `relative` under the location (an object store replaces it whole)."""
        with self._translated(f"upload {relative}"), open(local, "rb") as source:
            with self._fs.open_output_stream(self._key(relative)) as target:
                _copy(source, target)

    def upload_bytes(self, data: bytes, relative: str) -> None:
        """Write `data` to `relative` under the location (a snapshot of a file still being appended to)."""
        with self._translated(f"upload {relative}"), self._fs.open_output_stream(self._key(relative)) as target:
            target.write(data)

    def read_bytes(self, relative: str) -> bytes | None:
        """The bytes of a small object under the location, None when there is none."""
        with self._translated(f"read {relative}"):
            try:
                with self._fs.open_input_stream(self._key(relative)) as source:
                    return source.read()
            except FileNotFoundError:
                return None

    def download(self, relative: str, local: Path) -> None:
        """Copy `relative` under the location to `local` (temp file, then rename)."""
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(local.name + ".tmp")
        with self._translated(f"download {relative}"), self._fs.open_input_stream(self._key(relative)) as source:
            with open(tmp, "wb") as target:
                _copy(source, target)
        os.replace(tmp, local)

    def delete(self, relative: str) -> None:
        """Remove `relative` under the location (a file already gone is no error)."""
        with self._translated(f"delete {relative}"):
            try:
                self._fs.delete_file(self._key(relative))
            except FileNotFoundError:
                pass

    def _key(self, relative: str) -> str:
        return f"{self._root}/{relative}"

    @contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        try:
            yield
        # pyarrow raises OSError (and its subclasses) for a storage failure, and a bare ArrowException for
        # a google-cloud-cpp UNKNOWN status (a GCS key file that can't be read)
        except (OSError, ArrowException) as exc:
            raise StorageFailed(storage_failed_message(self.location, action, self._detail(exc, action))) from None

    def _detail(self, exc: Exception, action: str) -> str:
        if self.location.startswith("gs://"):
            return failure_detail(exc, action, self._root.split("/")[0])
        return _without_secrets(str(exc), self._environ)


def open_store(location: str, environ: Mapping[str, str] | None = None) -> ObjectStore:
    """The store of an `s3://` or `gs://` location; `StorageFailed` when its file system can't be made."""
    env = os.environ if environ is None else environ
    try:
        filesystem, root = _filesystem(location, env)
    except (OSError, ValueError, ArrowException) as exc:  # pyarrow: unknown scheme, bad URI, no credentials
        raise StorageFailed(storage_failed_message(location, "open", _without_secrets(str(exc), env))) from None
    return ObjectStore(location, filesystem, root, env)


def _filesystem(location: str, environ: Mapping[str, str]) -> tuple[pafs.FileSystem, str]:
    if location.startswith("s3://"):
        endpoint = environ.get(ENDPOINT_ENV) or None
        bucket_and_prefix = location[len("s3://"):].rstrip("/")
        filesystem = pafs.S3FileSystem(endpoint_override=endpoint, connect_timeout=CONNECT_TIMEOUT_S,
                                       request_timeout=REQUEST_TIMEOUT_S,
                                       retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=S3_ATTEMPTS),
                                       **_scheme(endpoint))
        return filesystem, bucket_and_prefix
    if location.startswith("gs://"):
        return gcs_filesystem(environ), location[len("gs://"):].rstrip("/")
    raise ValueError("not a bucket: output.dir in a bucket starts with s3:// or gs://")


def _scheme(endpoint: str | None) -> dict[str, str]:
    """An endpoint URL's scheme for pyarrow (`http://127.0.0.1:9000` is plain HTTP)."""
    if endpoint and endpoint.startswith("http://"):
        return {"scheme": "http"}
    return {}


def _without_secrets(text: str, environ: Mapping[str, str]) -> str:
    """`text` with the value of every credential variable replaced by its name."""
    for name in SECRET_ENVS:
        value = environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, f"${name}")
    return text


def _copy(source, target) -> None:
    while chunk := source.read(COPY_CHUNK):
        target.write(chunk)
