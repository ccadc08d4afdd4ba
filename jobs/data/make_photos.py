"""Draw the demo catalog's small product photos (committed; run again only to change them).

    python jobs/data/make_photos.py
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).parent
SIZE = 256


def colour_for(sku: str) -> tuple[int, int, int]:
    digest = hashlib.sha256(sku.encode()).digest()
    return (64 + digest[0] % 160, 64 + digest[1] % 160, 64 + digest[2] % 160)


def draw_photo(row: dict[str, str]) -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), (245, 243, 238))
    draw = ImageDraw.Draw(image)
    fill = colour_for(row["sku"])
    draw.ellipse((40, 190, 216, 226), fill=(220, 216, 208))  # shadow
    if row["category"] in ("plate", "bowl"):
        draw.ellipse((36, 80, 220, 200), fill=fill, outline=(40, 40, 40), width=3)
    elif row["category"] in ("bottle", "jar", "candle"):
        draw.rounded_rectangle((88, 40, 168, 210), radius=18, fill=fill, outline=(40, 40, 40), width=3)
    else:
        draw.rounded_rectangle((64, 70, 176, 206), radius=14, fill=fill, outline=(40, 40, 40), width=3)
        draw.arc((156, 100, 212, 170), start=-90, end=90, fill=(40, 40, 40), width=8)
    draw.text((10, 10), row["sku"], fill=(30, 30, 30))
    draw.text((10, 236), row["title"], fill=(30, 30, 30))
    return image


def main() -> None:
    with (HERE / "products.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            target = HERE.parent / row["photo"]  # paths are relative to jobs/, as in the specs
            target.parent.mkdir(parents=True, exist_ok=True)
            draw_photo(row).save(target, format="PNG", optimize=True)


if __name__ == "__main__":
    main()
