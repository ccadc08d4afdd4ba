"""The versions file: appended, fsynced, read back; a line cut short by a kill is ignored, a bad one named."""

from __future__ import annotations

import pytest

from batchrun.errors import UsageError
from batchrun.planning.versions import (
    VERSIONS_NAME,
    VersionEntry,
    append_versions,
    current_versions,
    read_versions,
)


def entry(row: str, version: int, note: str = "") -> VersionEntry:
    return VersionEntry(row, version, row, "a" * 64, note, "2026-11-27T16:40:00Z", "marks.json")


def test_a_folder_without_a_versions_file_has_no_entries(tmp_path):
    assert read_versions(tmp_path) == []


def test_entries_appended_in_two_redos_read_back_in_order(tmp_path):
    append_versions(tmp_path, [entry("r1", 2, "logo cut off"), entry("r2", 2)])
    append_versions(tmp_path, [entry("r1", 3, "still cut off")])

    assert read_versions(tmp_path) == [entry("r1", 2, "logo cut off"), entry("r2", 2), entry("r1", 3, "still cut off")]


def test_a_rows_current_version_is_the_highest_its_entries_name():
    entries = [entry("r1", 2), entry("r2", 2), entry("r1", 3)]

    assert current_versions(entries) == {"r1": 3, "r2": 2}


def test_a_last_line_cut_short_by_a_kill_is_ignored_and_the_next_append_starts_afresh(tmp_path):
    append_versions(tmp_path, [entry("r1", 2)])
    with open(tmp_path / VERSIONS_NAME, "ab") as file:
        file.write(b'{"row_id": "r2", "vers')

    assert read_versions(tmp_path) == [entry("r1", 2)]
    append_versions(tmp_path, [entry("r3", 2)])
    assert read_versions(tmp_path) == [entry("r1", 2), entry("r3", 2)]


def test_a_bad_whole_line_is_an_error_naming_the_file_the_line_and_the_fix(tmp_path):
    (tmp_path / VERSIONS_NAME).write_text('{"row_id": "r1", "version": 2}\n{"row_id": "r2", "version": 1}\n')

    with pytest.raises(UsageError, match=r"versions.jsonl: line 2 is not a version entry \(version must be a "
                                         r"whole number from 2\); restore the line"):
        read_versions(tmp_path)


def test_an_unknown_key_is_refused(tmp_path):
    (tmp_path / VERSIONS_NAME).write_text('{"row_id": "r1", "version": 2, "rowid": "x"}\n')

    with pytest.raises(UsageError, match="line 1 is not a version entry"):
        read_versions(tmp_path)


def test_appending_nothing_creates_no_file(tmp_path):
    append_versions(tmp_path, [])

    assert not (tmp_path / VERSIONS_NAME).exists()
