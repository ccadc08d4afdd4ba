"""Planning: a loaded spec → `outputs/NAME/manifest.parquet`, and what will be sent.

Streams: rows are read, expanded and written in batches, so memory stays flat for any catalog size.
Writes under the output folder's lock, so two first plans (or a plan and a run) never interleave.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import itertools
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchrun import __version__
from batchrun.output.lock import folder_lock
from batchrun.output.mirror import shown_output
from batchrun.planning.expand import Expander, canonical_json
from batchrun.planning.identity import settle_identity
from batchrun.planning.imageproblems import SkippedRow
from batchrun.planning.imagesources import input_inspector, save_input_cache, write_skipped
from batchrun.planning.inputs import input_file, iter_row_batches
from batchrun.planning.manifest import (
    COLUMNS_LAYOUT,
    MANIFEST_NAME,
    ManifestWriter,
    iter_records,
    read_fingerprint,
    remove_stale_temps,
)
from batchrun.planning.spec import LoadedSpec
from batchrun.planning.versioning import Versioner
from batchrun.planning.versions import current_versions, read_versions, versions_path
from batchrun.providers.registry import provider_entry
from batchrun.records import RequestRecord

log = logging.getLogger(__name__)


@dataclass
class PlanSummary:
    manifest: Path
    requests: int  # distinct requests: what is sent and paid for
    rows: int  # expanded rows: input rows x matrix combinations x variants; each gets a result
    input_rows: int
    combinations: int
    variants: int
    models: list[str]
    images: int
    image_bytes: int
    shared_rows: int  # rows whose request an earlier row makes too: sent once, the reply copied
    shown: list[RequestRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: list[SkippedRow] = field(default_factory=list)  # rows left out by --skip-bad-inputs
    skipped_file: Path | None = None
    redone_rows: int = 0  # rows at a version `batchrun redo` recorded (versions.jsonl), not their first

    def to_json(self) -> dict:
        skipped = {} if self.skipped_file is None else {  # only when --skip-bad-inputs left rows out
            "skipped_input_rows": len(self.skipped), "skipped_inputs_file": str(self.skipped_file)}
        return {
            "manifest": str(self.manifest),
            "requests": self.requests,
            "rows": self.rows,
            "input_rows": self.input_rows,
            "matrix_combinations": self.combinations,
            "variants": self.variants,
            "models": self.models,
            "input_images": self.images,
            "input_image_bytes": self.image_bytes,
            "rows_sharing_a_request": self.shared_rows,
            **skipped,
            **({"redone_rows": self.redone_rows} if self.redone_rows else {}),
        }


def fingerprint(loaded: LoadedSpec) -> str:
    """What the manifest depends on: the spec's bytes, the input file's size and mtime, batchrun's version,
    and the versions file `batchrun redo` appends to (when there is one)."""
    digest = hashlib.sha256(loaded.path.read_bytes())
    path = input_file(loaded)
    if path is not None and path.is_file():
        stat = path.stat()
        digest.update(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    digest.update(__version__.encode())
    digest.update(COLUMNS_LAYOUT)
    versions = versions_path(loaded.output_dir)
    if versions.is_file():
        digest.update(b"versions:" + versions.read_bytes())
    return digest.hexdigest()


def manifest_path(loaded: LoadedSpec) -> Path:
    return loaded.output_dir / MANIFEST_NAME


def manifest_is_current(loaded: LoadedSpec) -> bool:
    return read_fingerprint(manifest_path(loaded)) == fingerprint(loaded)


@dataclass(frozen=True)
class InputChoices:
    """How a plan treats its input photos: `--refresh` (ask again about cached URLs), `--skip-bad-inputs`."""

    refresh: bool = False
    skip_bad_inputs: bool = False


def plan_job(loaded: LoadedSpec, *, show: int = 0, batch_rows: int = 8192, lock_held: bool = False,
             inputs: InputChoices = InputChoices()) -> PlanSummary:
    """Write the spec's manifest under the folder's lock (taken here unless `lock_held`); SpecError replaces nothing."""
    if lock_held:
        return _plan(loaded, show, batch_rows, inputs)
    with folder_lock(loaded.output_dir):
        return _plan(loaded, show, batch_rows, inputs)


def _expander(loaded: LoadedSpec, inputs: InputChoices) -> Expander:
    expander = Expander(loaded, skip_bad_inputs=inputs.skip_bad_inputs)
    expander.inspector = input_inspector(loaded, expander.templates.images, expander.combos, refresh=inputs.refresh,
                                         inline_limit=expander.inspector.inline_limit)
    return expander


def _plan(loaded: LoadedSpec, show: int, batch_rows: int, inputs: InputChoices) -> PlanSummary:
    expander = _expander(loaded, inputs)
    if remove_stale_temps(manifest_path(loaded)):
        log.info("removed temporary manifests an interrupted plan left in %s", shown_output(loaded.output_dir))
    writer = ManifestWriter(manifest_path(loaded), fingerprint(loaded))
    try:
        with _full_collections_deferred():
            records = expander.expand(itertools.chain.from_iterable(iter_row_batches(loaded, batch_rows)))
            while batch := list(itertools.islice(records, batch_rows)):
                writer.write(batch)
        expander.finish()
        expander.forget_ids()  # the check below reads the file; the ids seen are no longer needed
        keys = [*([expander.id_column] if expander.id_column else []), *expander.combos[0]]
        settle_identity(writer.close(), loaded.shown, keys, named=expander.counts.named,
                        shared=expander.counts.duplicates > 0, hint=_name_hint(loaded))
        redone = _versioner(loaded, expander).apply(writer.close())
    except BaseException:
        writer.abort()
        raise
    writer.commit()
    save_input_cache(expander.inspector)
    skipped = expander.image_problems.skipped
    skipped_file = write_skipped(loaded.output_dir, skipped, expander.id_column)
    distinct = expander.inspector.distinct
    spec = loaded.spec
    requests = _distinct_requests(writer.path) if redone else writer.rows - expander.counts.duplicates
    return PlanSummary(
        manifest=writer.path,
        requests=requests,
        rows=writer.rows,
        input_rows=expander.counts.input_rows,
        combinations=len(expander.combos) // spec.request.variants,
        variants=spec.request.variants,
        models=sorted(expander.counts.models),
        images=len(distinct),
        image_bytes=sum(ref.bytes for ref in distinct),
        shared_rows=writer.rows - requests,
        shown=list(itertools.islice(iter_records(writer.path), show)) if show else [],
        warnings=expander.warnings,
        skipped=skipped,
        skipped_file=skipped_file,
        redone_rows=redone,
    )


def _versioner(loaded: LoadedSpec, expander: Expander) -> Versioner:
    """Applies the versions `batchrun redo` recorded in the output folder (none: changes nothing)."""
    spec = loaded.spec
    return Versioner(current_versions(read_versions(loaded.output_dir)), kind=spec.provider.kind,
                     wire_body=expander.wire_body, variants=spec.request.variants, shown=loaded.shown)


def _distinct_requests(path: Path) -> int:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    return pc.count_distinct(pq.read_table(path, columns=["request_id"])["request_id"]).as_py()


def _name_hint(loaded: LoadedSpec) -> str:
    """The variables `output.image_name` leaves out, as a hint for a collision message."""
    spec = loaded.spec
    name = spec.output.image_name or ""
    missing = [key for key in spec.matrix if key not in name]
    if spec.request.variants > 1 and "variant" not in name:
        missing.append("variant")
    return f" (it does not use {', '.join(missing)})" if missing else ""


@contextlib.contextmanager
def _full_collections_deferred() -> Iterator[None]:
    """Run full garbage collections rarely while planning; young ones still run.

    Expansion makes no reference cycles, but each batch of records it holds alive (several objects a
    request) makes CPython start a full collection every few batches, which walked every live object
    and took half the plan's time.
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(thresholds[0], thresholds[1], max(thresholds[2], 1000))
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def render_request(record: RequestRecord, provider_kind: str, provider: Any = None) -> str:
    """One request as a person reviews it: id, output name and the body sent (images as their hash)."""
    head = {"request_id": record.request_id, "seq": record.seq, "model": record.model}
    if record.row_id != record.request_id:
        head["row_id"] = record.row_id
    if record.output_name:
        head["output_name"] = record.output_name
    body = provider_entry(provider_kind).wire_body(record.body, provider)
    return json.dumps({**head, "body": body}, indent=2, ensure_ascii=False)


__all__ = ["InputChoices", "PlanSummary", "plan_job", "manifest_is_current", "manifest_path", "render_request", "canonical_json"]
