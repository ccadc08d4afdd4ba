"""A row's new version: how a redone row's request, ids and image name differ from its version 1.

Input: a manifest whose row ids are settled (`batchrun.planning.identity`) and the rows' current
versions (`batchrun.planning.versions`: version-1 row id -> version). Output: the same manifest in
which each row at version N >= 2 has
- its request changed: `seed` in its options becomes the row's seed (the spec's, or 0, plus the
  variant) plus `SEED_STEP` x (N - 1), so it never meets another variant's seed (at most 1,000);
- its own request id: the hash of the new wire body with `version: N` in the identity hashed
  (`sharing.request_id`), so it shares no reply with version 1 or with a row not redone;
- its own row id: `version_row_id(BASE, N)`, a hash of the version-1 row id and N;
- its own image name: `NAME.vN` (`images/SKU/scene.v2.png`), so every earlier image stays where its
  result row says it is.
Rows at version 1, and every id of a manifest planned without a versions file, are left as they are.
Pure functions but `apply_versions`, which rewrites the file only when some row is redone.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batchrun.errors import SpecError
from batchrun.planning.sharing import request_id
from batchrun.planning.versions import VersionEntry, current_versions

SEED_STEP = 1000  # request.variants is at most 1,000: version seeds never meet another variant's
VARIANT = "variant"

WireBody = Callable[[Any], dict[str, Any]]  # a RenderedRequest -> the body the provider sends


def version_row_id(base_row_id: str, version: int) -> str:
    """The row id of version `version` of the row whose version-1 id is `base_row_id`."""
    if version <= 1:
        return base_row_id
    return hashlib.sha256(f"{base_row_id}\x00version\x00{version}".encode()).hexdigest()[:32]


def row_versions(entries: list[VersionEntry]) -> dict[str, tuple[str, int]]:
    """Every version's row id -> (version-1 row id, version), for the rows redone so far."""
    known: dict[str, tuple[str, int]] = {}
    for base, current in current_versions(entries).items():
        for version in range(1, current + 1):
            known[version_row_id(base, version)] = (base, version)
    return known


def earlier_row_ids(entries: list[VersionEntry]) -> set[str]:
    """The row ids of every version that is no longer its row's current one."""
    current = current_versions(entries)
    return {row_id for row_id, (base, version) in row_versions(entries).items() if version < current[base]}


def versioned_name(output_name: str | None, version: int, current: int = 1) -> str | None:
    """The image name of `version` of a row whose image name at version `current` is `output_name`:
    `NAME.vN` (version 1 keeps NAME)."""
    if output_name is None or version == current:
        return output_name
    base = output_name.removesuffix(f".v{current}") if current > 1 else output_name
    return base if version <= 1 else f"{base}.v{version}"


def versioned_body(body: dict[str, Any], version: int, current: int = 1) -> dict[str, Any]:
    """The RenderedRequest of `version` of a row whose request at version `current` is `body` (a copy)."""
    if version == current:
        return body
    new = copy.deepcopy(body)
    options = new.get("options") or {}
    seed = options.get("seed")
    base = seed if isinstance(seed, int) and not isinstance(seed, bool) else 0
    new["options"] = {**options, "seed": base + SEED_STEP * (version - current)}
    return new


def versioned_request_id(kind: str, model: str, wire_body: dict[str, Any], variables: dict[str, Any],
                         version: int, variants: int) -> str:
    """The request id of a version >= 2: its wire body, with the variant and the version in the identity."""
    variant = variables.get(VARIANT) if variants > 1 else None
    return request_id(kind, model, wire_body, variant, version)


class Versioner:
    """Gives the rows of one plan their versions (`versions`: version-1 row id -> current version)."""

    def __init__(self, versions: dict[str, int], *, kind: str, wire_body: WireBody, variants: int,
                 shown: str = "") -> None:
        self.versions = {row: version for row, version in versions.items() if version > 1}
        self.kind = kind
        self.wire_body = wire_body
        self.variants = variants
        self.shown = shown

    def row(self, row: dict[str, Any], version: int, current: int = 1) -> dict[str, Any]:
        """A manifest row (request_id, row_id, model, body, variables, output_name as in the file) at
        `version`; `row` is at version `current`, its `row_id` the version-1 id."""
        body = versioned_body(json.loads(row["body"]), version, current)
        variables = json.loads(row["variables"])
        new_id = versioned_request_id(self.kind, row["model"], self.wire_body(body), variables, version,
                                      self.variants)
        return {**row, "request_id": new_id, "row_id": version_row_id(row["row_id"], version),
                "body": orjson.dumps(body).decode(),
                "output_name": versioned_name(row["output_name"], version, current)}

    def apply(self, path: Path) -> int:
        """Rewrite the manifest at `path` with every redone row at its version; return how many rows changed."""
        if not self.versions:
            return 0
        table = pq.read_table(path)
        mask = pc.is_in(table["row_id"], value_set=pa.array(list(self.versions), pa.string()))
        positions = pc.indices_nonzero(mask).to_pylist()
        if not positions:
            return 0
        for name, values in self._new_values(table, positions).items():
            index = table.schema.get_field_index(name)
            field = table.schema.field(index)
            column = pc.replace_with_mask(table[name].combine_chunks(), mask.combine_chunks(),
                                          pa.array(values, field.type))
            table = table.set_column(index, field, column)
        self._refuse_colliding_names(table, positions)
        tmp = path.with_name(path.name + ".versions.tmp")  # a temporary name remove_stale_temps knows
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
        return len(positions)

    def _new_values(self, table: pa.Table, positions: list[int]) -> dict[str, list[Any]]:
        """The new request_id, row_id, body and output_name of the redone rows at `positions`, in order."""
        picked = table.select(["request_id", "row_id", "model", "body", "variables", "output_name"]).take(positions)
        new = [self.row(row, self.versions[row["row_id"]]) for row in picked.to_pylist()]
        return {name: [row[name] for row in new] for name in ("request_id", "row_id", "body", "output_name")}

    def _refuse_colliding_names(self, table: pa.Table, positions: list[int]) -> None:
        """A redone row's new name (NAME.vN) must be no other row's, compared as the plan compares names."""
        new = {name.lower() for name in table["output_name"].take(positions).to_pylist() if name is not None}
        if not new:
            return
        folded = pc.utf8_lower(table["output_name"])
        hits = pc.indices_nonzero(pc.is_in(folded, value_set=pa.array(sorted(new), pa.string()))).to_pylist()
        if len(hits) == len(new):
            return
        names = table["output_name"].take(hits).to_pylist()
        redone = set(positions)
        owner = {name.lower(): at for at, name in zip(hits, names) if at in redone}
        position, name = next((at, n) for at, n in zip(hits, names) if at not in redone)
        raise SpecError(self.shown, "output.image_name",
                        f"images/{name} (a redone row's new version) is also the name of row {position + 1}'s "
                        f"image (row {owner[name.lower()] + 1} is redone); rename that row's image "
                        "(output.image_name) so no name ends in .vN")
