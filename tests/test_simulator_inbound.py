"""Reading requests: both field spellings, input image sizes from headers, bad bodies."""

from __future__ import annotations

import base64
import io
import random

import pytest
from PIL import Image

from batchrun.simulator.inbound import (
    InvalidRequest,
    body_digest,
    decode_base64,
    load_body,
    read_count_tokens_request,
    read_generate_request,
)


def png_bytes(width: int, height: int, fmt: str = "PNG", noise: bool = False) -> bytes:
    out = io.BytesIO()
    pixels = random.Random(1).randbytes(width * height * 3) if noise else bytes((10, 20, 30)) * width * height
    Image.frombytes("RGB", (width, height), pixels).save(out, fmt)
    return out.getvalue()


def encoded(width: int, height: int, fmt: str = "PNG") -> str:
    return base64.b64encode(png_bytes(width, height, fmt)).decode()


def test_camel_and_snake_case_read_the_same():
    camel = {"contents": [{"parts": [{"text": "hi"}]}],
             "generationConfig": {"responseModalities": ["Image"], "imageConfig": {"aspectRatio": "4:5", "imageSize": "2K"}}}
    snake = {"contents": [{"parts": [{"text": "hi"}]}],
             "generation_config": {"response_modalities": ["IMAGE"], "image_config": {"aspect_ratio": "4:5", "image_size": "2K"}}}
    a, b = read_generate_request(camel), read_generate_request(snake)
    assert (a.modalities, a.aspect_ratio, a.image_size) == (b.modalities, b.aspect_ratio, b.image_size) == (("IMAGE",), "4:5", "2K")


def test_input_images_are_measured_and_texts_counted():
    body = {"systemInstruction": {"parts": [{"text": "12345"}]},
            "contents": [{"parts": [{"text": "abcd"}, {"inlineData": {"mimeType": "image/jpeg", "data": encoded(640, 480, "JPEG")}},
                                    {"inline_data": {"mime_type": "image/png", "data": encoded(3000, 100)}}]}]}
    request = read_generate_request(body)
    assert [(i.width, i.height) for i in request.images] == [(640, 480), (3000, 100)]
    assert request.prompt_text_tokens == 1 + 2 and request.system == "12345"


def test_bytes_that_are_not_an_image_make_the_request_invalid():
    with pytest.raises(InvalidRequest):
        read_generate_request({"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "AAAA"}}]}]})


@pytest.mark.parametrize("raw", [b"{", b"[1]", b"\xff"])
def test_a_body_that_is_not_a_json_object_is_invalid(raw):
    with pytest.raises(InvalidRequest):
        load_body(raw)


def test_digest_ignores_key_order_and_count_tokens_reads_both_forms():
    assert body_digest({"a": 1, "b": 2}) == body_digest({"b": 2, "a": 1})
    inner = {"contents": [{"parts": [{"text": "x" * 8}]}]}
    assert read_count_tokens_request({"generateContentRequest": inner}).prompt_text_tokens == 2
    assert read_count_tokens_request(inner).prompt_text_tokens == 2


@pytest.mark.parametrize(
    "body",
    [{"contents": "hi"}, {"contents": [{"parts": "hi"}]}, {"contents": [3]}, {"generationConfig": [1]},
     {"generationConfig": {"imageConfig": "1:1"}}, {"generationConfig": {"responseModalities": "IMAGE"}},
     {"systemInstruction": "be brief"}, {"contents": [{"parts": [7]}]},
     {"generationConfig": {"maxOutputTokens": "5"}}, {"generationConfig": {"imageConfig": {"aspectRatio": [1]}}}],
)
def test_wrongly_typed_fields_are_invalid_not_a_crash(body):
    with pytest.raises(InvalidRequest):
        read_generate_request(body)


NOISY_PNG = png_bytes(300, 200, noise=True)  # its base64 holds '+' and '/', so URL-safe differs


@pytest.mark.parametrize(
    "text",
    [
        base64.b64encode(NOISY_PNG).decode(),
        base64.urlsafe_b64encode(NOISY_PNG).decode(),  # what the google-genai SDK sends
        base64.b64encode(NOISY_PNG).decode().rstrip("="),
        base64.urlsafe_b64encode(NOISY_PNG).decode().rstrip("="),
    ],
)
def test_image_data_in_standard_or_url_safe_base64_padded_or_not_is_read(text):
    assert decode_base64(text) == NOISY_PNG
    part = {"inlineData": {"mimeType": "image/png", "data": text}}
    request = read_generate_request({"contents": [{"parts": [part]}]})
    assert [(i.width, i.height) for i in request.images] == [(300, 200)]


def test_the_two_base64_alphabets_really_differ_for_the_test_image():
    assert base64.b64encode(NOISY_PNG) != base64.urlsafe_b64encode(NOISY_PNG)


@pytest.mark.parametrize("key", ["responseSchema", "response_schema", "responseJsonSchema", "response_json_schema"])
def test_a_response_schema_is_read_in_either_form_and_spelling(key):
    schema = {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}}
    request = read_generate_request({"generationConfig": {"responseMimeType": "application/json", key: schema}})
    assert request.response_schema == schema and request.response_mime == "application/json"


@pytest.mark.parametrize(
    "config,problem",
    [
        ({"responseSchema": {"type": "STRING"}, "responseJsonSchema": {"type": "string"}}, "mutually exclusive"),
        ({"responseSchema": ["STRING"]}, "must be an object"),
    ],
)
def test_two_schemas_or_a_schema_that_is_not_an_object_are_invalid(config, problem):
    with pytest.raises(InvalidRequest, match=problem):
        read_generate_request({"generationConfig": config})
