"""The review table's columns: the fixed ones, and those a job's manifest adds (its variables, its JSON fields).

This is the interface `export` and `report` share. A review table has, in this order:

    row_id, request_id, input_row, seq    who the row is (input_row: 1-based input row it came from)
    <variables>                           one column per input column and matrix key, and `variant`
                                          with `request.variants`; named as in the spec, `var.NAME`
                                          when NAME is also a fixed column's name
    model, status, error_kind, error_message, finish_reason
    image_path, image_sha256, image_width, image_height
    cost_usd, input_tokens, output_tokens, thinking_tokens, service_tier, latency_ms, attempts,
    finished_at, text, prompt, aspect_ratio_requested, image_size_requested, shared_from
    json.<field>                          with a response schema: each top-level property of the reply

`status` is a result's status (ok | blocked | invalid | failed), or `pending` for a row with none yet.
Every field carries its role in its metadata (`batchrun.role`: id, input, matrix, variant, result,
request, json), so a reader can tell an input column from a matrix value without the spec.
Variable columns take the type their values share (bool, int64, float64, else string; lists and
objects as JSON text). JSON field columns take the schema's type (string, integer, number, boolean;
objects and arrays as JSON text).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa

ROLE_KEY = b"batchrun.role"
PENDING = "pending"  # the status of a row with no result yet
JSON_PREFIX = "json."
VAR_PREFIX = "var."
VARIANT = "variant"

ID_FIELDS = (
    ("row_id", pa.string()),
    ("request_id", pa.string()),
    ("input_row", pa.int64()),
    ("seq", pa.int64()),
)
RESULT_FIELDS = (
    ("model", pa.string()),
    ("status", pa.string()),
    ("error_kind", pa.string()),
    ("error_message", pa.string()),
    ("finish_reason", pa.string()),
    ("image_path", pa.string()),
    ("image_sha256", pa.string()),
    ("image_width", pa.int32()),
    ("image_height", pa.int32()),
    ("cost_usd", pa.float64()),
    ("input_tokens", pa.int64()),
    ("output_tokens", pa.int64()),
    ("thinking_tokens", pa.int64()),
    ("service_tier", pa.string()),
    ("latency_ms", pa.int64()),
    ("attempts", pa.int32()),
    ("finished_at", pa.timestamp("us", tz="UTC")),
    ("text", pa.string()),
)
REQUEST_FIELDS = (
    ("prompt", pa.string()),
    ("aspect_ratio_requested", pa.string()),
    ("image_size_requested", pa.string()),
    ("shared_from", pa.string()),
)
FIXED_NAMES = frozenset(name for name, _ in (*ID_FIELDS, *RESULT_FIELDS, *REQUEST_FIELDS))

_SCHEMA_TYPES = {"string": pa.string(), "integer": pa.int64(), "number": pa.float64(), "boolean": pa.bool_()}


@dataclass(frozen=True, slots=True)
class VariableColumn:
    """A template variable shown as a column: its key in `variables`, its column name, type and role."""

    key: str
    name: str
    type: pa.DataType
    role: str  # input | matrix | variant


@dataclass(frozen=True, slots=True)
class JsonColumn:
    """A top-level property of a JSON reply shown as a column."""

    key: str
    name: str
    type: pa.DataType


def review_schema(variables: Iterable[VariableColumn], json_fields: Iterable[JsonColumn]) -> pa.Schema:
    """The review table's Arrow schema, each field's role in its metadata."""
    fields = [_field(name, kind, "id") for name, kind in ID_FIELDS]
    fields += [_field(v.name, v.type, v.role) for v in variables]
    fields += [_field(name, kind, "result") for name, kind in RESULT_FIELDS]
    fields += [_field(name, kind, "request") for name, kind in REQUEST_FIELDS]
    fields += [_field(j.name, j.type, "json") for j in json_fields]
    return pa.schema(fields)


def _field(name: str, kind: pa.DataType, role: str) -> pa.Field:
    return pa.field(name, kind, metadata={ROLE_KEY: role.encode()})


def role_of(field: pa.Field) -> str:
    """A review table field's role: id, input, matrix, variant, result, request or json."""
    return (field.metadata or {}).get(ROLE_KEY, b"").decode()


def variable_column_name(key: str) -> str:
    return VAR_PREFIX + key if key in FIXED_NAMES else key


# ---------------------------------------------------------------- the type a variable's values share


class VariableTypes:
    """The Arrow type of each variable, from every value seen (bool, int64, float64, else string)."""

    def __init__(self) -> None:
        self.kinds: dict[str, set[str]] = {}

    def add(self, variables: dict[str, Any]) -> None:
        for key, value in variables.items():
            self.kinds.setdefault(key, set()).add(_kind(value))

    def type_of(self, key: str) -> pa.DataType:
        kinds = self.kinds.get(key, set()) - {"null"}
        if kinds == {"bool"}:
            return pa.bool_()
        if kinds == {"int"}:
            return pa.int64()
        if kinds and kinds <= {"int", "float"}:
            return pa.float64()
        return pa.string()


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if -(2**63) <= value < 2**63 else "other"
    if isinstance(value, float):
        return "float"
    return "str" if isinstance(value, str) else "other"


def cell(value: Any, kind: pa.DataType) -> Any:
    """A value as a column of `kind` holds it: JSON text in a string column, None where it does not fit."""
    if value is None:
        return None
    if pa.types.is_string(kind):
        return value if isinstance(value, str) else _json_text(value)
    if pa.types.is_boolean(kind):
        return value if isinstance(value, bool) else None
    if isinstance(value, bool):
        return None
    if pa.types.is_integer(kind):
        return value if isinstance(value, int) and -(2**63) <= value < 2**63 else None
    return float(value) if isinstance(value, int | float) else None


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return str(value)


# ---------------------------------------------------------------- a response schema's top-level fields


def json_columns(schema: Any) -> list[JsonColumn]:
    """The columns a response schema's top-level properties give (none for a schema that is no object)."""
    if not isinstance(schema, dict):
        return []
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return []
    return [JsonColumn(key, JSON_PREFIX + key, _schema_type(spec)) for key, spec in properties.items()]


def _schema_type(spec: Any) -> pa.DataType:
    kind = spec.get("type") if isinstance(spec, dict) else None
    if isinstance(kind, list):  # json schema's ["string", "null"]
        kinds = [k for k in kind if isinstance(k, str) and k.lower() != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    return _SCHEMA_TYPES.get(kind.lower(), pa.string()) if isinstance(kind, str) else pa.string()


def merge_json_columns(known: list[JsonColumn], more: list[JsonColumn]) -> list[JsonColumn]:
    """Columns of two schemas, each key once (a key typed differently by them becomes a string column)."""
    by_key = {column.key: column for column in known}
    for column in more:
        seen = by_key.get(column.key)
        if seen is None:
            by_key[column.key] = column
        elif seen.type != column.type:
            by_key[column.key] = JsonColumn(column.key, column.name, pa.string())
    return list(by_key.values())


def reply_fields(text: str | None) -> dict[str, Any] | None:
    """A JSON reply's top-level fields, or None when the text is no JSON object."""
    if not text:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
