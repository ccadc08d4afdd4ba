"""Output image names a file system can hold: checked at plan time, before anything is paid.

A name is `output.image_name` rendered for one row, a relative posix path without its extension
(`images/<name>.<ext>` is written). It is refused, with the reason and the fix, when a part of it is
empty, '.', '..' or hidden, holds a control character (NUL, tab, line break) or one of `<>:"|?*\\`
(refused by Windows, exFAT and most sync tools), ends in a dot or a space, is a name Windows reserves
(CON, NUL, COM1 ...), or is longer in UTF-8 bytes than the output folder's file system allows
(the last part leaves room for the longest extension).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

LONGEST_EXTENSION = len(".webp")
NAME_MAX_DEFAULT = 255
PATH_MAX_BYTES = 1024  # a whole name: far below PATH_MAX, with room for the output folder itself
_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f<>:"|?*\\]')
_RESERVED = frozenset(
    ["con", "prn", "aux", "nul"] + [f"com{i}" for i in range(10)] + [f"lpt{i}" for i in range(10)]
)
FIX = "use letters, digits, '-', '_' and '/', e.g. \"{{ sku | slug }}/{{ scene | slug }}\""


def name_max(folder: Path) -> int:
    """The longest file name (bytes) the file system of `folder`, or its nearest existing parent, takes."""
    folder = Path(folder).resolve()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return min(NAME_MAX_DEFAULT, os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return NAME_MAX_DEFAULT


def name_problem(name: str, longest_part: int = NAME_MAX_DEFAULT) -> str | None:
    """Why a file system could not hold `images/<name>.<ext>`, or None when it can."""
    bad = _FORBIDDEN.search(name)
    if bad:
        return f"{name!r} holds {_describe(bad.group())}, which file systems refuse in a name; {FIX}"
    if len(name.encode()) > PATH_MAX_BYTES:
        return f"{_short(name)} is {len(name.encode())} bytes long; keep a name under {PATH_MAX_BYTES} bytes"
    parts = name.split("/")
    for number, part in enumerate(parts, 1):
        limit = longest_part - (LONGEST_EXTENSION if number == len(parts) else 0)
        problem = _part_problem(part, limit)
        if problem:
            return f"{_short(name)}: {problem}"
    return None


def _part_problem(part: str, limit: int) -> str | None:
    if part in ("", ".", ".."):
        return f"a part of the name is {part!r}, which is not a file name; {FIX}"
    if part.startswith("."):
        return f"{part!r} starts with '.', which hides the file (and batchrun keeps its temporary files so); {FIX}"
    if part.endswith((".", " ")):
        return f"{part!r} ends with a dot or a space, which Windows drops; {FIX}"
    if part.split(".")[0].lower() in _RESERVED:
        return f"{part!r} is a device name Windows reserves; add a prefix or a suffix"
    if len(part.encode()) > limit:
        return (f"the part {_short(part)} is {len(part.encode())} bytes long and this file system takes "
                f"{limit} at most (with the extension); shorten it, e.g. with '| truncate(60, true, \"\")'")
    return None


def _describe(char: str) -> str:
    names = {"\x00": "a NUL character", "\t": "a tab", "\n": "a line break", "\r": "a carriage return"}
    if char in names:
        return names[char]
    if ord(char) < 32 or ord(char) == 127:
        return f"the control character {char!r}"
    return f"{char!r}"


def _short(text: str) -> str:
    return repr(text) if len(text) <= 60 else repr(text[:40] + "...")
