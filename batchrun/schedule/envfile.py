"""The environment file a scheduled job reads its key from: `~/.config/batchrun/NAME.env`.

Invariant: batchrun writes only the variable's name (`GEMINI_API_KEY=`), never a value, and creates the
file with mode 0600 in a 0700 folder; an existing file is left as it is (it may hold the key by now).
The format (`NAME=value`, one a line, no quotes) is one that both `sh`'s `.` and systemd's
EnvironmentFile= read the same way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def env_file_path(home: Path, name: str) -> Path:
    return home / ".config" / "batchrun" / f"{name}.env"


def key_names(key_env: str | Sequence[str] | None) -> tuple[str, ...]:
    """The variables a job's keys are read from: one, several (a key pool), or none."""
    if key_env is None:
        return ()
    return (key_env,) if isinstance(key_env, str) else tuple(key_env)


def env_file_text(name: str, key_env: str | Sequence[str] | None) -> str:
    names = key_names(key_env)
    what = "the key" if len(names) < 2 else "each key"
    lines = [f"# {what} of batchrun job {name}: put it after the '=' (no quotes, no spaces); keep this file 0600"]
    lines += [f"{env}=" for env in names]
    return "\n".join(lines) + "\n"


def create_env_file(path: Path, text: str) -> bool:
    """Create `path` holding `text`, mode 0600; False (nothing written) when it already exists."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(handle, "w") as out:
        out.write(text)
    return True


def loose_mode(path: Path) -> bool:
    """Whether others than the owner may read or write `path`."""
    return bool(path.stat().st_mode & 0o077)
