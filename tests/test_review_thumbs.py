from PIL import Image

from batchrun.review.checks import hamming
from batchrun.review.thumbs import THUMB_SIDE, ThumbCache, ThumbStats, thumb_name


def _image(path, size=(600, 400), colour=(200, 30, 30), stripe=True):
    image = Image.new("RGB", size, colour)
    if stripe:
        for x in range(0, size[0] // 2):
            for y in range(size[1]):
                image.putpixel((x, y), (20, 20, 20))
    image.save(path)
    return path


def test_a_thumbnail_is_made_with_the_facts_of_the_image(tmp_path):
    src = _image(tmp_path / "a.png")
    cache = ThumbCache(tmp_path / "thumbs")
    assert cache.update([("a" * 64, src)]) == ThumbStats(made=1, cached=0, failed=0)
    with Image.open(tmp_path / "thumbs" / thumb_name("a" * 64)) as thumb:
        assert thumb.format == "WEBP"
        assert thumb.width == THUMB_SIDE and abs(thumb.height - THUMB_SIDE * 400 / 600) < 1
    assert cache.facts["a" * 64]["w"] == 600 and cache.facts["a" * 64]["h"] == 400


def test_a_second_pass_with_saved_facts_opens_no_image(tmp_path):
    src = _image(tmp_path / "a.png")
    first = ThumbCache(tmp_path / "thumbs")
    first.update([("a" * 64, src)])
    first.save()
    src.unlink()  # a reopen would fail
    second = ThumbCache(tmp_path / "thumbs")
    second.load()
    assert second.update([("a" * 64, src)]) == ThumbStats(made=0, cached=1, failed=0)
    assert second.facts == first.facts


def test_a_missing_thumbnail_is_made_again_even_with_facts(tmp_path):
    src = _image(tmp_path / "a.png")
    cache = ThumbCache(tmp_path / "thumbs")
    cache.update([("a" * 64, src)])
    (tmp_path / "thumbs" / thumb_name("a" * 64)).unlink()
    assert cache.update([("a" * 64, src)]).made == 1


def test_an_undecodable_image_is_recorded_once_and_not_retried(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    cache = ThumbCache(tmp_path / "thumbs")
    assert cache.update([("b" * 64, bad)]) == ThumbStats(made=0, cached=0, failed=1)
    assert "error" in cache.facts["b" * 64]
    assert cache.update([("b" * 64, bad)]) == ThumbStats(made=0, cached=1, failed=0)


def test_a_recompressed_copy_hashes_near_and_a_different_picture_far(tmp_path):
    src = _image(tmp_path / "a.png")
    Image.open(src).save(tmp_path / "a.jpg", quality=60)
    cache = ThumbCache(tmp_path / "thumbs")
    cache.update([("a" * 64, src), ("c" * 64, tmp_path / "a.jpg"), ("d" * 64, _gradient(tmp_path / "g.png"))])
    hashes = {sha: int(f["dhash"], 16) for sha, f in cache.facts.items()}
    assert hamming(hashes["a" * 64], hashes["c" * 64]) <= 6
    assert hamming(hashes["a" * 64], hashes["d" * 64]) > 6


def _gradient(path):
    image = Image.new("L", (600, 400))
    image.putdata([255 - x * 255 // 600 for y in range(400) for x in range(600)])  # bright on the left
    image.save(path)
    return path


def test_many_images_are_made_in_worker_processes_with_the_same_facts(tmp_path, monkeypatch):
    from batchrun.review import thumbs

    monkeypatch.setattr(thumbs, "PARALLEL_MIN", 3)
    sources = [(f"{n:064x}", _image(tmp_path / f"{n}.png", size=(64 + n, 40), stripe=n % 2 == 0)) for n in range(4)]
    (tmp_path / "bad.png").write_bytes(b"nope")
    sources.append(("e" * 64, tmp_path / "bad.png"))
    alone, pooled = ThumbCache(tmp_path / "alone", workers=1), ThumbCache(tmp_path / "pooled", workers=2)
    assert alone.update(sources) == pooled.update(sources) == ThumbStats(made=4, cached=0, failed=1)
    assert alone.facts == pooled.facts
    assert sorted(p.name for p in (tmp_path / "pooled").glob("*.webp")) == sorted(thumb_name(sha) for sha, _ in sources[:4])
