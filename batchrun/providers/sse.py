"""Server-sent events as both streaming routes send them: the `data:` payload of each event."""

from __future__ import annotations


def sse_events(data: bytes) -> list[bytes]:
    """The `data:` payload of each server-sent event (multi-line data joined by newlines)."""
    events = []
    for block in data.replace(b"\r\n", b"\n").split(b"\n\n"):
        lines = [line[5:].removeprefix(b" ") for line in block.split(b"\n") if line.startswith(b"data:")]
        if lines:
            events.append(b"\n".join(lines))
    return events
