"""Read a YAML file strictly: a repeated mapping key is an error, not a silent overwrite.

Numbers follow YAML 1.1 except base-60: an unquoted aspect ratio such as 16:9 stays the string
'16:9' instead of becoming the integer 969.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .errors import SpecError

_INT_TAG = "tag:yaml.org,2002:int"
_INT_WITHOUT_BASE_60 = re.compile(
    r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+)$""",
    re.X,
)


class SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader without base-60 integers."""


SpecLoader.yaml_implicit_resolvers = {
    first: [
        (tag, _INT_WITHOUT_BASE_60 if tag == _INT_TAG else pattern)
        for tag, pattern in resolvers
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _find_duplicate(node: yaml.Node, path: str) -> tuple[str, str, int] | None:
    """The first mapping key that appears twice, as (YAML path of its mapping, key, line)."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = f"{path}.{key}" if path else key
            if key in seen:
                return path, key, key_node.start_mark.line + 1
            seen.add(key)
            found = _find_duplicate(value_node, child)
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found = _find_duplicate(item, f"{path}[{index}]")
            if found:
                return found
    return None


def load_yaml(path: Path, shown: str | None = None) -> Any:
    """Parse a YAML file; errors become one-line SpecErrors that name the file and the line."""
    shown = shown or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(shown, "", "file not found; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(shown, "", f"cannot read the file ({exc.__class__.__name__})") from exc
    try:
        root = yaml.compose(text, Loader=SpecLoader)
        duplicate = _find_duplicate(root, "") if root is not None else None
        if duplicate:
            parent, key, line = duplicate
            where = f"{parent}.{key}" if parent else key
            raise SpecError(shown, where, f"key '{key}' appears twice (line {line}); keep one")
        return yaml.load(text, Loader=SpecLoader)  # noqa: S506 - SpecLoader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise SpecError(shown, where, f"{problem}; fix the YAML syntax") from None
