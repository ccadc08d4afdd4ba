"""--ray: auto or local:N, anything else refused with the fix."""

from __future__ import annotations

import pytest

from batchrun.cluster.target import RayTarget, parse_ray_target
from batchrun.errors import UsageError


def test_auto_joins_the_cluster_ray_address_names_and_local_n_starts_n_workers() -> None:
    assert parse_ray_target("auto") == RayTarget(None)
    assert parse_ray_target("local:4") == RayTarget(4)
    assert parse_ray_target("local:4").text == "local:4"


@pytest.mark.parametrize("text", ["local", "local:0", "local:-1", "local:x", "ray://host:10001", "local:257"])
def test_anything_else_is_refused_with_an_example(text: str) -> None:
    with pytest.raises(UsageError, match=r"expected auto .* or local:N .* e\.g\. --ray local:4"):
        parse_ray_target(text)
