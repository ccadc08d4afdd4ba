"""request.image_prep: photos resized and converted at plan time, deterministically, never upscaled."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from batchrun.cost.tokens import ConfigTokens
from batchrun.planning.imageprep import fitted_size, prep_key, prepare_image
from batchrun.planning.inputcache import InputCache
from batchrun.planning.inputimages import ImageInspector
from batchrun.planning.spec import ImagePrepSpec


def photo(size=(3000, 2000), kind="PNG", mode="RGB", exif=None) -> bytes:
    out = io.BytesIO()
    image = Image.new(mode, size, (10, 120, 200) if mode == "RGB" else (10, 120, 200, 128))
    image.save(out, format=kind, **({"exif": exif} if exif else {}))
    return out.getvalue()


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize(("size", "max_side", "fitted"), [
    ((3000, 2000), 1536, (1536, 1024)),
    ((2000, 3000), 1536, (1024, 1536)),
    ((1000, 999), 500, (500, 500)),
    ((800, 600), 1536, (800, 600)),  # never upscaled
    ((800, 600), None, (800, 600)),
    ((5000, 3), 100, (100, 1)),  # never a zero side
])
def test_the_longer_side_is_fitted_keeping_the_aspect(size, max_side, fitted):
    assert fitted_size(*size, max_side) == fitted


def test_a_large_png_becomes_a_jpeg_within_max_side():
    prepared = prepare_image(photo(), ImagePrepSpec(max_side=1536, format="jpeg", quality=80))
    image = opened(prepared.data)
    assert (image.format, image.size, prepared.mime) == ("JPEG", (1536, 1024), "image/jpeg")
    assert (prepared.width, prepared.height) == (1536, 1024)


def test_a_small_photo_is_converted_but_not_enlarged():
    prepared = prepare_image(photo((300, 200)), ImagePrepSpec(max_side=1536, format="webp"))
    image = opened(prepared.data)
    assert (image.format, image.size, prepared.mime) == ("WEBP", (300, 200), "image/webp")


def test_without_a_format_the_photo_keeps_its_own():
    prepared = prepare_image(photo((2000, 1000), kind="JPEG"), ImagePrepSpec(max_side=1000))
    assert (opened(prepared.data).format, prepared.mime, prepared.width) == ("JPEG", "image/jpeg", 1000)


def test_transparency_is_kept_in_png_and_dropped_for_jpeg():
    rgba = photo((64, 64), mode="RGBA")
    assert opened(prepare_image(rgba, ImagePrepSpec(format="png")).data).mode == "RGBA"
    assert opened(prepare_image(rgba, ImagePrepSpec(format="jpeg")).data).mode == "RGB"


@pytest.mark.parametrize("kind", ["jpeg", "png", "webp"])
def test_the_same_photo_and_settings_give_the_same_bytes(kind):
    prep = ImagePrepSpec(max_side=700, format=kind, quality=85)
    assert prepare_image(photo(), prep).data == prepare_image(photo(), prep).data


def test_metadata_is_stripped_and_the_orientation_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: shown 90 degrees clockwise
    exif[0x010F] = "CameraMaker"
    prepared = prepare_image(photo((400, 200), kind="JPEG", exif=exif.tobytes()), ImagePrepSpec(format="jpeg"))
    image = opened(prepared.data)
    assert image.size == (200, 400)
    assert not image.getexif()
    assert b"CameraMaker" not in prepared.data


def test_different_settings_give_different_cache_keys():
    assert prep_key("ab", ImagePrepSpec(max_side=1024)) != prep_key("ab", ImagePrepSpec(max_side=1536))
    assert prep_key("ab", ImagePrepSpec(format="png")) != prep_key("ab", ImagePrepSpec(format="webp"))


def test_the_inspector_describes_and_caches_the_prepared_bytes(tmp_path):
    (tmp_path / "big.png").write_bytes(photo())
    cache = InputCache(tmp_path / "cache")
    prep = ImagePrepSpec(max_side=1536, format="jpeg")
    ref = ImageInspector(tmp_path, cache=cache, prep=prep).inspect("big.png")
    assert (ref.path, ref.mime, ref.width, ref.height) == ("big.png", "image/jpeg", 1536, 1024)
    assert cache.read(ref.sha256, ref.mime) == prepare_image(photo(), prep).data
    assert ref.bytes == len(cache.read(ref.sha256, ref.mime))
    cache.save_index()
    again = ImageInspector(tmp_path, cache=InputCache(tmp_path / "cache"), prep=prep).inspect("big.png")
    assert again == ref


def test_the_estimate_uses_the_prepared_size(tmp_path):
    (tmp_path / "big.png").write_bytes(photo())
    tokens = ConfigTokens(model="gemini-2.5-flash", tokens_per_image=None, output_text_max=0, output_image=0,
                          images_out=0)
    raw = ImageInspector(tmp_path).inspect("big.png")
    prepared = ImageInspector(tmp_path, cache=InputCache(tmp_path / "c"),
                              prep=ImagePrepSpec(max_side=512)).inspect("big.png")
    assert tokens.input_image([prepared]) < tokens.input_image([raw])
