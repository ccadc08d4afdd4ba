"""Batch lines: a batch's input read line by line, each answered by the content machinery, written out.

Input: a JSONL file of `{"key": .., "request": {GenerateContentRequest}}` lines, or the inline
`[{"request": .., "metadata": {"key": ..}}]` list. Output, in input order: results lines
`{"key": .., "response": {..}}` or `{"key": .., "error": {code, message, status}}` written to a file
one at a time (never the whole file in memory), or the inline responses
`{"response"|"error": .., "metadata": {"key": ..}}`. Each line answered is logged as rpc
`batch.line` with the sha256 of its request as compact JSON (`request_sha256`) and the batch name.
The generate faults apply per line (see faults.py); the batch faults partial_results, missing_key and
repeated_key shape which answers reach the output.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidRequest, SchemaError, UnsupportedImageConfig
from .content import plan_for
from .faults import batch_fault_hits, decide
from .files import FileApiError
from .inbound import read_generate_request
from .replies import google_error, invalid_argument, prepayment_depleted_error, server_error, unavailable_error

if TYPE_CHECKING:
    from .core import SimulatorCore

LINE_RPC = "batch.line"
_LINE_ERRORS = {  # generate faults answered as a line's error: (code, body)
    "server_error": (500, server_error),
    "unavailable": (503, unavailable_error),
    "billing_402": (402, lambda: prepayment_depleted_error(402)),
    "prepaid_429": (429, lambda: prepayment_depleted_error(429)),
}
_LINE_REPLIES = ("blocked", "safety", "no_image", "max_tokens", "refusal")


def request_sha256(request: Any) -> str:
    """The sha256 of a line's request as compact JSON (separators ',' ':', UTF-8, keys in sent order)."""
    return hashlib.sha256(json.dumps(request, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()


def read_file_lines(path: Path) -> Iterator[tuple[Any, Any]]:
    """(key, request) of each non-blank line of an input JSONL file, read lazily."""
    with open(path, encoding="utf-8") as lines:
        for number, raw in enumerate(lines, 1):
            if raw.strip():
                yield _file_line(raw, number)


def _file_line(raw: str, number: int) -> tuple[Any, Any]:
    try:
        line = json.loads(raw)
    except json.JSONDecodeError:
        line = None
    if not isinstance(line, dict) or not isinstance(line.get("request"), dict):
        raise FileApiError(
            400, "INVALID_ARGUMENT",
            f'line {number} of the input file is not {{"key": .., "request": {{..}}}}: fix the file and upload it again',
        )
    return line.get("key"), line["request"]


def inline_lines(requests: list[Any]) -> list[tuple[Any, Any]]:
    """(key, request) of each inline request; 400 for an entry with no request object."""
    lines = []
    for index, entry in enumerate(requests):
        if not isinstance(entry, dict) or not isinstance(entry.get("request"), dict):
            raise FileApiError(400, "INVALID_ARGUMENT", f"inline request {index} has no request object: add one")
        lines.append(((entry.get("metadata") or {}).get("key"), entry["request"]))
    return lines


@dataclass(slots=True)
class LineCounts:
    """Lines answered with a reply, and with an error."""

    succeeded: int = 0
    failed: int = 0


class LineAnswerer:
    """Answers the lines of one batch, numbering them from 0 for the per-line faults."""

    def __init__(self, core: SimulatorCore, batch_name: str, model: str, batch_n: int, now: float) -> None:
        self.core = core
        self.batch_name = batch_name
        self.model = model
        self.batch_n = batch_n
        self.now = now
        self.counts = LineCounts()
        self.line_seed = int.from_bytes(hashlib.sha256(f"{core.seed}/batch/{batch_n}".encode()).digest()[:6], "big")

    def answers(self, lines: Iterable[tuple[Any, Any]], count: int, partial: bool) -> Iterator[tuple[Any, dict]]:
        """(key, {"response"|"error": ..}) in input order, as the batch faults let them through."""
        settings = self.core.config.batch
        limit = count // 2 if partial else count
        for index, (key, request) in enumerate(lines):
            if index >= limit:
                return
            answer = self._answer(index, request)
            if batch_fault_hits(settings.missing_key, self.core.seed, f"missing_key/{self.batch_n}", index):
                continue
            yield key, answer
            if batch_fault_hits(settings.repeated_key, self.core.seed, f"repeated_key/{self.batch_n}", index):
                yield key, answer

    def _answer(self, index: int, request: dict) -> dict:
        outcome, status, answer = self._reply(index, request)
        if status == 200:
            self.counts.succeeded += 1
        else:
            self.counts.failed += 1
        self.core.log.write(self.now, self.model, request_sha256(request), outcome, status, LINE_RPC,
                            batch=self.batch_name)
        return answer

    def _reply(self, index: int, body: dict) -> tuple[str, int, dict]:
        try:
            request = read_generate_request(body, self.core.file_image)
            plan = plan_for(self.model, request)
        except (InvalidRequest, UnsupportedImageConfig, SchemaError) as exc:
            return "invalid", 400, invalid_argument(str(exc))
        except FileApiError as exc:
            return exc.status.lower(), exc.code, google_error(exc.code, exc.status, exc.message)
        decision = decide(self.core.config, self.line_seed, index)
        fault = decision.fault
        if fault == "no_image" and not plan.wants_image:
            fault = None  # as on the native route
        if fault in _LINE_ERRORS:
            code, error = _LINE_ERRORS[fault]
            return fault, code, error()
        fault = fault if fault in _LINE_REPLIES else None
        n = (self.batch_n << 32) + index  # a response id of its own for each line of each batch
        reply = self.core.batch_answer(self.model, request, plan, fault, decision.thought_images, n)
        truncated = (reply.get("candidates") or [{}])[0].get("finishReason") == "MAX_TOKENS"
        return fault or ("max_tokens" if truncated else "ok"), 200, {"response": reply}


def write_results(answers: Iterable[tuple[Any, dict]], path: Path, padding: int) -> None:
    """Write results lines one at a time, each padded with `padding` spaces of JSON whitespace."""
    pad = b" " * padding
    with open(path, "wb") as out:
        for key, answer in answers:
            (field, value), = answer.items()
            out.write(b'{"key":' + _dumps(key) + b"," + pad + _dumps(field) + b":" + _dumps(value) + b"}\n")


def inline_results(answers: Iterable[tuple[Any, dict]]) -> list[dict]:
    """The inline responses: each answer with its key under metadata (none for a request sent without one)."""
    return [answer if key is None else {**answer, "metadata": {"key": key}} for key, answer in answers]


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
