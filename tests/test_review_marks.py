import json

import pytest

from batchrun.errors import UsageError
from batchrun.review.marks import Marks, MarksInvalid, RejectMark, marks_document, parse_marks, read_marks, write_marks

SHA = "a" * 64


def test_a_written_marks_file_reads_back_equal(tmp_path):
    marks = Marks(job="demo", rejected=(RejectMark("r1", SHA, "logo cut off"), RejectMark("r2")))
    write_marks(tmp_path / "m.json", marks)
    assert read_marks(tmp_path / "m.json", job="demo") == marks


def test_the_document_has_the_documented_shape():
    document = marks_document(Marks(job="demo", rejected=(RejectMark("r1", SHA, "x"),)))
    assert document == {"version": 1, "job": "demo", "rejected": [{"row_id": "r1", "image_sha256": SHA, "note": "x"}]}


def test_a_later_entry_for_the_same_row_replaces_the_earlier():
    marks = parse_marks({"version": 1, "job": "j", "rejected": [{"row_id": "r1", "note": "a"}, {"row_id": "r1", "note": "b"}]})
    assert marks.rejected == (RejectMark("r1", None, "b"),)


def test_an_uppercase_sha_is_kept_lowercase_and_a_null_note_is_empty():
    marks = parse_marks({"version": 1, "job": "j", "rejected": [{"row_id": "r1", "image_sha256": "A" * 64, "note": None}]})
    assert marks.rejected == (RejectMark("r1", "a" * 64, ""),)


@pytest.mark.parametrize(("document", "said"), [
    ([], "JSON object"),
    ({"version": 2, "job": "j", "rejected": []}, "version must be 1"),
    ({"version": 1, "job": "", "rejected": []}, "job must be"),
    ({"version": 1, "job": "j", "rejected": {}}, "rejected must be a list"),
    ({"version": 1, "job": "j", "rejected": [{"rowid": "r"}]}, "rejected[0] has unknown keys rowid"),
    ({"version": 1, "job": "j", "rejected": [{"row_id": ""}]}, "rejected[0].row_id"),
    ({"version": 1, "job": "j", "rejected": [{"row_id": "r", "image_sha256": "abc"}]}, "64-character"),
    ({"version": 1, "job": "j", "rejected": [{"row_id": "r", "note": 3}]}, "note must be a string"),
    ({"version": 1, "job": "j", "rejected": [], "extra": 1}, "top level has unknown keys extra"),
])
def test_a_document_breaking_the_format_is_refused_saying_where(document, said):
    with pytest.raises(MarksInvalid, match=said.replace("[", r"\[").replace("]", r"\]")):
        parse_marks(document)


def test_a_missing_file_says_where_marks_come_from(tmp_path):
    with pytest.raises(UsageError, match="Save marks"):
        read_marks(tmp_path / "none.json")


def test_a_file_that_is_not_json_says_so(tmp_path):
    (tmp_path / "m.json").write_text("{nope")
    with pytest.raises(UsageError, match="is not JSON"):
        read_marks(tmp_path / "m.json")


def test_marks_saved_for_another_job_are_refused(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({"version": 1, "job": "other", "rejected": []}))
    with pytest.raises(UsageError, match="for job 'other', not 'demo'"):
        read_marks(tmp_path / "m.json", job="demo")


def test_a_bad_entry_in_a_file_names_the_file_and_the_entry(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({"version": 1, "job": "j", "rejected": [{"row_id": 5}]}))
    with pytest.raises(UsageError, match=r"m.json: rejected\[0\].row_id"):
        read_marks(tmp_path / "m.json")
