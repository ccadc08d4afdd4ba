"""Retired and retiring models, from the dated table in `batchrun/data/lifecycle.json`.

`plan`, `estimate` and `run` call `lifecycle_warning` for each model of a job: a shut-down model
answers 404 (or 503 through some gateways), so saying so before the run saves a night.
The date is passed in, so the same table gives the same answer in any test.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

_MAX_HOPS = 5  # replacement chains are short; this only guards against a cycle in the data


@dataclass(frozen=True, slots=True)
class LifecycleEntry:
    """One retired or retiring model (or a `*` family of them)."""

    model: str
    shutdown: dt.date | None
    replacement: str | None
    note: str | None = None
    source: str | None = None


@lru_cache(maxsize=1)
def lifecycle_table() -> tuple[LifecycleEntry, ...]:
    """The shipped table, read once."""
    raw = json.loads(resources.files("batchrun").joinpath("data/lifecycle.json").read_text("utf-8"))
    return tuple(_entry(row) for row in raw["models"])


def _entry(row: dict) -> LifecycleEntry:
    shutdown = dt.date.fromisoformat(row["shutdown"]) if row.get("shutdown") else None
    return LifecycleEntry(
        model=row["model"],
        shutdown=shutdown,
        replacement=row.get("replacement"),
        note=row.get("note"),
        source=row.get("source"),
    )


def lifecycle_entry(model: str) -> LifecycleEntry | None:
    """The entry for a model id ('models/' prefix ignored), exact ids before `*` families."""
    name = model.removeprefix("models/")
    table = lifecycle_table()
    for entry in table:
        if entry.model == name:
            return entry
    for entry in table:
        if "*" in entry.model and fnmatch.fnmatchcase(name, entry.model):
            return entry
    return None


def is_shut_down(entry: LifecycleEntry, today: dt.date) -> bool:
    """True once the shutdown date has come (or when the table knows no date, only that it happened)."""
    return entry.shutdown is None or entry.shutdown <= today


def current_replacement(model: str, today: dt.date) -> str | None:
    """The replacement to name, skipping replacements that are themselves shut down by `today`."""
    entry = lifecycle_entry(model)
    replacement = entry.replacement if entry else None
    for _ in range(_MAX_HOPS):
        following = lifecycle_entry(replacement) if replacement else None
        if following is None or not is_shut_down(following, today) or not following.replacement:
            break
        replacement = following.replacement
    return replacement


def lifecycle_warning(model: str, today: dt.date) -> str | None:
    """One line saying the model is shut down or retiring and what to use instead; None if neither."""
    entry = lifecycle_entry(model)
    if entry is None:
        return None
    name = model.removeprefix("models/")
    if entry.shutdown is None:
        message = f"{name} has been shut down"
    elif entry.shutdown <= today:
        message = f"{name} was shut down on {entry.shutdown.isoformat()}"
    else:
        days = (entry.shutdown - today).days
        message = f"{name} retires on {entry.shutdown.isoformat()} (in {days} days)"
    replacement = current_replacement(model, today)
    if replacement:
        message += f"; use {replacement}"
    if entry.note:
        message += f" ({entry.note})"
    return message


def status_warning(model: str, model_stage: str | None, retirement_time: str | None) -> str | None:
    """A warning from a reply's own `modelStatus`, for stages that mean the model is going away."""
    if model_stage is None or model_stage.upper() not in {"DEPRECATED", "RETIRED", "LEGACY"}:
        return None
    when = f", retirement time {retirement_time}" if retirement_time else ""
    return f"the API reports {model.removeprefix('models/')} as {model_stage.upper()}{when}"
