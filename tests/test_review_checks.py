import pytest

from batchrun.review.checks import (
    DUPLICATE_MAX_BITS,
    aspect_flag,
    dhash_bits,
    hamming,
    near_duplicates,
    pixel_flags,
    requested_ratio,
    size_flag,
)


@pytest.mark.parametrize(("ratio", "value"), [("16:9", 16 / 9), ("1:1", 1.0), (None, None), ("", None),
                                              ("wide", None), ("0:1", None), ("a:b", None)])
def test_a_requested_ratio_is_width_over_height(ratio, value):
    assert requested_ratio(ratio) == value


@pytest.mark.parametrize(("w", "h", "ratio"), [(1024, 1024, "1:1"), (1376, 768, "16:9"), (928, 1152, "4:5"),
                                               (352, 2928, "1:8"), (1584, 672, "21:9")])
def test_the_published_sizes_pass_the_aspect_check(w, h, ratio):
    assert aspect_flag(w, h, ratio) is None


def test_a_square_image_asked_16_9_is_flagged():
    assert aspect_flag(1024, 1024, "16:9") == "aspect 1024x1024 is 1.00:1, asked 16:9"


def test_no_requested_ratio_means_no_aspect_flag():
    assert aspect_flag(1024, 100, None) is None


@pytest.mark.parametrize(("w", "h", "size"), [(1024, 1024, "1K"), (2048, 2048, "2K"), (512, 512, "512"),
                                              (5504, 3072, "4K"), (384, 3072, "1K"), (1376, 768, None)])
def test_the_published_sizes_pass_the_size_check(w, h, size):
    assert size_flag(w, h, size) is None


def test_a_1k_image_asked_2k_is_flagged():
    assert size_flag(1024, 1024, "2K") == "size 1024x1024, asked 2K"


def test_a_small_image_asked_without_size_is_flagged_against_the_1k_default():
    assert size_flag(512, 512, None) == "size 512x512, asked 1K"


def test_pixel_flags_gives_both_and_nothing_for_an_unknown_size():
    assert pixel_flags(512, 512, "16:9", "2K") == ["aspect 512x512 is 1.00:1, asked 16:9", "size 512x512, asked 2K"]
    assert pixel_flags(None, None, "16:9", "2K") == []


def test_hamming_counts_differing_bits():
    assert hamming(0b1011, 0b0001) == 2
    assert hamming(2**64 - 1, 0) == 64


def test_dhash_sets_a_bit_where_a_pixel_is_brighter_than_its_right_neighbour():
    falling = [9 - col for _ in range(8) for col in range(9)]
    rising = [col for _ in range(8) for col in range(9)]
    assert dhash_bits(falling) == 2**64 - 1
    assert dhash_bits(rising) == 0


def test_variants_within_the_threshold_are_paired_and_others_are_not():
    base = 0x0F0F_0F0F_0F0F_0F0F
    close = base ^ ((1 << DUPLICATE_MAX_BITS) - 1)  # exactly the threshold
    far = base ^ ((1 << (DUPLICATE_MAX_BITS + 1)) - 1)  # one bit past it
    assert near_duplicates([("a", base), ("b", close)]) == {"b": "a", "a": "b"}
    assert near_duplicates([("a", base), ("c", far)]) == {}


def test_three_identical_variants_all_point_at_a_twin():
    assert near_duplicates([("a", 1), ("b", 1), ("c", 1)]) == {"a": "b", "b": "a", "c": "a"}
