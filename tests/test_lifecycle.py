from __future__ import annotations

import datetime as dt

from batchrun.cost.lifecycle import (
    current_replacement,
    lifecycle_table,
    lifecycle_warning,
    status_warning,
)

TODAY = dt.date(2026, 11, 21)


def test_shut_down_model_names_its_replacement():
    assert lifecycle_warning("gemini-2.5-flash-image", TODAY) == (
        "gemini-2.5-flash-image was shut down on 2026-10-02; use gemini-3.1-flash-image"
    )


def test_retiring_model_says_when():
    assert lifecycle_warning("gemini-2.5-flash-image", dt.date(2026, 9, 1)) == (
        "gemini-2.5-flash-image retires on 2026-10-02 (in 31 days); use gemini-3.1-flash-image"
    )


def test_shutdown_day_itself_counts_as_shut_down():
    assert "was shut down on 2026-06-25" in lifecycle_warning("gemini-3.1-flash-image-preview", dt.date(2026, 6, 25))


def test_replacement_chain_skips_replacements_already_shut_down():
    # 2.5-flash-image-preview -> 2.5-flash-image (shut down 2026-10-02) -> 3.1-flash-image
    assert current_replacement("gemini-2.5-flash-image-preview", TODAY) == "gemini-3.1-flash-image"
    assert current_replacement("gemini-2.5-flash-image-preview", dt.date(2026, 5, 1)) == "gemini-2.5-flash-image"


def test_auto_routing_note_is_part_of_the_warning():
    warning = lifecycle_warning("models/gemini-2.5-flash", TODAY)
    assert warning.startswith("gemini-2.5-flash retires on 2026-12-01 (in 10 days); use gemini-3.5-flash-lite")
    assert "billed at that model's rate" in warning


def test_family_pattern_and_no_replacement():
    assert lifecycle_warning("imagen-4.0-generate-001", TODAY).startswith("imagen-4.0-generate-001 was shut down")
    assert lifecycle_warning("gemini-3.1-flash-lite", TODAY) == "gemini-3.1-flash-lite retires on 2027-05-07 (in 167 days)"


def test_shut_down_without_a_known_date():
    assert lifecycle_warning("gemini-2.0-flash-exp-image-generation", TODAY) == (
        "gemini-2.0-flash-exp-image-generation has been shut down; use gemini-3.1-flash-image"
    )


def test_current_models_have_no_warning():
    for model in ("gemini-3.1-flash-image", "gemini-3-pro-image", "gemini-3.1-flash-lite-image", "acme-x"):
        assert lifecycle_warning(model, TODAY) is None


def test_table_rows_are_well_formed():
    table = lifecycle_table()
    assert len({entry.model for entry in table}) == len(table)
    assert all(entry.source for entry in table)


def test_status_warning_from_a_reply():
    assert status_warning("gemini-x", "STABLE", None) is None
    assert status_warning("models/gemini-x", "deprecated", "2027-01-01T00:00:00Z") == (
        "the API reports gemini-x as DEPRECATED, retirement time 2027-01-01T00:00:00Z"
    )
