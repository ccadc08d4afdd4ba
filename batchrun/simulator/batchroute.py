"""The Files API and Batch Mode routes (reference §7): the paths, the upload protocol's headers, the replies.

    POST   /upload/v1beta/files                      files.upload.start  (X-Goog-Upload-Command: start)
    POST   /upload/v1beta/files?upload_id=ID         files.upload        (upload | upload, finalize | query)
    GET    /v1beta/files, /v1beta/files/ID           files.list, files.get
    DELETE /v1beta/files/ID                          files.delete
    GET    [/download]/v1beta/files/ID:download      files.download      (generated files; streamed from disk)
    POST   /v1beta/models/MODEL:batchGenerateContent batches.create      (reached through core.receive)
    GET    /v1beta/batches, /v1beta/batches/ID       batches.list (newest first, pageSize/pageToken), batches.get
    POST   /v1beta/batches/ID:cancel                 batches.cancel
    DELETE /v1beta/batches/ID                        batches.delete

Every call is logged by the core with its rpc name (a call to a route slowed by `batch.delays` also as it
arrives); each batch line answered is logged by batchlines.py.
The API key is checked as on the generate route. The files live in `FileStore`, the batches in `BatchBook`;
with keys counted apart, each key is a project of its own (projects.py): it sees only its files and batches.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import InvalidRequest
from .batches import DEFAULT_PAGE_SIZE, BatchBook, read_batch_body
from .faults import batch_fault_hits
from .files import FileApiError, FileStore
from .inbound import load_body
from .projects import Projects
from .replies import bad_key_error, google_error, invalid_argument, missing_key_error, not_found, unavailable_error

if TYPE_CHECKING:
    from .core import SimReply, SimulatorCore

_UPLOADS = re.compile(r"^/upload/v1[a-z0-9]*/files$")
_FILE = re.compile(r"^/(download/)?v1[a-z0-9]*/files/([a-z0-9]+)(:download)?$")
_FILES = re.compile(r"^/v1[a-z0-9]*/files$")
_BATCH = re.compile(r"^/v1[a-z0-9]*/batches/([a-z0-9]+)(:cancel)?$")
_BATCHES = re.compile(r"^/v1[a-z0-9]*/batches$")
RESULTS_TYPE = "application/jsonl"

Call = Callable[[Mapping[str, str], Mapping[str, str], bytes, float], "SimReply"]


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _reply(status: int, outcome: str, obj: Any = None, headers: dict[str, str] | None = None) -> SimReply:
    from .core import SimReply

    return SimReply(status, outcome, b"" if obj is None else _dumps(obj), headers=headers or {})


def _error(exc: FileApiError) -> SimReply:
    return _reply(exc.code, exc.status.lower(), google_error(exc.code, exc.status, exc.message))


def _emptied(action: Callable[..., None], *args: Any) -> SimReply:
    """Do a delete or cancel; Google answers those with an empty object."""
    action(*args)
    return _reply(200, "ok", {})


def _base_url(headers: Mapping[str, str]) -> str:
    return f"http://{headers.get('host') or '127.0.0.1'}"


def _number(headers: Mapping[str, str], name: str) -> int | None:
    """A header's whole number, None when absent; 400 when it is not one."""
    value = headers.get(name)
    if value is None or value == "":
        return None
    if not value.strip().isdigit():
        raise FileApiError(400, "INVALID_ARGUMENT", f"{name} must be a whole number of bytes, not {value!r}")
    return int(value)


def _page(items: list[Any], query: Mapping[str, str]) -> tuple[list[Any], str | None]:
    """One page of `items` by pageSize and pageToken (an offset), and the next page's token."""
    try:
        size = int(query.get("pageSize") or DEFAULT_PAGE_SIZE)
        start = int(query.get("pageToken") or 0)
    except ValueError as exc:
        raise FileApiError(400, "INVALID_ARGUMENT", "pageSize and pageToken must be the numbers given") from exc
    end = start + max(1, size)
    return items[start:end], (str(end) if end < len(items) else None)


class BatchRoute:
    """The files and batches of one SimulatorCore."""

    def __init__(self, core: SimulatorCore) -> None:
        self.core = core
        self.files = FileStore(core.seed)
        self.book = BatchBook(core, self.files)
        self.projects = Projects()
        self.downloads = 0

    def receive(self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes,
                now: float) -> tuple[str | None, str | None, SimReply]:
        """(model, rpc, reply) for a Files or Batch API path; 404 for one not served."""
        rpc, call = self._route(method, path, query)
        if call is None:
            return None, None, _reply(404, "not_found", not_found(path))
        return None, rpc, self._call(call, query, headers, body, now)

    def rpc_of(self, method: str, path: str, query: Mapping[str, str]) -> str | None:
        """The rpc name a Files or Batch API call is logged under (None: not served)."""
        return self._route(method, path, query)[0]

    def create(self, model: str, method: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes,
               now: float) -> SimReply:
        """batchGenerateContent: a new batch, as an Operation."""
        if method != "POST":
            return _reply(404, "not_found", not_found(f"models/{model}:batchGenerateContent"))
        return self._call(lambda q, h, b, t: self._create(model, self._key(h, q), b, t), query, headers, body, now)

    def close(self) -> None:
        """Remove the stored files."""
        self.files.close()

    def _call(self, call: Call, query, headers, body: bytes, now: float) -> SimReply:
        refused = self.core.key_refused(headers, query)
        if refused == "bad_key":
            return _reply(400, "bad_key", bad_key_error())
        if refused == "no_key":
            return _reply(403, "no_key", missing_key_error())
        try:
            return call(query, headers, body, now)
        except FileApiError as exc:
            return _error(exc)
        except InvalidRequest as exc:  # a body that is not a JSON object
            return _reply(400, "invalid", invalid_argument(str(exc)))

    def _route(self, method: str, path: str, query: Mapping[str, str]) -> tuple[str | None, Call | None]:
        if method == "POST" and _UPLOADS.match(path):
            return ("files.upload", self._upload) if "upload_id" in query else ("files.upload.start", self._start)
        if method == "GET" and (_FILES.match(path) or _BATCHES.match(path)):
            return ("files.list", self._list_files) if "/files" in path else ("batches.list", self._list_batches)
        if match := _FILE.match(path):
            return self._file_route(method, match.group(2), bool(match.group(1)), bool(match.group(3)))
        if match := _BATCH.match(path):
            return self._batch_route(method, match.group(1), bool(match.group(2)))
        return None, None

    def _file_route(self, method: str, file_id: str, download_path: bool, download: bool
                    ) -> tuple[str | None, Call | None]:
        name = f"files/{file_id}"
        if download and method == "GET":
            return "files.download", self._owned(name, lambda q, h, b, t: self._download(file_id))
        if download or download_path:
            return None, None
        if method == "GET":
            return "files.get", self._owned(name, lambda q, h, b, t: self._json(self.files.get(file_id).resource(_base_url(h))))
        if method == "DELETE":
            return "files.delete", self._owned(name, lambda q, h, b, t: _emptied(self.files.delete, file_id))
        return None, None

    def _batch_route(self, method: str, batch_id: str, cancel: bool) -> tuple[str | None, Call | None]:
        name = f"batches/{batch_id}"
        if cancel and method == "POST":
            return "batches.cancel", self._owned(name, lambda q, h, b, t: _emptied(self.book.cancel, batch_id, t))
        if cancel:
            return None, None
        if method == "GET":
            return "batches.get", self._owned(name, lambda q, h, b, t: self._json(self.book.polled(batch_id, t)))
        if method == "DELETE":
            return "batches.delete", self._owned(name, lambda q, h, b, t: _emptied(self.book.delete, batch_id))
        return None, None

    def _key(self, headers: Mapping[str, str], query: Mapping[str, str]) -> int | None:
        """The number of the call's key when keys are counted apart (each its own project), else None."""
        from .core import api_key

        return self.core.keyed_limits.number(api_key(headers, query))

    def _owned(self, name: str, call: Call) -> Call:
        """`call`, made only for the key whose project owns `name` (403 for another's)."""
        def guarded(query: Mapping[str, str], headers: Mapping[str, str], body: bytes, now: float) -> SimReply:
            self.projects.check(self._owning_name(name), self._key(headers, query))
            return call(query, headers, body, now)
        return guarded

    def _owning_name(self, name: str) -> str:
        """The resource whose owner owns `name`: a results file's batch, else `name` itself."""
        for batch in self.book.batches.values():
            if batch.output is not None and batch.output.get("responsesFile") == name:
                return batch.name
        return name

    @staticmethod
    def _json(obj: Any) -> SimReply:
        return _reply(200, "ok", obj)

    def _start(self, query, headers: Mapping[str, str], body: bytes, now: float) -> SimReply:
        if (headers.get("x-goog-upload-protocol") or "").lower() != "resumable" or \
                (headers.get("x-goog-upload-command") or "").lower() != "start":
            raise FileApiError(400, "INVALID_ARGUMENT",
                               "start an upload with X-Goog-Upload-Protocol: resumable and X-Goog-Upload-Command: start")
        file = (load_body(body) if body.strip() else {}).get("file")
        file = file if isinstance(file, dict) else {}
        display = str(file.get("displayName", file.get("display_name", "")))
        mime = headers.get("x-goog-upload-header-content-type") or file.get("mimeType") or "application/octet-stream"
        size = _number(headers, "x-goog-upload-header-content-length")
        upload_id = self.files.start_upload(display, str(mime), size)
        url = f"{_base_url(headers)}/upload/v1beta/files?upload_id={upload_id}&upload_protocol=resumable"
        return _reply(200, "ok", None, {"x-goog-upload-url": url, "x-goog-upload-status": "active"})

    def _upload(self, query: Mapping[str, str], headers: Mapping[str, str], body: bytes, now: float) -> SimReply:
        upload_id = query["upload_id"]
        commands = {c.strip() for c in (headers.get("x-goog-upload-command") or "").lower().split(",")}
        if "query" in commands:
            received = self._received(upload_id)
            return _reply(200, "ok", None, {"x-goog-upload-status": "active",
                                            "x-goog-upload-size-received": str(received)})
        if not commands & {"upload", "finalize"}:
            raise FileApiError(400, "INVALID_ARGUMENT", "X-Goog-Upload-Command must be upload, finalize or both")
        offset = _number(headers, "x-goog-upload-offset")
        self.files.append(upload_id, self._received(upload_id) if offset is None else offset, body)
        if "finalize" not in commands:
            return _reply(200, "ok", None, {"x-goog-upload-status": "active"})
        stored = self.files.finalize(upload_id, now)
        self.projects.claim(f"files/{stored.file_id}", self._key(headers, query))
        return _reply(200, "ok", {"file": stored.resource(_base_url(headers))}, {"x-goog-upload-status": "final"})

    def _received(self, upload_id: str) -> int:
        upload = self.files.uploads.get(upload_id)
        return upload.received if upload is not None else 0

    def _list_files(self, query: Mapping[str, str], headers: Mapping[str, str], body: bytes, now: float) -> SimReply:
        key = self._key(headers, query)
        own = [f for f in reversed(self.files.files.values()) if self.projects.sees(self._owning_name(f"files/{f.file_id}"), key)]
        files, token = _page(own, query)
        listing: dict[str, Any] = {"files": [f.resource(_base_url(headers)) for f in files]}
        if token:
            listing["nextPageToken"] = token
        return self._json(listing)

    def _list_batches(self, query: Mapping[str, str], headers, body: bytes, now: float) -> SimReply:
        key = self._key(headers, query)
        batches, token = _page([b for b in self.book.newest_first() if self.projects.sees(b.name, key)], query)
        listing: dict[str, Any] = {"operations": [self.book.operation(b, now) for b in batches]}
        if token:
            listing["nextPageToken"] = token
        return self._json(listing)

    def _download(self, file_id: str) -> SimReply:
        stored = self.files.get(file_id)
        if stored.source != "GENERATED":
            raise FileApiError(400, "INVALID_ARGUMENT", "only generated files can be downloaded, not uploaded ones")
        n, self.downloads = self.downloads, self.downloads + 1
        schedule = self.core.config.batch.download_unavailable
        if batch_fault_hits(schedule, self.core.seed, "download_unavailable", n):
            return _reply(503, "unavailable", unavailable_error())
        reply = _reply(200, "ok")
        reply.content_type, reply.file = RESULTS_TYPE, stored.path
        delay = self.core.config.batch.delays.download
        reply.pause = delay.pause() if delay is not None else None
        return reply

    def _create(self, model: str, key: int | None, body: bytes, now: float) -> SimReply:
        parsed = load_body(body)
        file_id = read_batch_body(parsed)[1]
        if file_id is not None:
            self.projects.check(f"files/{file_id}", key)
        batch = self.book.create(model, parsed, now)
        self.projects.claim(batch.name, key)
        return self._json(self.book.operation(batch, now))
