"""A run on a Ray cluster: `batchrun run SPEC --ray auto|local:N`.

The flow: the driver (`driver.py`) shards the pending records over worker actors (`worker.py`), each
running the same worker pool against the provider; one limiter actor (`desk.py`) holds the job's
limits for the whole cluster and hands out grants in small leases (`leased.py` is its worker side),
with each key's limits of a key pool (`deskkeys.py`; `leasedkeys.py` on a worker) and the job's one
budget (`budget.py`; `leasedbudget.py` on a worker); finished exchanges flow back to the driver,
which keeps the one sink. `target.py` reads `--ray` and starts or joins the cluster. Ray is imported
only here, and only when `--ray` is given.
"""
