"""What a job has spent, from its results alone, whatever its manifest says now.

Inputs: an output folder's `results/part-*.parquet` and any `journal/` segments (a live run, or a crash
not yet recovered). Outputs: the latest row per row_id as the sink keeps them (`latest_results`), and
their summed cost (`JobSpend`). `status`, `estimate` and the run's budget all take their spend from
`job_spend` / `spend_of`, so they agree after a spec edit too: results no longer in the manifest were
paid for all the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from batchrun.output.journal import RunJournal, read_journal
from batchrun.output.results import (
    INDEX_COLUMNS,
    latest_row_indices,
    list_parts,
    read_parts,
    rows_to_table,
)

SPEND_COLUMNS = (*INDEX_COLUMNS, "cost_usd")


@dataclass(frozen=True, slots=True)
class JobSpend:
    """The cost of every result of a folder, and the share of results whose request left the manifest."""

    usd: float = 0.0
    results: int = 0
    not_in_manifest_usd: float = 0.0
    not_in_manifest_results: int = 0


def latest_results(out_dir: Path, columns: tuple[str, ...] = SPEND_COLUMNS,
                   runs: dict[str, RunJournal] | None = None) -> pa.Table:
    """One row per row_id from the parts and any journal left by a live or crashed run."""
    # The journal before the parts: a row a live run moves from one to the other is seen twice, never missed.
    runs = read_journal(out_dir / "journal") if runs is None else runs
    tables = [read_parts(list_parts(out_dir / "results"), columns)]
    journal_rows = [row for run in runs.values() for row in run.results]
    if journal_rows:
        tables.append(rows_to_table(journal_rows).select(list(columns)))
    rows = pa.concat_tables(tables)
    return rows.take(latest_row_indices(rows))


def spend_of(latest: pa.Table, manifest_ids: pa.Array | pa.ChunkedArray | None = None) -> JobSpend:
    """The summed cost of one-row-per-row results; with `manifest_ids` (row ids), the share outside them too."""
    total = JobSpend(_cost(latest), len(latest))
    if manifest_ids is None:
        return total
    outside = latest.filter(pc.invert(pc.is_in(latest["row_id"], value_set=_flat(manifest_ids))))
    return JobSpend(total.usd, total.results, _cost(outside), len(outside))


def job_spend(out_dir: Path, manifest_ids: pa.Array | pa.ChunkedArray | None = None) -> JobSpend:
    """What every result in an output folder cost, whatever its manifest says now."""
    return spend_of(latest_results(Path(out_dir)), manifest_ids)


def _cost(results: pa.Table) -> float:
    return float(pc.sum(results["cost_usd"]).as_py() or 0.0)


def _flat(ids: pa.Array | pa.ChunkedArray) -> pa.Array:
    return ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
