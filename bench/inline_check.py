"""The cost of the inline-limit check on the send path: an image request's encode_body alone, and with the
`by_file` check before it (what `GeminiProvider.send` now does), side by side.

Under the limit the check is one extra compact JSON dump of the body without its photos; this times both
for a request with one 4 KiB photo, alternating rounds in one process, and prints microseconds per call
(best of each round's repeats) and the ratio. Run: python bench/inline_check.py
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import tempfile
import timeit
from pathlib import Path

from batchrun.providers.gemini import GeminiProvider
from batchrun.records import ImageRef, RequestRecord
from batchrun.rendered import rendered_request

ROUNDS, REPEAT, NUMBER = 6, 5, 5_000


def image_record(folder: Path) -> RequestRecord:
    photo = os.urandom(4096)
    (folder / "p.png").write_bytes(photo)
    ref = ImageRef("p.png", hashlib.sha256(photo).hexdigest(), "image/png", len(photo), 64, 64)
    body = rendered_request(None, [{"text": "A red mug on a kitchen counter"},
                                   {"image": f"sha256:{ref.sha256}", "mime": "image/png"}],
                            {"responseModalities": ["IMAGE"], "imageConfig": {"imageSize": "1K"}}, None, {})
    return RequestRecord("r1", 0, "m", body, {}, images=[ref])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        record = image_record(Path(tmp))
        provider = GeminiProvider("http://x.test", None, spec_dir=Path(tmp))

        def encode() -> None:
            provider.encode_body(record, {})

        def checked() -> None:  # as `send` does it: one JSON dump, measured, then the photo inlined
            text = provider._json(record, None)
            if not provider.by_file(record, text):
                provider._inlined(record, text, {})

        def best(fn) -> float:
            return min(timeit.repeat(fn, repeat=REPEAT, number=NUMBER)) / NUMBER * 1e6

        rounds = []
        for index in range(ROUNDS):  # the order alternates, so neither always runs on a warmer machine
            if index % 2:
                check, plain = best(checked), best(encode)
            else:
                plain, check = best(encode), best(checked)
            rounds.append((plain, check))
        result = {"encode_us": round(statistics.median(p for p, _ in rounds), 2),
                  "checked_us": round(statistics.median(c for _, c in rounds), 2),
                  "ratio_median": round(statistics.median(c / p for p, c in rounds), 3),
                  "ratio_range": [round(min(c / p for p, c in rounds), 3), round(max(c / p for p, c in rounds), 3)]}
        print(json.dumps(result))


if __name__ == "__main__":
    main()
