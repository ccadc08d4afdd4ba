"""Store exports: rows grouped by a key (inputs.group), and columns picked and renamed (inputs.columns)."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchrun.errors import InputProblem, SpecError
from batchrun.planning.columns import pick_columns
from batchrun.planning.grouping import group_rows
from batchrun.planning.inputs import iter_row_batches
from batchrun.planning.spec import GroupSpec, load_spec

HEADER = ["Handle", "Title", "Vendor", "Option1 Value", "Image Src", "Image Position"]


def export(*rows: tuple) -> list[dict]:
    return [dict(zip(HEADER, row)) for row in rows]


MUG_AND_POT = export(
    ("mug", "Mug", "Kiln", "Green", "mug-1.png", "1"),
    ("mug", "", "", "Blue", "mug-2.png", "2"),
    ("mug", "", "", "Clear", "", ""),
    ("pot", "Teapot", "Kiln", "Default Title", "pot-1.png", "1"),
    ("pot", "", "", "", "pot-2.png", "2"),
)


def grouped(rows: list[dict], **group) -> list[dict]:
    return list(group_rows(iter(rows), GroupSpec(by="Handle", **group)))


def test_first_keeps_one_row_per_key_its_first_image():
    assert grouped(MUG_AND_POT) == [MUG_AND_POT[0], MUG_AND_POT[3]]


def test_each_gives_a_row_per_image_filled_from_the_first_row():
    assert grouped(MUG_AND_POT, images="each") == [
        {**MUG_AND_POT[0], "image_index": 1},
        {"Handle": "mug", "Title": "Mug", "Vendor": "Kiln", "Option1 Value": "Blue", "Image Src": "mug-2.png",
         "Image Position": "2", "image_index": 2},
        {**MUG_AND_POT[3], "image_index": 1},
        {"Handle": "pot", "Title": "Teapot", "Vendor": "Kiln", "Option1 Value": "Default Title",
         "Image Src": "pot-2.png", "Image Position": "2", "image_index": 2},
    ]


def test_images_are_ordered_by_position_when_the_file_has_it():
    rows = export(
        ("mug", "Mug", "Kiln", "Green", "second.png", "2"),
        ("mug", "", "", "", "third.png", ""),
        ("mug", "", "", "", "first.png", "1"),
        ("mug", "", "", "", "tenth.png", "10"),
    )
    assert [row["Image Src"] for row in grouped(rows, images="each")] == [
        "first.png", "second.png", "tenth.png", "third.png"]
    first = grouped(rows)
    assert first == [{"Handle": "mug", "Title": "Mug", "Vendor": "Kiln", "Option1 Value": "Green",
                      "Image Src": "first.png", "Image Position": "1"}]


def test_without_a_position_column_images_keep_file_order():
    rows = [{"Handle": "mug", "Title": "Mug", "Image Src": name} for name in ("b.png", "a.png")]
    assert [row["Image Src"] for row in grouped(rows, images="each")] == ["b.png", "a.png"]


def test_an_image_on_several_rows_is_one_image():
    rows = export(
        ("mug", "Mug", "Kiln", "Green", "mug-1.png", "1"),
        ("mug", "", "", "Blue", "mug-1.png", "1"),
    )
    assert grouped(rows, images="each") == [{**rows[0], "image_index": 1}]


def test_a_key_without_images_gives_its_first_row():
    rows = export(("mug", "Mug", "Kiln", "Green", "", ""), ("mug", "", "", "Blue", "", ""))
    assert grouped(rows) == grouped(rows, images="each") == [rows[0]]


def test_none_cells_count_as_empty_as_parquet_gives_them():
    rows = [{"Handle": "mug", "Title": "Mug", "Image Src": None},
            {"Handle": "mug", "Title": None, "Image Src": "mug-2.png"}]
    assert grouped(rows) == [{"Handle": "mug", "Title": "Mug", "Image Src": "mug-2.png"}]


def test_grouping_streams_one_key_at_a_time():
    pulled: list[int] = []

    def rows():
        for number in range(1, 10_001):
            pulled.append(number)
            yield {"Handle": f"p{number // 2}", "Image Src": f"{number}.png"}

    out = group_rows(rows(), GroupSpec(by="Handle", images="each"))
    assert next(out)["Image Src"] == "1.png"
    assert len(pulled) <= 3  # the key's rows and the first row of the next key, no more


def test_a_key_that_comes_back_after_another_says_to_sort_the_file():
    rows = [MUG_AND_POT[0], MUG_AND_POT[3], MUG_AND_POT[1]]
    with pytest.raises(InputProblem) as caught:
        grouped(rows)
    assert (caught.value.where, caught.value.message) == (
        "inputs.group.by", "row 3: Handle 'mug' comes back after other keys; sort the file by Handle so each "
        "key's rows are together (a Shopify export already is)")


@pytest.mark.parametrize(
    ("rows", "group", "where", "message"),
    [
        (export(("mug", "Mug", "Kiln", "", "a.png", "1"), ("", "", "", "", "b.png", "2")), {},
         "inputs.group.by", "row 2 has no Handle; fill it: every row of a product carries its key"),
        ([{"handle": "mug", "Image Src": "a.png"}], {}, "inputs.group.by",
         "no column 'Handle' in the input; name one of: handle, Image Src"),
        ([{"Handle": "mug", "photo": "a.png"}], {}, "inputs.group.image_column",
         "no column 'Image Src' in the input; name one of: Handle, photo"),
        ([{"Handle": "mug", "Image Src": "a.png", "image_index": "3"}], {"images": "each"}, "inputs.group.images",
         "the input already has a column 'image_index', which images: each adds; rename that column"),
    ],
)
def test_grouping_problems_name_the_field_and_the_fix(rows, group, where, message):
    with pytest.raises(InputProblem) as caught:
        grouped(rows, **group)
    assert (caught.value.where, caught.value.message) == (where, message)


def test_columns_are_picked_and_renamed_in_the_mapping_order():
    rows = [{"Handle": "mug", "Image Src": "a.png", "Vendor": "Kiln", "image_index": 2}]
    assert list(pick_columns(rows, {"photo": "Image Src", "handle": "Handle"})) == [
        {"photo": "a.png", "handle": "mug", "image_index": 2}]
    assert list(pick_columns(rows, {"n": "image_index"})) == [{"n": 2, "image_index": 2}]


def test_a_column_the_input_lacks_lists_the_columns_there_are():
    with pytest.raises(InputProblem) as caught:
        list(pick_columns([{"Handle": "mug", "Image Src": "a.png"}], {"photo": "Image URL"}))
    assert (caught.value.where, caught.value.message) == (
        "inputs.columns.photo", "no column 'Image URL' in the input; name one of: 'Handle', 'Image Src'")


# ---------------------------------------------------------------- through the spec


def loaded_with_inputs(folder: Path, inputs: str):
    path = folder / "job.yaml"
    path.write_text(f"name: n\nmodel: gemini-3-flash-preview\ninputs: {inputs}\nrequest: {{prompt: x}}\n", encoding="utf-8")
    return load_spec(path)


def write_export(folder: Path, rows: list[dict]) -> None:
    lines = [",".join(HEADER), *(",".join(row[column] for column in HEADER) for row in rows)]
    (folder / "export.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_a_spec_groups_a_csv_export_and_renames_its_columns(tmp_path):
    write_export(tmp_path, MUG_AND_POT)
    loaded = loaded_with_inputs(tmp_path, "{path: export.csv, group: {by: Handle, images: each}, "
                                          "columns: {handle: Handle, photo: Image Src}}")
    batches = list(iter_row_batches(loaded, batch_rows=3))
    assert [len(batch) for batch in batches] == [3, 1]
    assert [row for batch in batches for row in batch] == [
        {"handle": "mug", "photo": "mug-1.png", "image_index": 1},
        {"handle": "mug", "photo": "mug-2.png", "image_index": 2},
        {"handle": "pot", "photo": "pot-1.png", "image_index": 1},
        {"handle": "pot", "photo": "pot-2.png", "image_index": 2},
    ]


def test_a_spec_groups_inline_rows_too(tmp_path):
    loaded = loaded_with_inputs(tmp_path, "{rows: [{k: a, Image Src: x.png}, {k: a, Image Src: y.png}], group: {by: k}}")
    assert [row for batch in iter_row_batches(loaded) for row in batch] == [{"k": "a", "Image Src": "x.png"}]


def test_an_unsorted_export_is_a_spec_error(tmp_path):
    write_export(tmp_path, [MUG_AND_POT[0], MUG_AND_POT[3], MUG_AND_POT[1]])
    loaded = loaded_with_inputs(tmp_path, "{path: export.csv, group: {by: Handle}}")
    with pytest.raises(SpecError) as caught:
        list(iter_row_batches(loaded))
    assert str(caught.value).startswith(f"{loaded.shown}: inputs.group.by: row 3: Handle 'mug' comes back")


def test_a_missing_column_is_a_spec_error_naming_the_mapping_entry(tmp_path):
    loaded = loaded_with_inputs(tmp_path, "{rows: [{Handle: a}], columns: {photo: Image Src}}")
    with pytest.raises(SpecError) as caught:
        list(iter_row_batches(loaded))
    assert str(caught.value) == (f"{loaded.shown}: inputs.columns.photo: no column 'Image Src' in the input; "
                                 "name one of: 'Handle'")


@pytest.mark.parametrize(
    ("inputs", "where", "message"),
    [
        ("{rows: [{a: 1}], columns: {image src: Image Src}}", "inputs.columns",
         "'image src' is not a name a template can use; use letters, digits and '_' (e.g. image_src: Image Src)"),
        ("{rows: [{a: 1}], columns: {}}", "inputs.columns",
         "no columns; name at least one, or remove the key to keep every column"),
        ("{rows: [{a: 1}], group: {by: a, images: all}}", "inputs.group.images", "'all' is not one of 'first' or 'each'"),
        ("{rows: [{a: 1}], group: {images: each}}", "inputs.group.by", "required; add it"),
    ],
)
def test_spec_problems_of_grouping_and_columns(tmp_path, inputs, where, message):
    with pytest.raises(SpecError) as caught:
        loaded_with_inputs(tmp_path, inputs)
    assert str(caught.value) == f"{tmp_path / 'job.yaml'}: {where}: {message}"
