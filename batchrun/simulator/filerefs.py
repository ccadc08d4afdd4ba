"""`fileData` parts of a generateContent request, resolved against the simulator's Files API store.

In:  a part's `fileUri` and `mimeType`, the FileStore, the simulator's clock.
Out: the InputImage the part stands for (measured from the stored file's header, as an inline image is
     from its data), so checks and token counts are those of the same image sent inline.

What the real API does, as assumed here: a URI that names no file of the Files API is 400
INVALID_ARGUMENT; a file that does not exist, was deleted, belongs to another project or has expired
(48 hours after upload) is 403 PERMISSION_DENIED "You do not have permission to access the File ... or
it may not exist."; a stored file that is not an image is 400, as undecodable inline data is.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from PIL import Image, UnidentifiedImageError

from ..errors import InvalidRequest
from .files import FILE_LIFETIME_S, FileApiError, FileStore
from .inbound import InputImage

_FILE_URI = re.compile(r"^(?:https?://[^/]+)?/?(?:v1[a-z0-9]*/)?files/([a-z0-9]+)$")


def file_id(uri: str) -> str:
    """The id of the file a `fileUri` names (a full URI or `files/ID`); InvalidRequest otherwise."""
    match = _FILE_URI.match(uri.strip())
    if match is None:
        raise InvalidRequest(f"Invalid or unsupported file uri: {uri}")
    return match.group(1)


def file_image_reader(store: FileStore, clock: Callable[[], float]) -> Callable[[str, str], InputImage]:
    """A function from (fileUri, mimeType) to the InputImage of a live stored file."""

    def read(uri: str, mime: str) -> InputImage:
        ident = file_id(uri)
        stored = store.files.get(ident)
        if stored is None or clock() >= stored.created + FILE_LIFETIME_S:
            raise FileApiError(403, "PERMISSION_DENIED",
                               f"You do not have permission to access the File {ident} or it may not exist.")
        try:
            with Image.open(stored.path) as image:
                width, height = image.size
        except (UnidentifiedImageError, OSError):
            raise InvalidRequest("Unable to process input image. Please retry or report in Google AI Studio.") from None
        return InputImage(mime or stored.mime, width, height)

    return read
