"""The images the chat route serves by URL: the most recent ones, bounded, in memory.

A chat reply in the `url` shape links its image as `http://HOST/v1/sim/images/<id>.<ext>`; the
image is put here when the reply is built (on a drawing thread, hence the lock) and served by GET
until `capacity` newer images have pushed it out.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict

IMAGE_PATH_PREFIX = "/v1/sim/images/"
IMAGE_PATH = re.compile(r"^/v1/sim/images/([A-Za-z0-9_-]+)\.(png|jpg|webp)$")
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
DEFAULT_CAPACITY = 512


def image_path(image_id: str, mime: str) -> str:
    """The URL path an image is served at."""
    return f"{IMAGE_PATH_PREFIX}{image_id}.{EXTENSIONS[mime]}"


class ImageStore:
    """The last `capacity` images put, by id; thread-safe."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._images: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, image_id: str, data: bytes, mime: str) -> None:
        """Keep an image, dropping the oldest past capacity."""
        with self._lock:
            self._images[image_id] = (data, mime)
            self._images.move_to_end(image_id)
            while len(self._images) > self.capacity:
                self._images.popitem(last=False)

    def get(self, image_id: str) -> tuple[bytes, str] | None:
        """(bytes, mime) of a kept image, or None."""
        with self._lock:
            return self._images.get(image_id)
