"""`batchrun estimate SPEC --pilot N`: send N requests across the job's strata, then project the whole job.

Wires: plan if stale (`jobrun.prepare`), choose the pilot (`cost.pilot.choose_pilot`: answered requests
count, never chosen again), show what it costs and ask (`confirm`, or --yes), send exactly those
requests through the ordinary run (`jobrun.run_job` with `RunOptions.only_requests`: same sink, lock,
budget and results, so a later `run` never sends them again), then project from every answered request
and save `projection.json` (`cost.projected`). Prints nothing itself: the CLI prints what it returns.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from pathlib import Path

from batchrun.cost.estimate import _usd, estimate_report
from batchrun.cost.pilot import PilotCost, choose_pilot, pilot_cost
from batchrun.cost.projected import (
    RESULT_COLUMNS,
    answered_requests,
    project_job,
    save_projection,
)
from batchrun.cost.strata import stratum_table
from batchrun.output.spend import latest_results
from batchrun.planning.plan import manifest_path
from batchrun.planning.spec import LoadedSpec

from .errors import EXIT_OK, BatchrunError, UsageError, pilot_needs_yes_message
from .jobrun import load_catalog, prepare, run_job
from .options import EstimateOptions, RunOptions

Confirm = Callable[[str], bool]  # shows the pilot's cost, answers whether to send it

log = logging.getLogger(__name__)


def pilot_job(loaded: LoadedSpec, options: EstimateOptions, confirm: Confirm | None,
              now: Callable[[], dt.datetime]) -> tuple[str, int]:
    """(what to print, exit code) of a pilot; `confirm` None: no terminal, so --yes is needed."""
    loaded = prepare(loaded)
    manifest = manifest_path(loaded)
    catalog = load_catalog(loaded, options.prices)
    tier = str(options.tier or loaded.spec.tier)
    strata = stratum_table(manifest, catalog)
    answered = answered_requests(latest_results(loaded.output_dir, RESULT_COLUMNS))["request_id"]
    chosen = choose_pilot(strata, answered.combine_chunks(), options.pilot or 0)
    cost = pilot_cost(strata, chosen, catalog, tier)
    offer = _offer(cost, len(set(strata["stratum"].to_pylist())), tier)
    def save() -> Path:
        projection = project_job(manifest, loaded.output_dir, catalog, tier, strata)
        return save_projection(loaded.output_dir, manifest, projection, pilot_requests=len(chosen), now=now())

    code = EXIT_OK
    if chosen:
        if not _agreed(options, confirm, offer, cost):
            return "pilot not sent: nothing was sent", EXIT_OK
        code = _send(loaded, options, chosen, save)
    saved = save()
    report = estimate_report(manifest, loaded.output_dir, catalog, json_out=options.json,
                             budget_usd=_budget(loaded, options), tier=tier)
    summary = offer if chosen else "pilot: nothing left to send"
    return _output(report, options.json, summary, cost, str(saved)), code


def _agreed(options: EstimateOptions, confirm: Confirm | None, offer: str, cost: PilotCost) -> bool:
    """--yes, or the user's answer; UsageError when there is no terminal to ask."""
    if options.yes:
        log.info("%s; sending it (--yes)", offer)  # what it costs is said before anything is sent
        return True
    if confirm is None:
        raise UsageError(pilot_needs_yes_message(cost.requests, _cost_words(cost)))
    return confirm(offer)


def _send(loaded: LoadedSpec, options: EstimateOptions, chosen: list[str], save: Callable[[], Path]) -> int:
    """The pilot's run; a run that stops (budget, deadline, key) still leaves the projection of what it got."""
    try:
        return run_job(loaded, _run_options(options, chosen))
    except BatchrunError:
        save()
        raise


def _run_options(options: EstimateOptions, chosen: list[str]) -> RunOptions:
    return RunOptions(max_cost=options.max_cost, prices=options.prices, tier=options.tier,
                      only_requests=frozenset(chosen))


def _budget(loaded: LoadedSpec, options: EstimateOptions) -> float | None:
    return options.max_cost if options.max_cost is not None else loaded.spec.budget.max_cost_usd


def _cost_words(cost: PilotCost) -> str:
    return f"expected {_usd(cost.expected_usd)}, at most {_usd(cost.high_usd)}"


def _offer(cost: PilotCost, strata: int, tier: str) -> str:
    return (f"pilot: {cost.requests:,} requests across {strata:,} strata at the {tier} tier, "
            f"{_cost_words(cost)}")


def _output(report: str, as_json: bool, offer: str, cost: PilotCost, saved: str) -> str:
    if as_json:
        document = json.loads(report)
        document["pilot"] = {"requests": cost.requests, "expected_usd": cost.expected_usd, "high_usd": cost.high_usd,
                             "summary": offer, "projection_file": saved}
        return json.dumps(document, indent=2)
    return f"{offer}\n\n{report}\n\nProjection saved to {saved}"
