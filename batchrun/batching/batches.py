"""Batch jobs at the API: create (file input), get, list (paged), cancel, and a batch's state.

In:  a `BatchApi`; a model, display name and uploaded `files/...` name (create); a `batches/...` name.
Out: `BatchInfo`: the batch's name, display name, state, stats and results file, read from the
     Operation shape of reference §7.2 (`metadata.state`, `metadata.batchStats`,
     `response.responsesFile` or `metadata.output.responsesFile`).

Invariants: one exchange per call (a listing, one per page); raw states `BATCH_STATE_*` and
`JOB_STATE_*` read alike; a 404 on create raises `NoBatchRoute` (the endpoint offers no Batch Mode),
every other failure a `BatchApiError`. Create is never retried here: it is not idempotent.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..errors import NoBatchRoute
from .exchange import BatchApi, BatchApiError, protocol_error, response_json

LIST_PAGE_SIZE = 100


class BatchState(enum.StrEnum):
    """A batch's state, without its `BATCH_STATE_` / `JOB_STATE_` prefix."""

    UNSPECIFIED = "UNSPECIFIED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"

    @property
    def done(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def lost(self) -> bool:
        """Ended without results: its requests go back to pending."""
        return self in (BatchState.FAILED, BatchState.CANCELLED, BatchState.EXPIRED)


TERMINAL_STATES = frozenset({BatchState.SUCCEEDED, BatchState.FAILED, BatchState.CANCELLED, BatchState.EXPIRED})
_PREFIXES = ("BATCH_STATE_", "JOB_STATE_")


def parse_state(raw: Any) -> BatchState:
    """A raw state of either spelling; anything unknown is UNSPECIFIED (not done: polled again)."""
    text = str(raw or "")
    for prefix in _PREFIXES:
        text = text.removeprefix(prefix)
    try:
        return BatchState(text)
    except ValueError:
        return BatchState.UNSPECIFIED


@dataclass(frozen=True, slots=True)
class BatchInfo:
    """What the API says of one batch."""

    name: str
    display_name: str | None
    state: BatchState
    raw_state: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    results_file: str | None = None


def parse_batch(payload: Mapping[str, Any]) -> BatchInfo:
    """A BatchInfo from an Operation (or a bare batch resource, as some listings give it)."""
    metadata = payload.get("metadata")
    meta: Mapping[str, Any] = metadata if isinstance(metadata, Mapping) else payload
    raw_state = meta.get("state")
    return BatchInfo(
        name=str(payload.get("name") or meta.get("name") or ""),
        display_name=meta.get("displayName") or meta.get("display_name"),
        state=parse_state(raw_state),
        raw_state=raw_state if isinstance(raw_state, str) else None,
        stats=dict(meta.get("batchStats") or {}),
        results_file=_results_file(payload, meta),
    )


def _results_file(payload: Mapping[str, Any], meta: Mapping[str, Any]) -> str | None:
    for holder in (payload.get("response"), meta.get("output")):
        if isinstance(holder, Mapping) and isinstance(holder.get("responsesFile"), str):
            return str(holder["responsesFile"])
    return None


def create_body(display_name: str, file_name: str) -> dict[str, Any]:
    """The batchGenerateContent body for a file input (reference §7.1)."""
    return {"batch": {"display_name": display_name, "input_config": {"file_name": file_name}}}


async def create_batch(api: BatchApi, model: str, display_name: str, file_name: str) -> BatchInfo:
    """Create one batch from an uploaded file. Not idempotent: record `creating` before calling."""
    url = api.url(f"/v1beta/models/{model.removeprefix('models/')}:batchGenerateContent")
    try:
        response = await api.send(f"create of {display_name}", "POST", url,
                                  json_body=create_body(display_name, file_name))
    except BatchApiError as exc:
        if exc.status == 404:
            raise NoBatchRoute(api.base_url) from exc
        raise
    return _checked(f"create of {display_name}", parse_batch(response_json("create", response)), response)


async def get_batch(api: BatchApi, name: str) -> BatchInfo:
    """The batch's current state."""
    response = await api.send(f"get of {name}", "GET", api.url(f"/v1beta/{name}"))
    return _checked(f"get of {name}", parse_batch(response_json("get", response)), response)


async def cancel_batch(api: BatchApi, name: str) -> None:
    """Ask the server to cancel a batch (it ends CANCELLED; poll to see it)."""
    await api.send(f"cancel of {name}", "POST", api.url(f"/v1beta/{name}:cancel"), json_body={})


async def list_batches(api: BatchApi, *, page_size: int = LIST_PAGE_SIZE) -> AsyncIterator[BatchInfo]:
    """Every batch of the project, one page at a time."""
    token: str | None = None
    while True:
        page = await _list_page(api, page_size, token)
        for item in page.get("operations") or page.get("batches") or ():
            if isinstance(item, Mapping):
                yield parse_batch(item)
        token = page.get("nextPageToken")
        if not token:
            return


async def _list_page(api: BatchApi, page_size: int, token: str | None) -> dict[str, Any]:
    params = f"?pageSize={page_size}" + (f"&pageToken={token}" if token else "")
    response = await api.send("list of batches", "GET", api.url("/v1beta/batches" + params))
    return response_json("list of batches", response)


async def find_batches(api: BatchApi, display_name: str) -> list[BatchInfo]:
    """The batches with this display name, in listing order."""
    return [batch async for batch in list_batches(api) if batch.display_name == display_name]


def _checked(what: str, info: BatchInfo, response: httpx.Response) -> BatchInfo:
    if not info.name:
        raise protocol_error(what, response, "reply names no batch")
    return info
