"""The batch tier's wiring: the upload's piece size."""

from __future__ import annotations

import pytest

from batchrun.batching.files import UPLOAD_CHUNK_BYTES
from batchrun.batchtier import UPLOAD_CHUNK_ENV, upload_chunk_bytes
from batchrun.errors import UsageError


def test_the_upload_piece_size_is_the_sdk_s_unless_the_environment_sets_one():
    assert upload_chunk_bytes({}) == UPLOAD_CHUNK_BYTES == 8 * 1024 * 1024
    assert upload_chunk_bytes({UPLOAD_CHUNK_ENV: " 262144 "}) == 262_144


@pytest.mark.parametrize("raw", ["8k", "0", "-5", "1.5"])
def test_an_upload_piece_size_that_is_not_a_whole_number_of_bytes_names_the_variable_and_an_example(raw):
    with pytest.raises(UsageError) as caught:
        upload_chunk_bytes({UPLOAD_CHUNK_ENV: raw})
    assert str(caught.value).startswith(f"{UPLOAD_CHUNK_ENV}={raw!r}: expected a whole number of bytes")
