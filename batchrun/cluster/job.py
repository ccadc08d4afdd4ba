"""A cluster run's job: from what `jobrun` has at hand to what the driver deals out.

Inputs: the loaded spec, the run options, the key, the price catalog, the pending work and the
spending account. Output: a `ClusterJob` (the records to send, read from the manifest as the driver
deals them; each worker's setup, the cluster's limits, each key's of a pool, the deadline, the budget).
The budget (the caps, what earlier runs spent) goes to the desk, which keeps the cluster's one
account: the cap holds across workers, whichever worker spends it.
"""

from __future__ import annotations

from batchrun.cluster.budget import BudgetLimits
from batchrun.cluster.desk import DeskLimits
from batchrun.cluster.deskkeys import KeyLimits
from batchrun.cluster.driver import ClusterJob
from batchrun.cluster.worker import WorkerSetup
from batchrun.cost.pricing import PriceCatalog
from batchrun.options import RunOptions
from batchrun.planning.plan import manifest_path
from batchrun.planning.spec import KeyEnvSpec, LimitsSpec, LoadedSpec
from batchrun.running.account import CatalogPrices, SpendingAccount
from batchrun.running.pending import Work, iter_work


def cluster_job(loaded: LoadedSpec, options: RunOptions, key: str | None, catalog: PriceCatalog, work: Work,
                account: SpendingAccount, workers: int) -> ClusterJob:
    from batchrun.jobrun import _pool_settings, _retry_policy, pool_keys, provider_settings, run_tier

    spec = loaded.spec
    budget = BudgetLimits(account.cap_usd, account.soft_cap_usd, account.spent_usd + account.reserved_usd)
    concurrency = options.concurrency or spec.limits.concurrency
    pool = pool_keys(loaded) if len(spec.provider.key_envs) > 1 else []
    setup = WorkerSetup(
        provider=provider_settings(loaded, options, key, concurrency),
        policy=_retry_policy(spec), pool=_pool_settings(spec, options, concurrency),
        prices=CatalogPrices(catalog, run_tier(loaded, options)), budgeted=budget.capped,
        keys=tuple((entry.env, value) for entry, value in pool),
    )
    limits = DeskLimits(concurrency, spec.limits.requests_per_minute, spec.limits.tokens_per_minute,
                        spec.limits.images_per_minute, tuple(key_limits(spec.limits, entry) for entry, _ in pool))
    return ClusterJob(iter_work(manifest_path(loaded), work), setup, limits, options.deadline_s, budget)


def key_limits(limits: LimitsSpec, entry: KeyEnvSpec) -> KeyLimits:
    """A pool key's per-minute limits: its own, else the job's (as one process has them)."""
    from batchrun.jobrun import _own

    return KeyLimits(entry.env, *(_own(entry, name, getattr(limits, name))
                                  for name in ("requests_per_minute", "tokens_per_minute", "images_per_minute")))
