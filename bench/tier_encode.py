"""The cost of the service tier in the body: GeminiProvider.encode_body at standard and at flex, side by side.

The tier is appended to the encoded body at send time (never part of the request id). This times
`encode_body` of a text request and of an image request (a 4 KiB photo inlined) at both tiers,
alternating rounds in one process, and prints microseconds per call (best of each round's repeats)
and the flex/standard ratio. Run: python bench/tier_encode.py
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import timeit
from pathlib import Path

from batchrun.providers.gemini import GeminiProvider
from batchrun.records import ImageRef, RequestRecord
from batchrun.rendered import rendered_request
from batchrun.tiers import Tier

ROUNDS, REPEAT, NUMBER = 5, 5, 20_000


def records(folder: Path) -> dict[str, RequestRecord]:
    photo = os.urandom(4096)
    (folder / "p.png").write_bytes(photo)
    ref = ImageRef("p.png", hashlib.sha256(photo).hexdigest(), "image/png", len(photo), 64, 64)
    text = rendered_request("You are a copywriter.", [{"text": "Write one line about topic 7, number 7."}],
                            {"maxOutputTokens": 1024}, None, {})
    image = rendered_request(None, [{"text": "A red mug on a kitchen counter"},
                                    {"image": f"sha256:{ref.sha256}", "mime": "image/png"}],
                             {"responseModalities": ["IMAGE"], "imageConfig": {"imageSize": "1K"}}, None, {})
    return {"text": RequestRecord("r1", 0, "m", text, {}),
            "image": RequestRecord("r2", 1, "m", image, {}, images=[ref])}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cases = records(folder)
        providers = {tier: GeminiProvider("http://x", None, spec_dir=folder, tier=tier)
                     for tier in (Tier.STANDARD, Tier.FLEX)}
        for name, record in cases.items():
            best: dict[Tier, list[float]] = {tier: [] for tier in providers}
            for _ in range(ROUNDS):
                for tier, provider in providers.items():  # alternating: both see the same machine load
                    times = timeit.repeat(lambda p=provider, r=record: p.encode_body(r), repeat=REPEAT, number=NUMBER)
                    best[tier].append(min(times) / NUMBER * 1e6)
            standard, flex = sorted(best[Tier.STANDARD]), sorted(best[Tier.FLEX])
            ratios = sorted(f / s for f, s in zip(best[Tier.FLEX], best[Tier.STANDARD]))
            print(f"{name}: standard {standard[ROUNDS // 2]:.2f} us, flex {flex[ROUNDS // 2]:.2f} us "
                  f"(medians of {ROUNDS} rounds), flex/standard per round median {ratios[ROUNDS // 2]:.3f} "
                  f"(range {ratios[0]:.3f}-{ratios[-1]:.3f})")


if __name__ == "__main__":
    main()
