"""Google Cloud Storage under the object store: a `gs://` location's file system, and its failures in one line.

Input: the environment. Output: a `pyarrow.fs.GcsFileSystem`, and `failure_detail`, which words one of its
errors for `StorageFailed`.

Invariants:
- The endpoint comes from `STORAGE_EMULATOR_HOST` (`http://127.0.0.1:9023`, or a bare `host:port`, plain
  HTTP), the variable Google's own clients honour; without it, Google's endpoint.
- Credentials come from Google's standard chain (`GOOGLE_APPLICATION_CREDENTIALS`, the gcloud application
  default credentials, the metadata server), resolved by pyarrow: batchrun never reads or logs them. An
  emulator gets none, as from Google's clients (which go anonymous when `STORAGE_EMULATOR_HOST` is set).
- A transient failure is tried again for `RETRY_LIMIT_S`, not the client's default 15 minutes: off Google
  Cloud without credentials, the metadata server's lookup fails as "unavailable", and a run should say so
  within a minute. A push that gives up is tried again at the next one anyway.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta

from pyarrow import fs as pafs

EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
RETRY_LIMIT_S = 30
# pyarrow words a google-cloud-cpp error as `google::cloud::Status(CODE: ... with a last message of TEXT
# error_info={...}) Detail: ...`; the code and the text are what a user can act on, the rest is noise.
_STATUS = re.compile(r"google::cloud::Status\((?P<code>[A-Z_]+): (?:.*?with a last message of )?(?P<text>.*?)"
                     r"(?: error_info=\{|\)\. Detail:|$)", re.DOTALL)
_UNDERLYING = "The underlying error message was: "


def gcs_filesystem(environ: Mapping[str, str]) -> pafs.GcsFileSystem:
    """Google's endpoint with the standard credentials, or the emulator at `STORAGE_EMULATOR_HOST` with none."""
    retry = timedelta(seconds=RETRY_LIMIT_S)
    emulator = environ.get(EMULATOR_ENV)
    if not emulator:
        return pafs.GcsFileSystem(retry_time_limit=retry)
    scheme, host = emulator_endpoint(emulator)
    return pafs.GcsFileSystem(anonymous=True, endpoint_override=host, scheme=scheme, retry_time_limit=retry)


def emulator_endpoint(value: str) -> tuple[str, str]:
    """`http://127.0.0.1:9023` → (`http`, `127.0.0.1:9023`); a bare `host:port` is plain HTTP, as for Google's clients."""
    scheme, separator, host = value.strip().partition("://")
    if not separator:
        return "http", scheme.rstrip("/")
    return scheme, host.rstrip("/")


def failure_detail(exc: Exception, action: str, bucket: str) -> str:
    """One line on a GCS error: its status code and last message; a write that finds nothing is a missing bucket."""
    detail = short_status(str(exc))
    if isinstance(exc, FileNotFoundError) and action.startswith("upload"):  # an object write needs no parent
        return f"the bucket {bucket} does not exist ({detail})"
    return detail


def short_status(text: str) -> str:
    """`CODE: last message` out of pyarrow's wording of a google-cloud-cpp status (else the text unchanged)."""
    match = _STATUS.search(text)
    if match is None:
        return text
    message = match["text"].strip()
    if _UNDERLYING in message:  # "Could not create a OAuth2 access token ... The underlying error message was: X"
        head, _, underlying = message.partition(_UNDERLYING)
        message = f"{head.split('. ')[0]}: {underlying.strip()}"
    return f"{match['code']}: {message}"
