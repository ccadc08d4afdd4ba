"""The batch tier refuses requests whose input images would need the Files API: one line, before any upload."""

from __future__ import annotations

import pytest
from test_providers_gemini_uploads import photo, record

from batchrun.batchtier import BATCH_LINE_LIMIT, refuse_large_images
from batchrun.errors import UsageError
from batchrun.providers.gemini import GeminiProvider


def test_a_request_whose_photo_fits_a_batch_line_passes(tmp_path):
    big = photo(tmp_path, "big.png", 60)
    refuse_large_images([record(big)], GeminiProvider("http://x.test", None, spec_dir=tmp_path), 10 * big.bytes)


def test_requests_over_the_batch_line_limit_are_refused_naming_the_first_photo_and_the_fix(tmp_path):
    big, small = photo(tmp_path, "big.png", 60), photo(tmp_path, "small.png", 4)
    records = [record(small), record(big), record(big)]
    with pytest.raises(UsageError) as caught:
        refuse_large_images(records, GeminiProvider("http://x.test", None, spec_dir=tmp_path), 2000)
    assert str(caught.value) == (
        "--tier batch: 2 requests carry input images over the batch line's inline limit of 2,000 bytes (the first: "
        "big.png), and batch lines don't refer to uploaded files yet; run them with --tier standard or flex, or "
        "shrink the photos with request.image_prep")


def test_the_batch_line_limit_is_20_mib():
    assert BATCH_LINE_LIMIT == 20 * 1024 * 1024
