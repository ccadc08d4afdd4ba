"""Read a YAML file strictly: a repeated mapping key is an error, not a silent overwrite.

Input: a path. Output: the document as plain Python values (dict, list, str, int, float, bool, None,
dates), or a one-line SpecError naming the file, the line and the fix.

- Parser: libyaml's (`yaml.CSafeLoader`, about 10 times faster) where PyYAML was built with it, else
  PyYAML's pure-Python one; both resolve the same tags. A document libyaml refuses is read again by
  the pure-Python parser for its message, so a syntax error reads the same on every machine. A
  document holding a tab character is read by the pure-Python parser alone: libyaml lets a tab
  separate tokens or sit in an unquoted value, where PyYAML refuses it. Lists and mappings nested
  deeper than either parser reads (1,000 levels of brackets for both) are refused in one line.
- Scalars follow YAML 1.1 (yes/no/on/off are booleans, ~ and null are None, 2026-01-02 is a date)
  except base-60: an unquoted aspect ratio such as 16:9 stays the string '16:9', not the integer 969,
  and 1:30.5 stays a string too.
- Anchors, aliases and merge keys (`<<: *defaults`) work, but an alias that takes the document past
  MAX_NODES nodes once every alias is expanded is refused ("billion laughs"). A node is a mapping, a
  list or a scalar (each key and each value counts). The check is linear in the document: a node
  reached through an alias is counted from its memoized size, and checked for repeated keys once.
"""

from __future__ import annotations

import contextlib
import gc
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from batchrun.errors import SpecError, YamlRefused

MAX_NODES = 1_000_000

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_STR_TAG = "tag:yaml.org,2002:str"
_INT_WITHOUT_BASE_60 = re.compile(
    r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+)$""",
    re.X,
)
_FLOAT_WITHOUT_BASE_60 = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
    |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_MAX_FLOW_DEPTH = 1000  # libyaml's limit
_TOO_DEEP = "the YAML nests too deeply to read; flatten it"
_WITHOUT_BASE_60 = {_INT_TAG: _INT_WITHOUT_BASE_60, _FLOAT_TAG: _FLOAT_WITHOUT_BASE_60}


def _resolvers_without_base_60() -> dict[str, list[tuple[str, re.Pattern[str]]]]:
    return {
        first: [(tag, _WITHOUT_BASE_60.get(tag, pattern)) for tag, pattern in resolvers]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


class _PlainStrings:
    """Construct a string scalar as its own text at once, without the per-node constructor lookup.

    The same value PyYAML's `construct_yaml_str` gives; it was a third of reading 20,000 rows.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        if node.tag == _STR_TAG and type(node) is yaml.ScalarNode:
            return node.value
        return super().construct_object(node, deep)  # type: ignore[misc]


class SpecLoader(_PlainStrings, yaml.SafeLoader):
    """PyYAML's pure-Python safe loader without base-60 numbers."""

    yaml_implicit_resolvers = _resolvers_without_base_60()

    def fetch_flow_collection_start(self, TokenClass: type) -> None:
        # PyYAML rescans every open bracket at each token (time grows as the square of the depth):
        # stop where libyaml stops, before that takes seconds
        if self.flow_level >= _MAX_FLOW_DEPTH:
            raise YamlRefused(f"line {self.get_mark().line + 1}", _TOO_DEEP)
        super().fetch_flow_collection_start(TokenClass)


LOADERS: dict[str, type] = {"pure": SpecLoader}
if getattr(yaml, "__with_libyaml__", False):

    class SpecCLoader(_PlainStrings, yaml.CSafeLoader):
        """libyaml's safe loader without base-60 numbers."""

        yaml_implicit_resolvers = _resolvers_without_base_60()

    LOADERS = {"c": SpecCLoader, **LOADERS}

DEFAULT_LOADER: type = next(iter(LOADERS.values()))


def load_yaml(path: Path, shown: str | None = None, *, loader: type | None = None, max_nodes: int = MAX_NODES) -> Any:
    """Parse a YAML file; each error becomes a one-line SpecError that names the file and the line."""
    shown = shown or str(path)
    text = _read(path, shown)
    try:
        with _collections_paused():
            return _load(text, _loader_for(text, loader or DEFAULT_LOADER), max_nodes)
    except YamlRefused as exc:
        raise SpecError(shown, exc.where, exc.message) from None
    except yaml.YAMLError as exc:
        raise SpecError(shown, *_describe_yaml_error(exc)) from None
    except RecursionError:
        raise SpecError(shown, "", _TOO_DEEP) from None


def _read(path: Path, shown: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(shown, "", "file not found; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(shown, "", f"cannot read the file ({exc.__class__.__name__})") from exc


def _loader_for(text: str, loader: type) -> type:
    # libyaml takes a tab as a space between tokens and inside plain scalars, where PyYAML refuses it
    return SpecLoader if "\t" in text else loader


def _load(text: str, loader_class: type, max_nodes: int) -> Any:
    loader = loader_class(text)
    try:
        root = _compose(loader, text)
        if root is None:
            return None
        _check_expansion(root, text, loader_class, max_nodes)
        _check_keys(root)
        return loader.construct_document(root)
    finally:
        loader.dispose()


def _compose(loader: Any, text: str) -> yaml.Node | None:
    """The document's node graph; a syntax error libyaml finds is described by the pure-Python parser."""
    try:
        return loader.get_single_node()
    except yaml.YAMLError:
        if isinstance(loader, SpecLoader):
            raise
        _raise_pure_error(text)
        raise


def _raise_pure_error(text: str) -> None:
    """Raise the pure-Python parser's error for `text`; return if it finds none (the two parsers disagree)."""
    yaml.compose(text, Loader=SpecLoader)


def _describe_yaml_error(exc: yaml.YAMLError) -> tuple[str, str]:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or "not valid YAML"
    return where, f"{problem}; fix the YAML syntax"


@contextlib.contextmanager
def _collections_paused() -> Iterator[None]:
    """Pause the garbage collector while a document is read.

    A large spec builds hundreds of thousands of nodes that all stay alive until it is read, and each
    collection walked them again: over half the time of reading 20,000 rows. What reading leaves
    behind is collected once the collector runs again.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return node.value if isinstance(node, yaml.SequenceNode) else []


class _Open:
    """A list or mapping being counted: its children still to visit and its expanded size so far."""

    __slots__ = ("node", "children", "size")

    def __init__(self, node: yaml.Node) -> None:
        self.node, self.children, self.size = node, iter(_children(node)), 1

    def next_collection(self) -> tuple[yaml.Node | None, int]:
        """The next child that is a list or mapping (None at the end), and how many scalars came before it."""
        scalars = 0
        for child in self.children:
            if type(child) is not yaml.ScalarNode:
                self.size += scalars
                return child, scalars
            scalars += 1
        self.size += scalars
        return None, scalars


def _expansion_overflow(root: yaml.Node, max_nodes: int) -> tuple[int, bool] | None:
    """The first alias of a list or mapping that takes the document past `max_nodes` nodes once
    expanded, as (its index among such aliases in document order, whether it is inside its own
    anchor); None when no alias does.

    A list or mapping met a second time is an alias: it adds its memoized expanded size, so each node
    is visited once however often it is referred to. An alias of a scalar adds one node, as the scalar.
    """
    sizes: dict[int, int] = {}
    stack, opened = [_Open(root)], {id(root)}
    total, aliases = 1, 0
    while stack:
        top = stack[-1]
        child, scalars = top.next_collection()
        total += scalars
        if child is None:
            stack.pop()
            opened.discard(id(top.node))
            sizes[id(top.node)] = top.size
            if stack:
                stack[-1].size += top.size
            continue
        size = sizes.get(id(child))
        if size is None and id(child) not in opened:
            total += 1
            opened.add(id(child))
            stack.append(_Open(child))
            continue
        if size is None or total + size > max_nodes:
            return aliases, size is None
        total, aliases = total + size, aliases + 1
        top.size += size
    return None


def _check_expansion(root: yaml.Node, text: str, loader_class: type, max_nodes: int) -> None:
    if "&" not in text:  # no anchor, so no alias: the document is as large as it looks
        return
    overflow = _expansion_overflow(root, max_nodes)
    if overflow is None:
        return
    index, recursive = overflow
    line, anchor = _collection_alias_at(text, loader_class, index)
    fix = f"expand the aliases by hand, or keep the spec under {max_nodes:,} nodes"
    if recursive:
        raise YamlRefused(f"line {line}", f"the alias *{anchor} is inside its own anchor and never ends; {fix}")
    raise YamlRefused(f"line {line}", f"the alias *{anchor} takes the spec past {max_nodes:,} nodes once expanded; {fix}")


def _collection_alias_at(text: str, loader_class: type, index: int) -> tuple[int, str]:
    """The line and anchor name of the `index`-th alias of a list or mapping (from 0, in document order)."""
    is_scalar: dict[str, bool] = {}  # anchor -> whether it names a scalar
    seen = 0
    for event in yaml.parse(text, Loader=loader_class):
        if isinstance(event, yaml.AliasEvent):
            assert event.anchor is not None and event.start_mark is not None  # a parsed alias has both
            if not is_scalar[event.anchor]:
                if seen == index:
                    return event.start_mark.line + 1, event.anchor
                seen += 1
        elif isinstance(event, yaml.NodeEvent) and event.anchor is not None:
            is_scalar[event.anchor] = isinstance(event, yaml.ScalarEvent)
    raise AssertionError(f"alias {index} not found")  # the nodes and the events come from one text


def _check_keys(root: yaml.Node) -> None:
    """Refuse the first mapping key that appears twice in its mapping, in document order."""
    checked = {id(root)}
    stack: list[tuple[str, Iterator[tuple[str | int, yaml.Node]]]] = [("", _labelled(root))]
    while stack:
        path, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        label, child = entry
        if id(child) in checked:
            continue
        checked.add(id(child))
        child_path = f"{path}[{label}]" if isinstance(label, int) else f"{path}.{label}" if path else label
        stack.append((child_path, _labelled(child, child_path)))


def _labelled(node: yaml.Node, path: str = "") -> Iterator[tuple[str | int, yaml.Node]]:
    """A collection's lists and mappings with their labels (key or index); a repeated key raises YamlRefused.

    Lazy, so a key is compared only after the values before it are walked: the first problem in
    document order is the one reported.
    """
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            if type(item) is not yaml.ScalarNode:
                yield index, item
    elif isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                where = f"{path}.{key}" if path else key
                line = key_node.start_mark.line + 1
                raise YamlRefused(where, f"key '{key}' appears twice (line {line}); keep one")
            seen.add(key)
            if type(value_node) is not yaml.ScalarNode:
                yield key, value_node
