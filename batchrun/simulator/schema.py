"""A JSON value that follows a response schema, drawn from a seeded random source.

Input: `responseSchema` (Gemini's OpenAPI subset: uppercase `type`, `nullable`, `propertyOrdering`,
camelCase or snake_case keys, as the SDK sends them) or `responseJsonSchema` (JSON Schema: lowercase
`type` or a list of types, `$ref` into `$defs`/`definitions`, `const`, `prefixItems`, exclusive bounds,
`multipleOf`); one reader serves both. Output: a value valid against the schema. Same schema, same
random state: same value.

Honoured: type, enum, const, properties, required, propertyOrdering, additionalProperties, items,
prefixItems, minItems, maxItems, uniqueItems, minProperties, minimum, maximum, exclusiveMinimum,
exclusiveMaximum, multipleOf, minLength, maxLength, pattern (see patterns.py), format (date-time,
date, time, email, uri, uuid), anyOf, oneOf, allOf, $ref. Every declared property is answered, in
`propertyOrdering` when given; below MAX_DEPTH only what is required is. A schema no value can be made
for (an unknown type, a $ref that leads nowhere, endless required nesting) raises `SchemaError`.
"""

from __future__ import annotations

import math
import random
import re
import uuid
from collections.abc import Callable
from typing import Any

from ..errors import SchemaError, UnsupportedPattern
from .patterns import sample_match

MAX_DEPTH = 6  # below this, optional properties are left out and arrays hold their minimum
_GIVE_UP_DEPTH = 64
_DEFAULT_SPAN = 100  # integers and numbers with no bound fall within this span of the bound given
_KINDS = ("object", "array", "string", "integer", "number", "boolean", "null")


def schema_instance(schema: dict[str, Any], rng: random.Random, words: tuple[str, ...]) -> Any:
    """A value valid against `schema`, from `rng`; strings are made of `words`."""
    return _Maker(schema, rng, words).value(schema, 0)


def _key(schema: dict[str, Any], camel: str, default: Any = None) -> Any:
    """A schema keyword in camelCase or in the snake_case the SDK sends (`property_ordering`)."""
    if camel in schema:
        return schema[camel]
    return schema.get(re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower(), default)


class _Maker:
    def __init__(self, root: dict[str, Any], rng: random.Random, words: tuple[str, ...]) -> None:
        self.root, self.rng, self.words = root, rng, words

    def value(self, schema: Any, depth: int) -> Any:
        if depth > _GIVE_UP_DEPTH:
            raise SchemaError("the schema nests without end: no finite value satisfies it")
        if schema is True or schema is None:
            schema = {}
        if not isinstance(schema, dict):
            raise SchemaError(f"a schema must be an object, not {schema!r}")
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        if _key(schema, "enum"):
            return self.rng.choice(_key(schema, "enum"))
        options = _key(schema, "anyOf") or _key(schema, "oneOf")
        if options:
            return self.value(self.branch(options, depth), depth + 1)
        if _key(schema, "allOf"):
            return self.value(self.merged(schema), depth + 1)
        return self.MAKERS[_kind(schema)](self, schema, depth)

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        """The schema a `$ref` points to (within the root), with the referring schema's own keys."""
        seen = set()
        while "$ref" in schema:
            ref = schema["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#") or ref in seen:
                raise SchemaError(f"cannot follow $ref {ref!r}: only references within the schema are followed")
            seen.add(ref)
            target = _pointer(self.root, ref[1:])
            schema = {**{k: v for k, v in schema.items() if k != "$ref"}, **target}
        return schema

    def branch(self, options: list[Any], depth: int) -> Any:
        """One anyOf/oneOf branch: any at first, the simplest once deep (so recursion ends)."""
        if depth < MAX_DEPTH:
            return self.rng.choice(options)
        kinds = [_kind(self.resolve(o)) if isinstance(o, dict) else "null" for o in options]
        return options[min(range(len(options)), key=lambda i: _KINDS[::-1].index(kinds[i]))]

    def merged(self, schema: dict[str, Any]) -> dict[str, Any]:
        """allOf as one schema: properties and required united, other keywords first come first kept."""
        out: dict[str, Any] = {k: v for k, v in schema.items() if k not in ("allOf", "all_of")}
        for part in _key(schema, "allOf"):
            part = self.resolve(part)
            properties = dict(out.get("properties", {}))
            for name, sub in part.get("properties", {}).items():
                properties.setdefault(name, sub)
            out["properties"] = properties
            out["required"] = [*out.get("required", []), *part.get("required", [])]
            for key, value in part.items():
                out.setdefault(key, value)
        return out

    def make_object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        properties: dict[str, Any] = schema.get("properties") or {}
        required = list(_key(schema, "required") or [])
        order = [n for n in _key(schema, "propertyOrdering") or [] if n in properties]
        names = order + [n for n in properties if n not in order]
        out = {n: self.value(properties[n], depth + 1) for n in names if depth < MAX_DEPTH or n in required}
        extra = _key(schema, "additionalProperties")
        for name in required:
            if name not in out:
                out[name] = self.value(extra if isinstance(extra, dict) else {}, depth + 1)
        while len(out) < (_key(schema, "minProperties") or 0) and extra is not False:
            out[f"field_{len(out) + 1}"] = self.value(extra if isinstance(extra, dict) else {}, depth + 1)
        return out

    def make_array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        prefix = _key(schema, "prefixItems") or []
        items = schema.get("items", {})
        if isinstance(items, list):  # draft-4 tuple form
            prefix, items = items, _key(schema, "additionalItems", {})
        low = _key(schema, "minItems") or 0
        count = low if depth >= MAX_DEPTH else low + self.rng.randint(0 if low else 1, 3)
        if items is False:
            count = min(count, len(prefix))
        if _key(schema, "maxItems") is not None:
            count = min(count, _key(schema, "maxItems"))
        unique = bool(_key(schema, "uniqueItems"))
        out: list[Any] = []
        for i in range(max(count, low)):
            out.append(self.distinct(prefix[i] if i < len(prefix) else items, depth, out if unique else None))
        return out

    def distinct(self, schema: Any, depth: int, taken: list[Any] | None) -> Any:
        """A value, drawn again (a few times) while it equals one in `taken`."""
        value = self.value(schema, depth + 1)
        for _ in range(20):
            if taken is None or value not in taken:
                break
            value = self.value(schema, depth + 1)
        return value

    def make_string(self, schema: dict[str, Any], depth: int) -> str:
        made = _FORMATS.get(str(schema.get("format", "")).lower())
        if made is not None:
            return made(self.rng)
        patterned = self.patterned(schema)
        if patterned is not None:
            return patterned  # kept whole: padding or cutting it could break the match
        text = self.prose()
        while len(text) < (_key(schema, "minLength") or 0):
            text += " " + self.prose()
        high = _key(schema, "maxLength")
        return text[:high] if high is not None else text

    def patterned(self, schema: dict[str, Any]) -> str | None:
        pattern = schema.get("pattern")
        if not isinstance(pattern, str):
            return None
        try:
            return sample_match(pattern, self.rng)
        except UnsupportedPattern:
            return None

    def prose(self) -> str:
        return " ".join(self.rng.choice(self.words) for _ in range(self.rng.randint(2, 8)))

    def make_integer(self, schema: dict[str, Any], depth: int) -> int:
        low, high = _bounds(schema, integer=True)
        step = schema.get("multipleOf", schema.get("multiple_of"))
        if step:
            first, last = math.ceil(low / step), math.floor(high / step)
            if first > last:
                raise SchemaError(f"no multiple of {step} lies between {low} and {high}")
            return int(self.rng.randint(first, last) * step)
        if low > high:
            raise SchemaError(f"no integer lies between {low} and {high}")
        return self.rng.randint(low, high)

    def make_number(self, schema: dict[str, Any], depth: int) -> float | int:
        if schema.get("multipleOf", schema.get("multiple_of")):
            return self.make_integer(schema, depth)
        low, high = _bounds(schema, integer=False)
        if low > high:
            raise SchemaError(f"no number lies between {low} and {high}")
        value = self.rng.uniform(low, high)
        rounded = round(value, 2)
        return rounded if low <= rounded <= high else value

    def make_boolean(self, schema: dict[str, Any], depth: int) -> bool:
        return self.rng.random() < 0.5

    def make_null(self, schema: dict[str, Any], depth: int) -> None:
        return None

    MAKERS: dict[str, Callable[..., Any]] = {
        "object": make_object, "array": make_array, "string": make_string, "integer": make_integer,
        "number": make_number, "boolean": make_boolean, "null": make_null,
    }


def _kind(schema: dict[str, Any]) -> str:
    """The JSON type to make: `type` (either case; of a list, the first that is not null), else inferred."""
    kind = schema.get("type")
    if isinstance(kind, list):
        named = [str(k).lower() for k in kind]
        kind = next((k for k in named if k != "null"), "null" if named else None)
    if kind is None:
        if "properties" in schema or "required" in schema or "additionalProperties" in schema:
            return "object"
        return "array" if "items" in schema or "prefixItems" in schema else "string"
    kind = str(kind).lower()
    if kind not in _KINDS:
        raise SchemaError(f"unknown type {kind!r}: use one of {', '.join(_KINDS)}")
    return kind


def _bounds(schema: dict[str, Any], *, integer: bool) -> tuple[Any, Any]:
    """The closed interval a number must fall in (exclusive bounds stepped inward)."""
    low, high = schema.get("minimum"), schema.get("maximum")
    nudge = 1 if integer else 1e-6
    for name, sign in (("exclusiveMinimum", 1), ("exclusiveMaximum", -1)):
        bound = schema.get(name)
        if isinstance(bound, bool):  # OpenAPI 3.0 / draft 4: a flag on minimum / maximum
            bound = (low if sign > 0 else high) if bound else None
        if bound is not None:
            moved = bound + sign * nudge
            if sign > 0:
                low = moved if low is None else max(low, moved)
            else:
                high = moved if high is None else min(high, moved)
    if low is None:
        low = 0 if high is None else high - _DEFAULT_SPAN
    if high is None:
        high = low + _DEFAULT_SPAN
    if integer:
        return math.ceil(low), math.floor(high)
    return low, high


def _pointer(root: dict[str, Any], pointer: str) -> dict[str, Any]:
    """The part of `root` a JSON pointer ('/$defs/Tone') names."""
    node: Any = root
    for token in [t for t in pointer.split("/") if t]:
        token = token.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or token not in node:
            raise SchemaError(f"cannot follow $ref '#{pointer}': nothing is there")
        node = node[token]
    if not isinstance(node, dict):
        raise SchemaError(f"$ref '#{pointer}' does not name a schema")
    return node


def _date(rng: random.Random) -> str:
    return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _time(rng: random.Random) -> str:
    return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"


_FORMATS: dict[str, Callable[[random.Random], str]] = {
    "date-time": lambda rng: f"{_date(rng)}T{_time(rng)}Z",
    "date": _date,
    "time": lambda rng: _time(rng) + "Z",
    "email": lambda rng: f"user{rng.randint(1, 9999)}@example.com",
    "uri": lambda rng: f"https://example.com/item/{rng.randint(1, 99999)}",
    "url": lambda rng: f"https://example.com/item/{rng.randint(1, 99999)}",
    "uuid": lambda rng: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
}
