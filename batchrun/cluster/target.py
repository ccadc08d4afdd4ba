"""Where a cluster run runs: `--ray auto` (join the cluster RAY_ADDRESS names) or `--ray local:N`.

`parse_ray_target` is pure; `start_ray` imports Ray (UsageError naming the extra to install when it
is missing), starts or joins the cluster, and says how many workers to start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import ModuleType

from batchrun.errors import UsageError, ray_missing_message, ray_target_message

MAX_LOCAL_WORKERS = 256
OBJECT_STORE_BYTES = 100 * 1024 * 1024  # replies pass through it once: a small store is enough
_LOCAL = re.compile(r"local:(\d+)")


@dataclass(frozen=True, slots=True)
class RayTarget:
    """A local cluster of `local_workers` worker processes, or (None) the cluster RAY_ADDRESS names."""

    local_workers: int | None = None

    @property
    def text(self) -> str:
        return "auto" if self.local_workers is None else f"local:{self.local_workers}"


def parse_ray_target(text: str) -> RayTarget:
    """`auto` or `local:N` (1 <= N <= 256); UsageError otherwise."""
    if text == "auto":
        return RayTarget()
    match = _LOCAL.fullmatch(text)
    if match is None or not 1 <= int(match.group(1)) <= MAX_LOCAL_WORKERS:
        raise UsageError(ray_target_message(text))
    return RayTarget(int(match.group(1)))


def import_ray() -> ModuleType:
    """The ray module; UsageError saying what to install when it is missing."""
    try:
        import ray
    except ImportError:
        raise UsageError(ray_missing_message()) from None
    return ray


def start_ray(target: RayTarget) -> tuple[ModuleType, int]:
    """Start (local:N) or join (auto) the cluster; the ray module and how many workers to run."""
    ray = import_ray()
    if target.local_workers is not None:
        ray.init(num_cpus=target.local_workers, include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES,
                 configure_logging=False, log_to_driver=True)
        return ray, target.local_workers
    ray.init(address="auto", configure_logging=False, log_to_driver=True)
    return ray, max(1, int(ray.cluster_resources().get("CPU", 1)))
