"""A fake of Gemini Batch Mode and the Files API for unit tests, served over `httpx.MockTransport`.

It follows reference §7 exactly: the resumable upload (`start`, then `upload` / `upload, finalize` at
checked offsets, answering `x-goog-upload-status`), `models/{model}:batchGenerateContent` with a file
input, `batches/{id}` get (an Operation with `metadata.state` and `response.responsesFile`), the paged
listing (`operations`, `nextPageToken`), `:cancel`, and the results download
(`/download/v1beta/files/{id}:download?alt=media`). Every create is logged by display name, so a test
can assert no chunk was submitted twice. Time is not involved: a batch moves one state per `get`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

BASE = "https://batch.test"


def text_response(key: str) -> dict[str, Any]:
    return {"candidates": [{"content": {"parts": [{"text": f"reply to {key}"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4, "totalTokenCount": 7}}


def answer_each(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The default results: one text reply per request line, in input order."""
    return [{"key": line["key"], "response": text_response(line["key"])} for line in lines]


@dataclass
class Batch:
    name: str
    display_name: str
    model: str
    file_name: str
    states: list[str]
    results_file: str | None = None


@dataclass
class FakeBatchApi:
    """State of the fake server, and what tests script: states, results, faults."""

    states: list[str] = field(default_factory=lambda: ["BATCH_STATE_PENDING", "BATCH_STATE_RUNNING",
                                                      "BATCH_STATE_SUCCEEDED"])
    results: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] = answer_each
    page_size_cap: int = 2
    files: dict[str, bytes] = field(default_factory=dict)
    uploads: dict[str, dict[str, Any]] = field(default_factory=dict)
    batches: dict[str, Batch] = field(default_factory=dict)
    creates: list[str] = field(default_factory=list)  # display names, one per create call
    pieces: list[tuple[str, int, int]] = field(default_factory=list)  # (command, offset, bytes)
    requests: list[httpx.Request] = field(default_factory=list)
    faults: dict[str, list[int]] = field(default_factory=dict)  # route -> statuses to answer first
    no_batch_route: bool = False
    lost_create_replies: int = 0  # creates that happen but answer 503, as a reply lost on the way
    cancel_too_late: bool = False  # a cancel answers 400 and changes nothing (the batch ended first)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport())

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        route, handler = self._route(request)
        queued = self.faults.get(route)
        if queued:
            status = queued.pop(0)
            return httpx.Response(status, json={"error": {"code": status, "message": "injected", "status": "X"}})
        return handler(request)

    def _route(self, request: httpx.Request) -> tuple[str, Callable[[httpx.Request], httpx.Response]]:
        path, method = request.url.path, request.method
        if path == "/upload/v1beta/files" and "upload_id" not in request.url.params:
            return "upload_start", self._upload_start
        if path == "/upload/v1beta/files":
            return "upload", self._upload_piece
        if path.startswith("/download/v1beta/"):
            return "download", self._download
        if path.endswith(":batchGenerateContent"):
            return "create", self._create
        if path == "/v1beta/batches":
            return "list", self._list
        if path.endswith(":cancel") and method == "POST":
            return "cancel", self._cancel
        return "get", self._get

    def _upload_start(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["x-goog-upload-protocol"] == "resumable"
        assert request.headers["x-goog-upload-command"] == "start"
        upload_id = f"u{len(self.uploads) + 1}"
        self.uploads[upload_id] = {"size": int(request.headers["x-goog-upload-header-content-length"]),
                                   "mime": request.headers["x-goog-upload-header-content-type"],
                                   "display_name": json.loads(request.content)["file"]["display_name"],
                                   "data": bytearray()}
        return httpx.Response(200, headers={"x-goog-upload-url": f"{BASE}/upload/v1beta/files?upload_id={upload_id}"})

    def _upload_piece(self, request: httpx.Request) -> httpx.Response:
        upload = self.uploads[request.url.params["upload_id"]]
        offset, command = int(request.headers["x-goog-upload-offset"]), request.headers["x-goog-upload-command"]
        self.pieces.append((command, offset, len(request.content)))
        if offset != len(upload["data"]):
            return httpx.Response(400, json={"error": {"code": 400, "message": "bad offset"}})
        upload["data"] += request.content
        if command == "upload":
            return httpx.Response(200, headers={"x-goog-upload-status": "active"})
        assert command == "upload, finalize" and len(upload["data"]) == upload["size"]
        name = f"files/f{len(self.files) + 1}"
        self.files[name] = bytes(upload["data"])
        return httpx.Response(200, headers={"x-goog-upload-status": "final"},
                              json={"file": {"name": name, "mimeType": upload["mime"], "state": "ACTIVE",
                                             "sizeBytes": str(upload["size"])}})

    def _create(self, request: httpx.Request) -> httpx.Response:
        if self.no_batch_route:
            return httpx.Response(404, text="Not Found")
        batch = json.loads(request.content)["batch"]
        model = request.url.path.removeprefix("/v1beta/models/").removesuffix(":batchGenerateContent")
        name = f"batches/b{len(self.batches) + 1}"
        self.batches[name] = Batch(name, batch["display_name"], model, batch["input_config"]["file_name"],
                                   list(self.states))
        self.creates.append(batch["display_name"])
        if self.lost_create_replies:
            self.lost_create_replies -= 1
            return httpx.Response(503, json={"error": {"code": 503, "status": "UNAVAILABLE", "message": "lost"}})
        return httpx.Response(200, json=self._operation(self.batches[name], self.batches[name].states[0]))

    def _get(self, request: httpx.Request) -> httpx.Response:
        batch = self.batches.get(request.url.path.removeprefix("/v1beta/"))
        if batch is None:
            return httpx.Response(404, json={"error": {"code": 404, "status": "NOT_FOUND", "message": "no batch"}})
        if len(batch.states) > 1:
            batch.states.pop(0)
        return httpx.Response(200, json=self._operation(batch, batch.states[0]))

    def _list(self, request: httpx.Request) -> httpx.Response:
        size = min(int(request.url.params.get("pageSize", "50")), self.page_size_cap)
        start = int(request.url.params.get("pageToken", "0"))
        every = list(self.batches.values())
        page = {"operations": [self._operation(b, b.states[0]) for b in every[start:start + size]]}
        if start + size < len(every):
            page["nextPageToken"] = str(start + size)
        return httpx.Response(200, json=page)

    def _cancel(self, request: httpx.Request) -> httpx.Response:
        batch = self.batches[request.url.path.removeprefix("/v1beta/").removesuffix(":cancel")]
        if self.cancel_too_late:
            return httpx.Response(400, json={"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                                       "message": "batch already ended"}})
        batch.states = ["BATCH_STATE_CANCELLED"]
        return httpx.Response(200, json={})

    def _download(self, request: httpx.Request) -> httpx.Response:
        assert request.url.params["alt"] == "media"
        name = request.url.path.removeprefix("/download/v1beta/").removesuffix(":download")
        return httpx.Response(200, content=self.files[name])

    def _operation(self, batch: Batch, state: str) -> dict[str, Any]:
        operation: dict[str, Any] = {"name": batch.name, "metadata": {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
            "model": f"models/{batch.model}", "displayName": batch.display_name, "state": state,
            "batchStats": {"requestCount": str(self._count(batch))}}}
        if state.endswith("SUCCEEDED"):
            operation["done"] = True
            operation["response"] = {"responsesFile": self._results_of(batch)}
        return operation

    def _count(self, batch: Batch) -> int:
        return len(self.files[batch.file_name].splitlines())

    def _results_of(self, batch: Batch) -> str:
        if batch.results_file is None:
            lines = [json.loads(line) for line in self.files[batch.file_name].splitlines()]
            batch.results_file = f"files/results-{batch.name.split('/')[-1]}"
            self.files[batch.results_file] = b"".join(
                json.dumps(line).encode() + b"\n" for line in self.results(lines))
        return batch.results_file
