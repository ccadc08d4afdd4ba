"""Input images checked at plan time: format, size, hash, dimensions."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PIL import Image

from batchrun.errors import ImageProblem
from batchrun.planning import inputimages
from batchrun.planning.inputimages import ImageInspector
from batchrun.records import ImageRef


def save(folder: Path, name: str, kind: str, size=(24, 16)) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 100, 50)).save(path, format=kind)
    return path


@pytest.mark.parametrize(
    ("name", "kind", "mime"),
    [("a.png", "PNG", "image/png"), ("b.jpg", "JPEG", "image/jpeg"), ("c.webp", "WEBP", "image/webp")],
)
def test_png_jpeg_and_webp_are_described(tmp_path, name, kind, mime):
    path = save(tmp_path / "photos", name, kind, size=(33, 21))
    ref = ImageInspector(tmp_path).inspect(f"photos/{name}")
    data = path.read_bytes()
    assert ref == ImageRef(
        path=f"photos/{name}", sha256=hashlib.sha256(data).hexdigest(), mime=mime, bytes=len(data), width=33, height=21
    )


def test_the_format_comes_from_the_content_not_the_extension(tmp_path):
    save(tmp_path, "really-a-jpeg.png", "JPEG")
    assert ImageInspector(tmp_path).inspect("really-a-jpeg.png").mime == "image/jpeg"


@pytest.mark.parametrize(
    ("setup", "path", "message"),
    [
        (lambda f: save(f, "anim.gif", "GIF"), "anim.gif", "anim.gif is GIF, not PNG, JPEG or WebP; convert it"),
        (lambda f: save(f, "pic.bmp", "BMP"), "pic.bmp", "pic.bmp is BMP, not PNG, JPEG or WebP; convert it"),
        (lambda f: (f / "notes.png").write_text("hello"), "notes.png",
         "notes.png is not an image Pillow can read; use a PNG, JPEG or WebP"),
        (lambda f: None, "gone.png", "image not found: gone.png (relative to the spec's folder)"),
        (lambda f: (f / "dir.png").mkdir(), "dir.png", "image not found: dir.png (relative to the spec's folder)"),
        (lambda f: None, "  ", "the image path is empty; fill the column or drop it from request.images"),
    ],
)
def test_images_that_cannot_be_sent(tmp_path, setup, path, message):
    setup(tmp_path)
    with pytest.raises(ImageProblem) as caught:
        ImageInspector(tmp_path).inspect(path)
    assert str(caught.value) == message


def test_a_truncated_png_is_refused(tmp_path):
    data = save(tmp_path, "whole.png", "PNG", size=(64, 64)).read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:40])
    with pytest.raises(ImageProblem, match="cut.png is not an image Pillow can read"):
        ImageInspector(tmp_path).inspect("cut.png")


def test_an_image_over_the_files_api_limit_is_refused(tmp_path, monkeypatch):
    path = save(tmp_path, "big.png", "PNG")
    monkeypatch.setattr(inputimages, "MAX_IMAGE_BYTES", path.stat().st_size - 1)
    with pytest.raises(ImageProblem) as caught:
        ImageInspector(tmp_path).inspect("big.png")
    assert str(caught.value) == (f"big.png is {path.stat().st_size} bytes, over the Files API's "
                                 f"{path.stat().st_size - 1} bytes; make it smaller (request.image_prep can shrink it)")


def test_an_image_over_the_inline_limit_is_kept_when_the_provider_can_upload_it(tmp_path):
    path = save(tmp_path, "big.png", "PNG")
    assert ImageInspector(tmp_path).inspect("big.png").bytes == path.stat().st_size


def test_without_a_files_api_an_image_over_the_inline_limit_is_refused_with_its_size_and_the_fix(tmp_path):
    size = save(tmp_path, "big.png", "PNG").stat().st_size
    inspector = ImageInspector(tmp_path, inline_limit=size)  # its base64 is a third larger than the limit
    with pytest.raises(ImageProblem) as caught:
        inspector.inspect("big.png")
    encoded = 4 * ((size + 2) // 3)
    assert str(caught.value) == (
        f"big.png is {size / 1048576:.3g} MB ({encoded / 1048576:.3g} MB in base64), over the {size / 1048576:.3g} MB "
        "inline request limit (provider.inline_limit_mb), and this provider has no Files API to upload it to; shrink "
        "it with request.image_prep (a smaller max side or JPEG), use a smaller photo, or send through provider.kind gemini")


def test_without_a_files_api_an_image_whose_base64_fits_is_kept(tmp_path):
    size = save(tmp_path, "small.png", "PNG").stat().st_size
    assert ImageInspector(tmp_path, inline_limit=4 * ((size + 2) // 3)).inspect("small.png").bytes == size


def test_each_path_is_read_once(tmp_path, monkeypatch):
    save(tmp_path, "a.png", "PNG")
    save(tmp_path, "b.png", "PNG", size=(5, 5))
    calls = []
    real = inputimages._inspect
    monkeypatch.setattr(inputimages, "_inspect", lambda folder, path: calls.append(path) or real(folder, path))
    inspector = ImageInspector(tmp_path)
    for path in ["a.png", "b.png", "a.png", "gone.png", "gone.png"]:
        try:
            inspector.inspect(path)
        except ImageProblem:
            pass
    assert calls == ["a.png", "b.png", "gone.png"]
    assert [ref.path for ref in inspector.distinct] == ["a.png", "b.png"]
