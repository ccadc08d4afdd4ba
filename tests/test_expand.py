"""Expansion: rows x matrix x templates -> RequestRecords, and request identity."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PIL import Image

from batchrun.errors import SpecError, SpecProblems
from batchrun.planning.expand import Expander, canonical_json, request_id
from batchrun.planning.spec import load_spec
from batchrun.providers.gemini import gemini_body, gemini_estimate_inputs


def make_image(path: Path, size=(20, 10), color=(10, 120, 200), kind="PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format=kind)
    return path


def loaded_spec(folder: Path, text: str):
    path = folder / "job.yaml"
    path.write_text(text, encoding="utf-8")
    return load_spec(path)


def expand_all(loaded, rows=None) -> list:
    expander = Expander(loaded)
    records = list(expander.expand(rows if rows is not None else loaded.spec.inputs.rows))
    expander.finish()
    return records


IMAGE_SPEC = """
name: mugs
model: gemini-3.1-flash-image
inputs:
  rows:
    - {sku: MUG-1, title: Mug, photo: photos/mug.png}
    - {sku: CUP-2, title: Cup, photo: photos/cup.jpg}
matrix:
  scene: [kitchen counter, Picnic Table]
  ratio: ["1:1", "4:5", "16:9"]
request:
  system: "Photographer for {{ sku }}."
  prompt: "The {{ title }} on a {{ scene }}."
  images: ["{{ photo }}"]
  generation_config:
    responseModalities: [IMAGE]
    imageConfig: {aspectRatio: "{{ ratio }}", imageSize: 1K}
output:
  image_name: "{{ sku }}/{{ scene | slug }}-{{ ratio | slug }}"
"""


@pytest.fixture
def image_job(tmp_path):
    make_image(tmp_path / "photos" / "mug.png")
    make_image(tmp_path / "photos" / "cup.jpg", size=(30, 40), kind="JPEG")
    return loaded_spec(tmp_path, IMAGE_SPEC)


def test_order_is_rows_then_matrix_in_key_order(image_job):
    records = expand_all(image_job)
    assert [r.seq for r in records] == list(range(12))
    assert [(r.variables["sku"], r.variables["scene"], r.variables["ratio"]) for r in records[:7]] == [
        ("MUG-1", "kitchen counter", "1:1"),
        ("MUG-1", "kitchen counter", "4:5"),
        ("MUG-1", "kitchen counter", "16:9"),
        ("MUG-1", "Picnic Table", "1:1"),
        ("MUG-1", "Picnic Table", "4:5"),
        ("MUG-1", "Picnic Table", "16:9"),
        ("CUP-2", "kitchen counter", "1:1"),
    ]
    assert records[0].variables == {"sku": "MUG-1", "title": "Mug", "photo": "photos/mug.png", "scene": "kitchen counter", "ratio": "1:1"}


def test_body_is_rendered_with_images_as_their_hash(image_job, tmp_path):
    record = expand_all(image_job)[10]
    digest = hashlib.sha256((tmp_path / "photos" / "cup.jpg").read_bytes()).hexdigest()
    assert record.body == {
        "system": "Photographer for CUP-2.",
        "parts": [{"text": "The Cup on a Picnic Table."}, {"image": f"sha256:{digest}", "mime": "image/jpeg"}],
        "options": {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "4:5", "imageSize": "1K"}},
        "response_schema": None,
        "tools": None,
        "extras": {},
    }
    # the Gemini body made of it is the one 0.2 wrote into the manifest
    assert gemini_body(record.body) == {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "The Cup on a Picnic Table."},
                    {"inlineData": {"mimeType": "image/jpeg", "data": f"sha256:{digest}"}},
                ],
            }
        ],
        "systemInstruction": {"parts": [{"text": "Photographer for CUP-2."}]},
        "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "4:5", "imageSize": "1K"}},
    }
    assert record.output_name == "CUP-2/picnic-table-4-5"
    assert record.model == "gemini-3.1-flash-image"
    (ref,) = record.images
    assert (ref.path, ref.sha256, ref.mime, ref.width, ref.height) == ("photos/cup.jpg", digest, "image/jpeg", 30, 40)
    assert ref.bytes == (tmp_path / "photos" / "cup.jpg").stat().st_size
    assert record.estimate.images_out == 1


def test_request_id_is_the_hash_of_provider_model_and_wire_body(image_job):
    record = expand_all(image_job)[0]
    body = gemini_body(record.body)
    payload = canonical_json({"provider": "gemini", "model": "gemini-3.1-flash-image", "body": body})
    assert record.request_id == hashlib.sha256(payload).hexdigest()[:32]
    assert request_id("simulator", record.model, body) != record.request_id


def test_canonical_json_sorts_keys_and_drops_spaces():
    assert canonical_json({"b": [1, {"d": 2, "c": "é"}], "a": 1.5}) == '{"a":1.5,"b":[1,{"c":"é","d":2}]}'.encode()
    assert canonical_json({"b": 1, "a": 2}) == canonical_json({"a": 2, "b": 1})
    assert canonical_json({"big": 2**70}) == b'{"big":1180591620717411303424}'


def test_request_id_changes_with_the_prompt_and_the_image_bytes_but_not_the_path(tmp_path):
    make_image(tmp_path / "a" / "one.png")
    make_image(tmp_path / "b" / "renamed.png")  # same pixels, same bytes, other path
    make_image(tmp_path / "c" / "other.png", color=(1, 2, 3))
    spec = "name: ids\nmodel: gemini-3.1-flash-image\ninputs: {rows: [{p: PATH}]}\nrequest: {prompt: PROMPT, images: ['{{ p }}']}\n"

    def first_id(path: str, prompt: str = "Draw it") -> str:
        return expand_all(loaded_spec(tmp_path, spec.replace("PATH", path).replace("PROMPT", prompt)))[0].request_id

    assert first_id("a/one.png") == first_id("b/renamed.png")
    assert first_id("a/one.png") != first_id("c/other.png")
    assert first_id("a/one.png") != first_id("a/one.png", "Draw it again")


def test_templated_numbers_in_the_config_become_numbers(tmp_path):
    loaded = loaded_spec(
        tmp_path,
        "name: n\nmodel: gemini-2.5-flash\ninputs: {rows: [{t: '0.25', k: '40', b: '0'}]}\n"
        "request:\n  prompt: hi\n  generation_config:\n"
        "    temperature: '{{ t }}'\n    topK: '{{ k }}'\n    thinkingConfig: {thinkingBudget: '{{ b }}'}\n"
        "    responseMimeType: '{{ \"text/plain\" }}'\n",
    )
    (record,) = expand_all(loaded)
    assert record.body["options"] == {
        "temperature": 0.25,
        "topK": 40,
        "thinkingConfig": {"thinkingBudget": 0},
        "responseMimeType": "text/plain",
    }


def test_a_templated_value_the_model_refuses_names_the_row(tmp_path):
    loaded = loaded_spec(
        tmp_path,
        "name: n\nmodel: gemini-2.5-pro\ninputs: {rows: [{id: a, b: '1024'}, {id: b, b: '64'}]}\n"
        "request:\n  prompt: hi\n  generation_config: {thinkingConfig: {thinkingBudget: '{{ b }}'}}\n",
    )
    with pytest.raises(SpecError) as caught:
        expand_all(loaded)
    assert caught.value.path == "request.generation_config.thinkingConfig.thinkingBudget"
    assert caught.value.message == "row 2 (id 'b'): 64 is out of range for gemini-2.5-pro: 128 to 32768, -1 for dynamic"


def test_unquoted_aspect_ratios_in_the_matrix_stay_ratios(tmp_path):
    loaded = loaded_spec(
        tmp_path,
        "name: n\nmodel: gemini-3.1-flash-image\ninputs: {rows: [{sku: A}]}\nmatrix: {ratio: [1:1, 16:9]}\n"
        "request: {prompt: hi, generation_config: {imageConfig: {aspectRatio: '{{ ratio }}'}}}\n",
    )
    ratios = [r.body["options"]["imageConfig"]["aspectRatio"] for r in expand_all(loaded)]
    assert ratios == ["1:1", "16:9"]


def test_missing_variable_names_the_row_and_its_id(tmp_path):
    loaded = loaded_spec(
        tmp_path,
        "name: n\nmodel: gemini-3-flash-preview\ninputs:\n  id_column: code\n"
        "  rows: [{code: X-1, title: a}, {code: X-2}]\nrequest: {prompt: 'About {{ title }}'}\n",
    )
    with pytest.raises(SpecError) as caught:
        expand_all(loaded)
    assert str(caught.value) == (
        f"{loaded.shown}: request.prompt: row 2 (code 'X-2'): undefined variable 'title'; known variables: code"
    )


def test_missing_variable_without_an_id_column_names_the_row_number(tmp_path):
    loaded = loaded_spec(
        tmp_path,
        "name: n\nmodel: gemini-3-flash-preview\ninputs: {rows: [{a: 1}]}\nmatrix: {m: [x]}\n"
        "request: {prompt: hi, system: '{{ a }} {{ b | upper }}'}\n",
    )
    with pytest.raises(SpecError) as caught:
        expand_all(loaded)
    assert str(caught.value) == f"{loaded.shown}: request.system: row 1: undefined variable 'b'; known variables: a, m"


def test_identical_requests_are_each_kept_as_a_row_and_counted_as_shared(tmp_path):
    loaded = loaded_spec(
        tmp_path,
        "name: n\nmodel: gemini-3-flash-preview\ninputs: {rows: [{a: x, b: 1}, {a: x, b: 2}, {a: y, b: 3}]}\n"
        "matrix: {tone: [plain, plain2]}\nrequest: {prompt: '{{ a }}'}\n",
    )
    expander = Expander(loaded)
    records = list(expander.expand(loaded.spec.inputs.rows))
    texts = [r.body["parts"][0]["text"] for r in records]
    assert texts == ["x", "x", "x", "x", "y", "y"]
    assert [r.input_row for r in records] == [1, 1, 2, 2, 3, 3]
    assert len({r.request_id for r in records}) == 2
    assert (expander.counts.requests, expander.counts.duplicates, expander.counts.input_rows) == (6, 4, 3)


def test_rows_in_several_batches_are_numbered_on(tmp_path):
    loaded = loaded_spec(
        tmp_path, "name: n\nmodel: gemini-3-flash-preview\ninputs: {rows: [{a: 0}]}\nrequest: {prompt: 'n{{ a }}'}\n"
    )
    expander = Expander(loaded)
    first = list(expander.expand([{"a": 1}, {"a": 2}]))
    second = list(expander.expand([{"a": 3}]))
    assert [(r.seq, r.variables) for r in first + second] == [(0, {"a": 1}), (1, {"a": 2}), (2, {"a": 3})]
    with pytest.raises(SpecError, match=r"row 4: undefined variable 'a'"):
        list(expander.expand([{}]))


def test_several_bad_images_are_listed_up_to_ten(tmp_path):
    make_image(tmp_path / "ok.png")
    rows = ", ".join(["{sku: OK, p: ok.png}"] + [f"{{sku: S{i:02}, p: gone-{i}.png}}" for i in range(12)])
    loaded = loaded_spec(
        tmp_path,
        f"name: n\nmodel: gemini-3.1-flash-image\ninputs: {{rows: [{rows}]}}\nmatrix: {{s: [a, b]}}\n"
        "request: {prompt: '{{ sku }} {{ s }}', images: ['{{ p }}']}\n",
    )
    expander = Expander(loaded)
    records = list(expander.expand(loaded.spec.inputs.rows))
    assert len(records) == 2
    with pytest.raises(SpecProblems) as caught:
        expander.finish()
    listed = "; ".join(
        f"row {i + 2} (sku 'S{i:02}'): image not found: gone-{i}.png (relative to the spec's folder)"
        for i in range(10)
    )
    assert str(caught.value) == f"{loaded.shown}: request.images[0]: 12 bad rows: {listed}; and 2 more"
    assert caught.value.path == "request.images[0]"
    assert len(caught.value.problems) == 10 and caught.value.total == 12


def test_one_bad_image_is_a_plain_spec_error(tmp_path):
    (tmp_path / "notes.png").write_text("not an image", encoding="utf-8")
    loaded = loaded_spec(
        tmp_path,
        "name: n\nmodel: gemini-3.1-flash-image\ninputs: {rows: [{p: notes.png}]}\nrequest: {prompt: x, images: ['{{ p }}']}\n",
    )
    with pytest.raises(SpecError) as caught:
        expand_all(loaded)
    assert not isinstance(caught.value, SpecProblems)
    assert str(caught.value) == (
        f"{loaded.shown}: request.images[0]: row 1: notes.png is not an image Pillow can read; use a PNG, JPEG or WebP"
    )


def test_matrix_key_equal_to_an_input_column_is_refused(tmp_path):
    loaded = loaded_spec(
        tmp_path, "name: n\nmodel: gemini-3-flash-preview\ninputs: {rows: [{scene: a}]}\nmatrix: {scene: [b]}\nrequest: {prompt: x}\n"
    )
    with pytest.raises(SpecError) as caught:
        expand_all(loaded)
    assert str(caught.value) == f"{loaded.shown}: matrix.scene: 'scene' is also an input column; rename the matrix key"


IMAGE_JOB = ("name: n\nmodel: gemini-3.1-flash-image\ninputs: {{rows: [{{a: q}}]}}\n"
             "request: {{prompt: x, generation_config: {{responseModalities: [IMAGE]}}}}\n")


@pytest.mark.parametrize("name, reason", [
    ("../x", "'..', which is not a file name"),
    ("/../{{ a }}", "'..', which is not a file name"),
    (".hidden", "starts with '.'"),
    ("a/../../b", "'..', which is not a file name"),
    ("a\\\\b", "holds '\\\\', which file systems refuse"),
    ("{{ a }}/..", "'..', which is not a file name"),
    ("{{ a }}/x:y", "holds ':', which file systems refuse"),
    ("{{ a }}/com1", "a device name Windows reserves"),
    ("{{ a }}/end.", "ends with a dot or a space"),
    ("{{ a }}/" + "n" * 251, "bytes long and this file system takes 250 at most"),
])
def test_unsafe_output_names_are_refused(tmp_path, name, reason):
    loaded = loaded_spec(tmp_path, IMAGE_JOB.format() + f"output: {{image_name: '{name}'}}\n")
    with pytest.raises(SpecError) as caught:
        expand_all(loaded)
    assert caught.value.path == "output.image_name"
    assert caught.value.message.startswith("row 1: ")
    assert reason in caught.value.message


def test_a_name_with_a_nul_or_a_line_break_is_refused(tmp_path):
    loaded = loaded_spec(tmp_path, "name: n\nmodel: gemini-3.1-flash-image\ninputs: {rows: [{a: \"x\\0y\"}, {a: \"p\\nq\"}]}\n"
                         "request: {prompt: x, generation_config: {responseModalities: [IMAGE]}}\n"
                         "output: {image_name: '{{ a }}'}\n")
    with pytest.raises(SpecError) as caught:
        expand_all(loaded)
    assert caught.value.message == ("row 1: 'x\\x00y' holds a NUL character, which file systems refuse in a name; "
                                    "use letters, digits, '-', '_' and '/', e.g. \"{{ sku | slug }}/{{ scene | slug }}\"")


def test_a_text_job_renders_no_image_name(tmp_path):
    loaded = loaded_spec(tmp_path, "name: n\nmodel: gemini-3-flash-preview\ninputs: {rows: [{a: q}]}\n"
                         "request: {prompt: x}\noutput: {image_name: '../{{ a }}'}\n")
    assert [r.output_name for r in expand_all(loaded)] == [None]


def test_safety_settings_and_tools_are_rendered_into_the_request(tmp_path):
    loaded = loaded_spec(
        tmp_path,
        "name: n\nmodel: gemini-3-flash-preview\ninputs: {rows: [{level: BLOCK_NONE}]}\n"
        "request:\n  prompt: x\n  safety_settings: [{category: HARM_CATEGORY_HARASSMENT, threshold: '{{ level }}'}]\n"
        "  tools: [{googleSearch: {}}]\n",
    )
    (record,) = expand_all(loaded)
    assert record.body["extras"] == {"safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]}
    assert record.body["tools"] == [{"googleSearch": {}}]
    assert (record.body["options"], record.body["system"]) == ({}, None)


@pytest.mark.parametrize(
    "config",
    [
        "{maxOutputTokens: 300}",
        "{maxOutputTokens: '{{ n }}'}",
        "{responseModalities: [IMAGE], imageConfig: {aspectRatio: '1:1', imageSize: 2K}}",
        "{responseModalities: [TEXT, IMAGE], imageConfig: {imageSize: '{{ size }}'}, mediaResolution: MEDIA_RESOLUTION_LOW}",
    ],
)
@pytest.mark.parametrize("with_image", [False, True])
def test_expander_estimates_equal_estimate_tokens_of_the_request(tmp_path, config, with_image):
    from batchrun.cost.tokens import estimate_tokens

    make_image(tmp_path / "p.png", size=(900, 500))
    images = "images: ['p.png']" if with_image else "images: []"
    loaded = loaded_spec(
        tmp_path,
        "name: n\nmodel: gemini-3.1-flash-image\n"
        "inputs: {rows: [{n: 100, size: 1K, t: short}, {n: 2000, size: 4K, t: a much longer product title here}]}\n"
        f"request: {{system: 'Be brief.', prompt: 'Describe {{{{ t }}}}', {images}, generation_config: {config}}}\n",
    )
    records = expand_all(loaded)
    assert len(records) == 2
    for record in records:
        inputs = gemini_estimate_inputs(record.body)
        assert record.estimate == estimate_tokens(record.model, record.body, record.images, inputs)
