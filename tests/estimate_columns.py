"""The manifest's estimate columns (`est_*`) of some TokenEstimates, for tests that write a small manifest by hand."""

from __future__ import annotations

import pyarrow as pa

from batchrun.records import TokenEstimate


def estimate_columns(estimates: list[TokenEstimate]) -> dict[str, pa.Array]:
    """`est_*` column name -> its values, typed as the manifest types them."""
    return {
        "est_input_text_tokens": pa.array([e.input_text for e in estimates], pa.int64()),
        "est_input_image_tokens": pa.array([e.input_image for e in estimates], pa.int64()),
        "est_output_text_tokens_max": pa.array([e.output_text_max for e in estimates], pa.int64()),
        "est_output_image_tokens": pa.array([e.output_image for e in estimates], pa.int64()),
        "est_images_out": pa.array([e.images_out for e in estimates], pa.int32()),
        "est_thinking_level": pa.array([e.thinking_level for e in estimates], pa.string()),
        "est_thinking_budget": pa.array([e.thinking_budget for e in estimates], pa.int64()),
        "est_service_tier": pa.array([e.service_tier for e in estimates], pa.string()),
        "est_image_size": pa.array([e.image_size for e in estimates], pa.string()),
        "est_text_allowed": pa.array([e.text_allowed for e in estimates], pa.bool_()),
    }
